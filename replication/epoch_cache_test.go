package replication

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// step is one operation on an EpochCache in a table test: assign, truncate from the end or
// the start, clear, or an endOffsetFor query with its expected answer.
type step struct {
	op        string // "assign", "end", "start", "clear", "query", "latest"
	epoch     int32
	offset    int64 // assign: start offset; end/start: truncation offset; query: log end offset
	wantEpoch int32
	wantOff   int64
}

func assign(e int32, o int64) step { return step{op: "assign", epoch: e, offset: o} }
func query(e int32, leo int64, we int32, wo int64) step {
	return step{op: "query", epoch: e, offset: leo, wantEpoch: we, wantOff: wo}
}
func truncEnd(o int64) step   { return step{op: "end", offset: o} }
func truncStart(o int64) step { return step{op: "start", offset: o} }
func latest(e int32) step     { return step{op: "latest", epoch: e} } // -1: empty

// TestEpochCacheLeaderEpochFileCacheTest runs the cases of Kafka's LeaderEpochFileCacheTest
// (same names), then checks that the file on disk reads back to the same entries.
func TestEpochCacheLeaderEpochFileCacheTest(t *testing.T) {
	const u, uo = UndefinedEpoch, UndefinedEpochOffset
	three := []step{assign(2, 6), assign(3, 8), assign(4, 11)}
	with := func(s ...step) []step { return append(append([]step{}, three...), s...) }
	cases := []struct {
		name  string
		steps []step
		want  []EpochEntry
	}{
		{"shouldAddEpochAndMessageOffsetToCache", []step{assign(2, 10), latest(2), query(2, 11, 2, 11)}, []EpochEntry{{2, 10}}},
		{"shouldReturnLogEndOffsetIfLatestEpochRequested", []step{assign(2, 11), assign(2, 12), query(2, 14, 2, 14)}, []EpochEntry{{2, 11}}},
		{"shouldReturnUndefinedOffsetIfUndefinedEpochRequested", []step{assign(2, 11), assign(3, 12), query(u, 0, u, uo)}, []EpochEntry{{2, 11}, {3, 12}}},
		{"shouldNotOverwriteLogEndOffsetForALeaderEpochOnceItHasBeenAssigned", []step{assign(2, 9), assign(2, 10)}, []EpochEntry{{2, 9}}},
		{"shouldEnforceMonotonicallyIncreasingStartOffsets", []step{assign(2, 9), assign(3, 9)}, []EpochEntry{{3, 9}}},
		{"shouldNotOverwriteOffsetForALeaderEpochOnceItHasBeenAssigned", []step{assign(2, 6), assign(2, 10)}, []EpochEntry{{2, 6}}},
		{"shouldReturnUnsupportedIfNoEpochRecorded", []step{query(0, 0, u, uo)}, nil},
		{"shouldReturnUnsupportedIfNoEpochRecordedAndUndefinedEpochRequested", []step{query(u, 73, u, uo)}, nil},
		{"shouldReturnFirstEpochIfRequestedEpochLessThanFirstEpoch", []step{assign(5, 11), assign(6, 12), assign(7, 13), query(4, 0, 4, 11)},
			[]EpochEntry{{5, 11}, {6, 12}, {7, 13}}},
		{"shouldTruncateIfMatchingEpochButEarlierStartingOffset", []step{assign(5, 11), assign(6, 12), assign(7, 13), assign(7, 12),
			query(5, 0, 5, 12), query(6, 0, 5, 12)}, []EpochEntry{{5, 11}, {7, 12}}},
		{"shouldGetFirstOffsetOfSubsequentEpochWhenOffsetRequestedForPreviousEpoch", []step{assign(1, 11), assign(1, 12), assign(2, 13),
			assign(2, 14), assign(3, 15), assign(3, 16), query(2, 17, 2, 15)}, []EpochEntry{{1, 11}, {2, 13}, {3, 15}}},
		{"shouldReturnNextAvailableEpochIfThereIsNoExactEpochForTheOneRequested", []step{assign(0, 10), assign(2, 13), assign(4, 17),
			query(1, 0, 0, 13), query(2, 0, 2, 17), query(3, 0, 2, 17)}, []EpochEntry{{0, 10}, {2, 13}, {4, 17}}},
		{"shouldNotUpdateEpochAndStartOffsetIfItDidNotChange", []step{assign(2, 6), assign(2, 7)}, []EpochEntry{{2, 6}}},
		{"shouldReturnInvalidOffsetIfEpochIsRequestedWhichIsNotCurrentlyTracked", []step{assign(2, 100), query(3, 100, u, uo)}, []EpochEntry{{2, 100}}},
		{"shouldSupportEpochsThatDoNotStartFromZero", []step{assign(2, 6), query(2, 7, 2, 7)}, []EpochEntry{{2, 6}}},
		{"shouldEnforceMonotonicallyIncreasingEpochs", []step{assign(1, 5), assign(2, 6), assign(1, 7), latest(1),
			query(1, 8, 1, 8), query(2, 8, u, uo)}, []EpochEntry{{1, 7}}},
		{"shouldEnforceOffsetsIncreaseMonotonically", []step{assign(2, 6), assign(3, 5)}, []EpochEntry{{3, 5}}},
		{"shouldIncreaseAndTrackEpochsAsLeadersChangeManyTimes", []step{assign(0, 0), assign(1, 0), latest(1),
			query(1, 0, 1, 0), query(0, 0, 0, 0), query(1, 5, 1, 5), query(0, 5, 0, 0),
			assign(2, 5), query(2, 10, 2, 10), query(1, 10, 1, 5), query(0, 10, 0, 0)}, []EpochEntry{{1, 0}, {2, 5}}},
		{"shouldIncreaseAndTrackEpochsAsFollowerReceivesManyMessages", []step{assign(0, 0), assign(0, 1), assign(0, 2), latest(0),
			query(0, 3, 0, 3), assign(1, 3), assign(1, 4), assign(1, 5), latest(1), query(1, 6, 1, 6),
			assign(2, 6), assign(2, 7), assign(2, 8), latest(2), query(2, 9, 2, 9), query(0, 9, 0, 3), query(1, 9, 1, 6)},
			[]EpochEntry{{0, 0}, {1, 3}, {2, 6}}},
		{"shouldDropEntriesOnEpochBoundaryWhenRemovingLatestEntries", with(truncEnd(8)), []EpochEntry{{2, 6}}},
		{"shouldPreserveResetOffsetOnClearEarliestIfOneExists", with(truncStart(8)), []EpochEntry{{3, 8}, {4, 11}}},
		{"shouldNotClearAnythingIfOffsetTooEarly", with(truncStart(1)), []EpochEntry{{2, 6}, {3, 8}, {4, 11}}},
		{"shouldNotClearAnythingIfOffsetIsFirstOffset", with(truncStart(6)), []EpochEntry{{2, 6}, {3, 8}, {4, 11}}},
		{"shouldRetainLatestEpochOnClearAllEarliest", with(truncStart(11)), []EpochEntry{{4, 11}}},
		{"shouldUpdateOffsetBetweenEpochBoundariesOnClearEarliest", with(truncStart(9)), []EpochEntry{{3, 9}, {4, 11}}},
		{"shouldUpdateOffsetBetweenFirstTwoEpochBoundariesOnClearEarliest", []step{assign(0, 0), assign(1, 7), assign(2, 10), truncStart(5)},
			[]EpochEntry{{0, 5}, {1, 7}, {2, 10}}},
		{"shouldRetainLatestEpochOnClearAllEarliestAndUpdateItsOffset", with(truncStart(15)), []EpochEntry{{4, 15}}},
		{"shouldDropEntriesBetweenEpochBoundaryWhenRemovingNewest", with(truncEnd(9), latest(3)), []EpochEntry{{2, 6}, {3, 8}}},
		{"shouldClearAllEntries", with(step{op: "clear"}, latest(-1)), nil},
		{"shouldNotResetEpochHistoryHeadIfUndefinedPassed", with(truncStart(uo)), []EpochEntry{{2, 6}, {3, 8}, {4, 11}}},
		{"shouldNotResetEpochHistoryTailIfUndefinedPassed", with(truncEnd(uo)), []EpochEntry{{2, 6}, {3, 8}, {4, 11}}},
		{"shouldFetchLatestEpochOfEmptyCache", []step{latest(-1)}, nil},
		{"shouldFetchEndOffsetOfEmptyCache", []step{query(7, 0, u, uo)}, nil},
		{"shouldClearEarliestOnEmptyCache", []step{truncStart(7)}, nil},
		{"shouldClearLatestOnEmptyCache", []step{truncEnd(7)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := OpenEpochCache(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				var err error
				switch s.op {
				case "assign":
					err = c.Assign(s.epoch, s.offset)
				case "end":
					err = c.TruncateFromEnd(s.offset)
				case "start":
					err = c.TruncateFromStart(s.offset)
				case "clear":
					err = c.Clear()
				case "latest":
					e, ok := c.Latest()
					if !ok {
						e = -1
					}
					if e != s.epoch {
						t.Errorf("step %d: latest epoch %d, want %d", i, e, s.epoch)
					}
				case "query":
					e, o := c.EndOffsetFor(s.epoch, s.offset)
					if e != s.wantEpoch || o != s.wantOff {
						t.Errorf("step %d: endOffsetFor(%d, %d) = (%d, %d), want (%d, %d)", i, s.epoch, s.offset, e, o, s.wantEpoch, s.wantOff)
					}
				}
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, s.op, err)
				}
			}
			if got := c.Entries(); fmt.Sprint(got) != fmt.Sprint(entriesOrEmpty(tc.want)) {
				t.Fatalf("entries %v, want %v", got, tc.want)
			}
			again, err := OpenEpochCache(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := again.Entries(); fmt.Sprint(got) != fmt.Sprint(entriesOrEmpty(tc.want)) {
				t.Fatalf("reopened: entries %v, want %v", got, tc.want)
			}
		})
	}
}

func entriesOrEmpty(e []EpochEntry) []EpochEntry {
	if e == nil {
		return []EpochEntry{}
	}
	return e
}

// TestEpochCheckpointFileFormat: the file is Kafka's text checkpoint, byte for byte, written
// through a temporary file that does not stay behind.
func TestEpochCheckpointFileFormat(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenEpochCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, EpochCheckpointFile)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("opening an empty cache wrote %s: %v", path, err)
	}
	for _, e := range []EpochEntry{{0, 0}, {3, 120}, {2147483647, 9223372036854775807}} {
		if err := c.Assign(e.Epoch, e.StartOffset); err != nil {
			t.Fatal(err)
		}
	}
	want := "0\n3\n0 0\n3 120\n2147483647 9223372036854775807\n"
	if got := readFile(t, path); got != want {
		t.Fatalf("file %q, want %q", got, want)
	}
	if err := c.TruncateFromEnd(120); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "0\n1\n0 0\n" {
		t.Fatalf("after TruncateFromEnd: %q", got)
	}
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "0\n0\n" {
		t.Fatalf("after Clear: %q", got)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if err := c.Assign(-1, 0); err == nil {
		t.Fatal("Assign accepted a negative epoch")
	}
}

// TestEpochCheckpointFileRead: what Kafka's reader accepts reads back (entries go through
// Assign's rules), and a malformed file is an error that names it.
func TestEpochCheckpointFileRead(t *testing.T) {
	good := []struct {
		content string
		want    []EpochEntry
	}{
		{"", []EpochEntry{}},
		{"0\n", []EpochEntry{}},
		{"0\n0\n", []EpochEntry{}},
		{"0\n2\n1 0\n4 50\n", []EpochEntry{{1, 0}, {4, 50}}},
		{"0\n2\n1   0\n4\t50", []EpochEntry{{1, 0}, {4, 50}}}, // any white space; no final newline
		{"0\n2\n3 5\n2 9\n", []EpochEntry{{2, 9}}},            // non-monotonic: Assign truncates
	}
	for _, g := range good {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, EpochCheckpointFile), []byte(g.content), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := OpenEpochCache(dir)
		if err != nil {
			t.Fatalf("%q: %v", g.content, err)
		}
		if got := c.Entries(); fmt.Sprint(got) != fmt.Sprint(g.want) {
			t.Errorf("%q: entries %v, want %v", g.content, got, g.want)
		}
	}
	bad := []string{
		"1\n0\n",             // version
		"0\nx\n",             // count
		"0\n-1\n",            // count
		"0\n2\n1 0\n",        // too few entries
		"0\n1\n1 0\n2 5\n",   // too many
		"0\n1\n1 0 7\n",      // three fields
		"0\n1\n1\n",          // one field
		"0\n1\n-2 5\n",       // negative epoch
		"0\n1\n2 -5\n",       // negative offset
		"0\n1\n2 x\n",        // not a number
		"0\n1\n4294967296 0", // epoch past int32
		"0\n1\n\n",           // empty line
	}
	for _, b := range bad {
		dir := t.TempDir()
		path := filepath.Join(dir, EpochCheckpointFile)
		if err := os.WriteFile(path, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenEpochCache(dir)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error %v, want one naming %s", b, err, path)
		}
	}
}

// TestEpochCacheCheckFetchKIP320: the leader's check of a follower's last fetched epoch.
func TestEpochCacheCheckFetchKIP320(t *testing.T) {
	c, err := OpenEpochCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []EpochEntry{{1, 0}, {3, 10}, {5, 20}} {
		if err := c.Assign(e.Epoch, e.StartOffset); err != nil {
			t.Fatal(err)
		}
	}
	const leo = 30
	none := EpochEndOffset{UndefinedEpoch, UndefinedEpochOffset}
	cases := []struct {
		name      string
		epoch     int32
		offset    int64
		div       EpochEndOffset
		diverging bool
		code      int16
	}{
		{"no last fetched epoch", -1, 25, none, false, 0},
		{"latest epoch, within the log", 5, 25, none, false, 0},
		{"latest epoch, at the log end", 5, 30, none, false, 0},
		{"older epoch, at its end", 3, 20, none, false, 0},
		{"older epoch, past its end", 3, 21, EpochEndOffset{3, 20}, true, 0},
		{"unknown epoch between known ones", 4, 20, EpochEndOffset{3, 20}, true, 0},
		{"unknown epoch between known ones, before its floor's end", 4, 15, EpochEndOffset{3, 20}, true, 0},
		{"epoch below the first", 0, 0, none, false, 0},
		{"epoch below the first, past its start", 0, 3, EpochEndOffset{0, 0}, true, 0},
		{"epoch above the latest", 6, 30, none, false, 1},
	}
	for _, tc := range cases {
		div, diverging, code := c.CheckFetch(tc.epoch, tc.offset, leo)
		if div != tc.div || diverging != tc.diverging || code != tc.code {
			t.Errorf("%s: CheckFetch(%d, %d) = (%v, %v, %d), want (%v, %v, %d)", tc.name, tc.epoch, tc.offset,
				div, diverging, code, tc.div, tc.diverging, tc.code)
		}
	}
}

// TestEpochCacheConcurrent: assignments, truncations and lookups from many goroutines (run
// with -race) leave a monotonic cache whose file matches memory.
func TestEpochCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenEpochCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				e := int32(g*50 + i)
				if err := c.Assign(e, int64(e)*10); err != nil {
					t.Error(err)
				}
				c.EndOffsetFor(e/2, int64(e)*10)
				c.Latest()
				if i%10 == 9 {
					c.TruncateFromEnd(int64(e) * 5)
				}
			}
		})
	}
	wg.Wait()
	got := c.Entries()
	for i := 1; i < len(got); i++ {
		if got[i].Epoch <= got[i-1].Epoch || got[i].StartOffset <= got[i-1].StartOffset {
			t.Fatalf("not monotonic: %v", got)
		}
	}
	again, err := OpenEpochCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again.Entries()) != fmt.Sprint(got) {
		t.Fatalf("file %v, memory %v", again.Entries(), got)
	}
}
