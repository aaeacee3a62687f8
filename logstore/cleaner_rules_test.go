package logstore

// Rules of log compaction, one test each: what a pass keeps and how it re-encodes batches,
// when a pass is due, how it coexists with readers, appends and truncation, and how leftovers
// of an interrupted swap are finished.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spate-broker/spate/index"
)

// compactTestLog opens a compacted log with tiny segments and a settable clock.
func compactTestLog(t *testing.T, mod func(*Config)) (*Log, *int64) {
	t.Helper()
	clock := new(int64)
	*clock = 1_700_000_000_000
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.IndexIntervalBytes, cfg.PreallocateBytes = 1024, 1, 4096
	cfg.Compacted, cfg.MinCleanableDirtyRatio = true, 0
	cfg.Now = func() int64 { return *clock }
	if mod != nil {
		mod(&cfg)
	}
	l, err := Open(t.TempDir(), cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, clock
}

// appendKV appends one batch of key=value records ("" value = tombstone).
func appendKV(t *testing.T, l *Log, ts int64, kvs ...string) AppendInfo {
	t.Helper()
	var recs []Record
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		r := Record{Key: []byte(k)}
		if v != "" {
			r.Value = []byte(v)
		}
		recs = append(recs, r)
	}
	var info AppendInfo
	if err := l.AppendAsLeader(AppendBatch(nil, BatchSpec{BaseTimestamp: ts, ProducerID: -1, BaseSequence: -1, Records: recs}), 0, false, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// contents returns the records of the log as "offset:key=value" ("key=" for a tombstone).
func contents(t *testing.T, l *Log) []string {
	t.Helper()
	batches, err := readAllBatches(l, l.LogStartOffset())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var h BatchHeader
	for _, b := range batches {
		ParseBatchHeader(b, &h)
		rs, err := decodeTestBatch(b, &h)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%d:%s=%s", r.off, r.key, r.value))
		}
	}
	return out
}

func mustCompact(t *testing.T, l *Log, force bool) CompactStats {
	t.Helper()
	st, err := l.Compact(context.Background(), force)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCompactedLogRefusesKeylessRecords(t *testing.T) {
	useGzipCodecs(t)
	l, _ := compactTestLog(t, nil)
	keyed := AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: []Record{{Key: []byte("k"), Value: []byte("v")}}})
	keyless := AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: []Record{{Key: []byte("k"), Value: []byte("v")}, {Value: []byte("no key")}}})
	emptyKey := AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: []Record{{Key: []byte{}, Value: []byte("v")}}})
	for name, tc := range map[string]struct {
		records []byte
		code    int16
	}{
		"keyed":                  {keyed, 0},
		"empty key":              {emptyKey, 0}, // Kafka only refuses a null key
		"keyless":                {keyless, CodeInvalidRecord},
		"keyless second batch":   {append(append([]byte(nil), keyed...), keyless...), CodeInvalidRecord},
		"keyless gzip":           {gzipBatch(keyless), CodeInvalidRecord},
		"keyed gzip":             {gzipBatch(keyed), 0},
		"corrupt gzip":           {finishBatch(append(append([]byte(nil), gzipBatch(keyed)[:BatchHeaderSize]...), 1, 2, 3), 0), CodeCorruptMessage},
		"control batch, no keys": {AppendBatch(nil, BatchSpec{Attributes: AttrControl, ProducerID: 1, Records: []Record{{Value: []byte{0, 0, 0, 0}}}}), 0},
	} {
		if code := CodeOf(l.checkCompactedKeys(tc.records)); code != tc.code {
			t.Errorf("%s: code %d, want %d", name, code, tc.code)
		}
	}
	err := l.checkCompactedKeys(keyless)
	if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "Compacted topic cannot accept message without key") {
		t.Errorf("keyless: %v", err)
	}

	// Through AppendAsLeader: nothing of a refused append is written.
	var info AppendInfo
	err = l.AppendAsLeader(keyless, 0, false, &info)
	if err == nil {
		t.Fatal("AppendAsLeader accepted a keyless record on a compacted log")
	}
	if CodeOf(err) != CodeInvalidRecord || l.LogEndOffset() != 0 {
		t.Fatalf("keyless append: %v, log end %d", err, l.LogEndOffset())
	}
	if err := l.AppendAsLeader(keyed, 0, false, &info); err != nil {
		t.Fatal(err)
	}
	c := l.Config()
	c.Compacted = false
	l.SetConfig(c)
	if err := l.AppendAsLeader(keyless, 0, false, &info); err != nil {
		t.Fatalf("keyless append to a log that is not compacted: %v", err)
	}
}

// TestCompactionFilteredBatchKeepsOffsetsSequencesAndTimestamps: a batch losing some records
// starts at its first kept record, still ends at its original last offset (KAFKA-5443), keeps
// every record's sequence, timestamp, key, value and headers and the producer and leader epoch
// fields, and is recompressed with its codec when a Compress hook is set.
func TestCompactionFilteredBatchKeepsOffsetsSequencesAndTimestamps(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gzip      bool
		compress  bool
		wantCodec int
	}{{"uncompressed", false, false, 0}, {"gzip recompressed", true, true, 1}, {"gzip without Compress hook", true, false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			useGzipCodecs(t)
			if !tc.compress {
				Compress = nil
			}
			l, _ := compactTestLog(t, nil)
			base := int64(1_700_000_000_000)
			keys := []string{"a", "b", "x", "c", "b", "y"}
			var recs []Record
			for i, k := range keys {
				recs = append(recs, Record{Key: []byte(k), Value: []byte(fmt.Sprintf("%s%d", k, i)), TimestampDelta: int64(10 * (len(keys) - i)),
					Headers: []RecordHeader{{Key: "i", Value: []byte{byte(i)}}}})
			}
			a := AppendBatch(nil, BatchSpec{BaseTimestamp: base, ProducerID: 7, ProducerEpoch: 3, BaseSequence: 100, Records: recs})
			if tc.gzip {
				a = gzipBatch(a)
			}
			var info AppendInfo
			if err := l.AppendAsLeader(a, 5, false, &info); err != nil {
				t.Fatal(err)
			}
			appendKV(t, l, base+100, "a=new", "c=new", "y=new")
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
			mustCompact(t, l, true)
			batches, err := readAllBatches(l, 0)
			if err != nil || len(batches) != 2 {
				t.Fatalf("%d batches, %v", len(batches), err)
			}
			var h BatchHeader
			ParseBatchHeader(batches[0], &h)
			want := BatchHeader{BaseOffset: 2, LastOffsetDelta: 3, PartitionLeaderEpoch: 5, ProducerID: 7, ProducerEpoch: 3,
				BaseSequence: 102, RecordCount: 2, BaseTimestamp: base + 40, MaxTimestamp: base + 40}
			if h.BaseOffset != want.BaseOffset || h.LastOffset() != 5 || h.PartitionLeaderEpoch != 5 || h.ProducerID != 7 ||
				h.ProducerEpoch != 3 || h.BaseSequence != 102 || h.RecordCount != 2 || h.BaseTimestamp != want.BaseTimestamp ||
				h.MaxTimestamp != want.MaxTimestamp || h.Compression() != tc.wantCodec {
				t.Fatalf("filtered batch header %+v, want %+v with codec %d", h, want, tc.wantCodec)
			}
			rs, err := decodeTestBatch(batches[0], &h)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				orig := recs[[]int{2, 4}[i]]
				off := []Offset{2, 4}[i]
				if r.off != off || string(r.key) != string(orig.Key) || string(r.value) != string(orig.Value) ||
					r.ts != base+orig.TimestampDelta || fmt.Sprint(r.headers) != fmt.Sprint(orig.Headers) {
					t.Errorf("record %d: %+v, want offset %d %+v", i, r, off, orig)
				}
			}
			// Reads of offsets cleaned away start at the next surviving batch.
			for _, off := range []Offset{0, 1, 3, 5, 6} {
				got, err := readAllBatches(l, off)
				if err != nil || len(got) == 0 || !bytes.Equal(got[0], batches[off/6]) {
					t.Errorf("read from %d: %v", off, err)
				}
			}
		})
	}
}

func TestIncrementSequenceWrapsAsKafka(t *testing.T) {
	for _, tc := range []struct {
		seq  int32
		inc  int64
		want int32
	}{{0, 5, 5}, {math.MaxInt32 - 1, 1, math.MaxInt32}, {math.MaxInt32, 1, 0}, {math.MaxInt32 - 2, 5, 2}} {
		if got := incrementSequence(tc.seq, tc.inc); got != tc.want {
			t.Errorf("incrementSequence(%d, %d) = %d, want %d", tc.seq, tc.inc, got, tc.want)
		}
	}
}

// TestCompactionKeepsLatestValuesAndTombstonesUntilTheirHorizon walks one key's history
// through passes: superseded values go, the tombstone is stamped with a delete horizon on its
// first pass and removed by the first pass after the horizon.
func TestCompactionKeepsLatestValuesAndTombstonesUntilTheirHorizon(t *testing.T) {
	l, clock := compactTestLog(t, func(c *Config) { c.DeleteRetentionMs = 1000 })
	appendKV(t, l, *clock, "a=1", "b=1")
	appendKV(t, l, *clock, "a=2", "c=1")
	appendKV(t, l, *clock, "b=")
	appendKV(t, l, *clock, "d=1")
	l.Roll()
	st := mustCompact(t, l, true)
	if got := strings.Join(contents(t, l), " "); got != "2:a=2 3:c=1 4:b= 5:d=1" {
		t.Fatalf("after the first pass: %s (%+v)", got, st)
	}
	batches, _ := readAllBatches(l, 4)
	var h BatchHeader
	ParseBatchHeader(batches[0], &h)
	if h.Attributes&AttrDeleteHorizon == 0 || h.BaseTimestamp != *clock+1000 {
		t.Fatalf("tombstone batch %+v: want delete horizon %d", h, *clock+1000)
	}
	*clock += 999
	mustCompact(t, l, true)
	if got := strings.Join(contents(t, l), " "); got != "2:a=2 3:c=1 4:b= 5:d=1" {
		t.Fatalf("before the horizon: %s", got)
	}
	*clock++
	st = mustCompact(t, l, true)
	if got := strings.Join(contents(t, l), " "); got != "2:a=2 3:c=1 5:d=1" || st.TombstonesRemoved != 1 {
		t.Fatalf("after the horizon: %s (%+v)", got, st)
	}
}

// TestCompactionKeepsControlBatchesAndFirstSegment: control batches are copied as they are,
// and a first segment whose records are all superseded keeps its last batch, emptied; a later
// segment left without a batch is deleted.
func TestCompactionKeepsControlBatchesAndFirstSegment(t *testing.T) {
	l, clock := compactTestLog(t, nil)
	appendKV(t, l, *clock, "a=1", "b=1")
	l.Roll()
	appendKV(t, l, *clock+1, "a=2", "b=2")
	ctrl := AppendBatch(nil, BatchSpec{BaseTimestamp: *clock, Attributes: AttrControl | AttrTransactional, ProducerID: 9, ProducerEpoch: 1,
		Records: []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}})
	var info AppendInfo
	if err := l.AppendAsLeader(ctrl, 0, true, &info); err != nil {
		t.Fatal(err)
	}
	l.Roll()
	appendKV(t, l, *clock+2, "a=3", "b=3")
	l.Roll()
	appendKV(t, l, *clock+3, "a=4")
	l.Roll()
	appendKV(t, l, *clock+4, "b=4")
	l.Roll()
	before, _ := readAllBatches(l, 0)
	st := mustCompact(t, l, true)
	after, _ := readAllBatches(l, 0)
	if len(after) != 4 || st.SegmentsDeleted != 1 || l.NumSegments() != 5 {
		t.Fatalf("%d batches after the pass (%+v, %d segments), want 4: empty first batch, control batch, a=4, b=4", len(after), st, l.NumSegments())
	}
	var h BatchHeader
	ParseBatchHeader(after[0], &h)
	if h.BaseOffset != 0 || h.LastOffset() != 1 || h.RecordCount != 0 || h.MaxTimestamp != *clock {
		t.Errorf("first segment's batch %+v: want an empty batch [0,1] keeping its timestamp", h)
	}
	if !bytes.Equal(after[1], before[2]) {
		t.Errorf("control batch changed")
	}
	if got := contents(t, l); len(got) != 3 || !strings.HasPrefix(got[0], "4:") || got[1] != "7:a=4" || got[2] != "8:b=4" {
		t.Errorf("records %q, want the control record at 4, a=4 at 7, b=4 at 8", got)
	}
}

// TestCompactionRemovesKeylessRecordsOfBefore: records without a key, appended before the log
// became compacted, are removed by the cleaner (Kafka counts them as invalid and drops them).
func TestCompactionRemovesKeylessRecordsOfBefore(t *testing.T) {
	l, clock := compactTestLog(t, func(c *Config) { c.Compacted = false })
	var info AppendInfo
	b := AppendBatch(nil, BatchSpec{BaseTimestamp: *clock, ProducerID: -1, BaseSequence: -1,
		Records: []Record{{Value: []byte("x")}, {Key: []byte("k"), Value: []byte("v")}, {Value: []byte("y")}}})
	if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
		t.Fatal(err)
	}
	l.Roll()
	if st := mustCompact(t, l, true); st.Ran {
		t.Fatalf("a log that is not compacted was compacted: %+v", st)
	}
	c := l.Config()
	c.Compacted = true
	l.SetConfig(c)
	st := mustCompact(t, l, true)
	if got := strings.Join(contents(t, l), " "); got != "1:k=v" || st.RecordsRemoved != 2 {
		t.Errorf("records %s (%+v)", got, st)
	}
}

// TestCompactionKeepsLastBatchOfEachProducer: a producer's last batch stays (emptied when all
// its records are superseded) so its sequence survives; earlier emptied batches go.
func TestCompactionKeepsLastBatchOfEachProducer(t *testing.T) {
	l, clock := compactTestLog(t, nil)
	var info AppendInfo
	for i := 0; i < 3; i++ {
		b := AppendBatch(nil, BatchSpec{BaseTimestamp: *clock, ProducerID: 42, ProducerEpoch: 2, BaseSequence: int32(2 * i),
			Records: []Record{{Key: []byte("p"), Value: []byte{byte(i)}}, {Key: []byte("q"), Value: []byte{byte(i)}}}})
		if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
			t.Fatal(err)
		}
	}
	appendKV(t, l, *clock, "p=other", "q=other")
	l.Roll()
	mustCompact(t, l, true)
	batches, _ := readAllBatches(l, 0)
	var got []string
	var h BatchHeader
	for _, b := range batches {
		ParseBatchHeader(b, &h)
		got = append(got, fmt.Sprintf("[%d,%d]pid%d/seq%d/n%d", h.BaseOffset, h.LastOffset(), h.ProducerID, h.BaseSequence, h.RecordCount))
	}
	// The first segment keeps its last batch anyway; here that is the producer's last.
	if want := "[4,5]pid42/seq4/n0 [6,7]pid-1/seq-1/n2"; strings.Join(got, " ") != want {
		t.Errorf("batches %s, want %s", strings.Join(got, " "), want)
	}
}

// TestCompactionDueRules: min.cleanable.dirty.ratio, min.compaction.lag.ms,
// max.compaction.lag.ms and a passed delete horizon decide when an unforced pass runs.
func TestCompactionDueRules(t *testing.T) {
	t.Run("dirty ratio", func(t *testing.T) {
		l, clock := compactTestLog(t, func(c *Config) { c.MinCleanableDirtyRatio = 0.5 })
		for i := 0; i < 20; i++ {
			appendKV(t, l, *clock, fmt.Sprintf("k%d=%d", i%3, i))
		}
		l.Roll()
		if st := mustCompact(t, l, false); !st.Ran {
			t.Fatal("all dirty: no pass")
		}
		appendKV(t, l, *clock, "k0=x")
		l.Roll()
		if st := mustCompact(t, l, false); st.Ran {
			t.Fatalf("one dirty batch of four: a pass ran %+v", st)
		}
		for i := 0; i < 4; i++ {
			appendKV(t, l, *clock, fmt.Sprintf("k%d=y", i))
		}
		l.Roll()
		if st := mustCompact(t, l, false); !st.Ran {
			t.Fatal("mostly dirty: no pass")
		}
	})
	t.Run("min compaction lag", func(t *testing.T) {
		l, clock := compactTestLog(t, func(c *Config) { c.MinCompactionLagMs = 1000 })
		appendKV(t, l, *clock, "a=1")
		appendKV(t, l, *clock, "a=2")
		l.Roll()
		if st := mustCompact(t, l, false); st.Ran {
			t.Fatalf("records younger than min.compaction.lag.ms were cleaned: %+v", st)
		}
		if st := mustCompact(t, l, true); st.EndOffset != 0 || len(contents(t, l)) != 2 {
			t.Fatalf("a forced pass cleaned records younger than min.compaction.lag.ms: %+v", st)
		}
		*clock += 1001
		if st := mustCompact(t, l, false); !st.Ran || len(contents(t, l)) != 1 {
			t.Fatalf("old enough: %+v %v", st, contents(t, l))
		}
	})
	t.Run("max compaction lag", func(t *testing.T) {
		l, clock := compactTestLog(t, func(c *Config) { c.MinCleanableDirtyRatio = 1 })
		appendKV(t, l, *clock, "a=1")
		l.Roll()
		mustCompact(t, l, false) // all dirty
		appendKV(t, l, *clock, "a=2")
		l.Roll()
		if st := mustCompact(t, l, false); st.Ran {
			t.Fatalf("ratio 1 with a clean part: a pass ran %+v", st)
		}
		c := l.Config()
		c.MaxCompactionLagMs = 500
		l.SetConfig(c)
		*clock += 501
		if st := mustCompact(t, l, false); !st.Ran {
			t.Fatal("max.compaction.lag.ms passed: no pass")
		}
	})
	t.Run("delete horizon", func(t *testing.T) {
		l, clock := compactTestLog(t, func(c *Config) { c.DeleteRetentionMs = 100; c.MinCleanableDirtyRatio = 0.9 })
		appendKV(t, l, *clock, "a=1", "a=")
		l.Roll()
		mustCompact(t, l, false)
		if st := mustCompact(t, l, false); st.Ran {
			t.Fatalf("nothing dirty, horizon ahead: a pass ran %+v", st)
		}
		*clock += 100
		if st := mustCompact(t, l, false); !st.Ran || st.TombstonesRemoved != 1 {
			t.Fatalf("horizon passed: %+v", st)
		}
	})
}

// TestCompactionSmallKeyMapTakesSeveralPasses: with a key map smaller than the dirty part, a
// pass maps what fits and the next pass goes on from there.
func TestCompactionSmallKeyMapTakesSeveralPasses(t *testing.T) {
	l, clock := compactTestLog(t, func(c *Config) { c.CleanerBufferBytes = 16 * offsetMapEntryBytes })
	for round := 0; round < 3; round++ {
		for k := 0; k < 40; k += 4 {
			appendKV(t, l, *clock, fmt.Sprintf("k%02d=%d", k, round), fmt.Sprintf("k%02d=%d", k+1, round),
				fmt.Sprintf("k%02d=%d", k+2, round), fmt.Sprintf("k%02d=%d", k+3, round))
		}
	}
	l.Roll()
	leo := l.LogEndOffset()
	passes := 0
	for end := Offset(0); end < leo; passes++ {
		st := mustCompact(t, l, true)
		if !st.Complete || st.EndOffset <= end && st.EndOffset < leo {
			t.Fatalf("pass %d made no progress: %+v", passes, st)
		}
		end = st.EndOffset
	}
	if passes < 5 {
		t.Errorf("%d passes for 120 records with a 12-key map", passes)
	}
	got := contents(t, l)
	if len(got) != 40 {
		t.Errorf("%d records left, want 40: %v", len(got), got)
	}
}

// TestCompactionIgnoresCheckpointAfterTruncation: when the log below the cleaner's checkpoint
// was truncated and rewritten, the next pass treats the whole log as dirty.
func TestCompactionIgnoresCheckpointAfterTruncation(t *testing.T) {
	l, clock := compactTestLog(t, nil)
	for i := 0; i < 30; i++ {
		appendKV(t, l, *clock, fmt.Sprintf("k%d=a%d", i%5, i))
	}
	l.Roll()
	st := mustCompact(t, l, true)
	if st.EndOffset != 30 {
		t.Fatalf("first pass %+v", st)
	}
	if err := l.TruncateTo(27); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		appendKV(t, l, *clock, fmt.Sprintf("k%d=b%d", i%7, i))
	}
	l.Roll()
	st = mustCompact(t, l, true)
	if st.FirstDirty != l.LogStartOffset() {
		t.Fatalf("pass after a truncation below the checkpoint started at %d: %+v", st.FirstDirty, st)
	}
	seen := map[string]bool{}
	for _, r := range contents(t, l) {
		k := r[strings.Index(r, ":")+1 : strings.Index(r, "=")]
		if seen[k] {
			t.Errorf("key %s twice after a complete pass: %v", k, contents(t, l))
		}
		seen[k] = true
	}
}

// TestCompactionEndStopsAtTheActiveSegment: when a truncation makes the segment holding the
// checkpoint active again, a pass neither ends past that segment's base (the active segment is
// never cleaned, so its tombstones stay) nor leaves the segment's delete horizons out of the
// checkpoint: once it is sealed, a pass cleans it and removes its expired tombstones.
// (Regression: TestCompactionAgainstModel/small-key-map -seed 1795681730806375632.)
func TestCompactionEndStopsAtTheActiveSegment(t *testing.T) {
	l, clock := compactTestLog(t, func(c *Config) {
		c.DeleteRetentionMs, c.CleanerBufferBytes = 100, 16*offsetMapEntryBytes // 12 keys a pass
	})
	appendKV(t, l, *clock, "z=1") // 0
	l.Roll()
	appendKV(t, l, *clock, "t=") // 1: the tombstone
	for k := 0; k < 14; k++ {
		appendKV(t, l, *clock, fmt.Sprintf("k%02d=1", k)) // 2..15, one batch each
	}
	l.Roll()
	if st := mustCompact(t, l, true); !st.Complete || st.EndOffset != 12 {
		t.Fatalf("first pass (12 keys fit: z, t, k00..k09) %+v", st)
	}
	if err := l.TruncateTo(12); err != nil { // the segment at 1 is active again, ending at 12
		t.Fatal(err)
	}
	*clock += 100 // the tombstone's horizon
	st := mustCompact(t, l, true)
	if !st.Complete || st.EndOffset > 1 {
		t.Fatalf("pass with the active segment at 1 ended at %d: %+v", st.EndOffset, st)
	}
	if got := contents(t, l); len(got) != 12 || got[1] != "1:t=" {
		t.Fatalf("the active segment was cleaned: %v", got)
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if st := mustCompact(t, l, false); !st.Ran || st.TombstonesRemoved != 1 {
		t.Fatalf("pass after the roll: %+v %v", st, contents(t, l))
	}
}

// TestCompactionReadersKeepTheOldSegment: a read result taken before a pass keeps returning the
// old bytes, from its view and from its file, until it is released.
func TestCompactionReadersKeepTheOldSegment(t *testing.T) {
	l, clock := compactTestLog(t, func(c *Config) { c.SegmentBytes = 1 << 20 })
	for i := 0; i < 50; i++ {
		appendKV(t, l, *clock, fmt.Sprintf("k%d=%d", i%4, i))
	}
	l.Roll()
	var res ReadResult
	if err := l.Read(0, 1<<20, l.LogEndOffset(), true, &res); err != nil || len(res.Regions) != 1 {
		t.Fatalf("read: %v", err)
	}
	old := append([]byte(nil), res.Regions[0].Data...)
	if st := mustCompact(t, l, true); st.SegmentsCleaned != 1 {
		t.Fatalf("pass %+v", st)
	}
	r := res.Regions[0]
	buf := make([]byte, r.Len)
	if _, err := r.File.ReadAt(buf, r.Pos); err != nil || !bytes.Equal(buf, old) || !bytes.Equal(r.Data, old) {
		t.Fatalf("old read result changed under a pass: %v", err)
	}
	res.Release()
	if got := contents(t, l); len(got) != 4 {
		t.Errorf("after the pass: %v", got)
	}
}

// TestCompactionConcurrentWithAppendsReadsAndRolls runs passes back to back beside an appender
// and readers (run it with -race): every read returns whole, valid batches with increasing
// offsets, whose file region matches its view.
func TestCompactionConcurrentWithAppendsReadsAndRolls(t *testing.T) {
	l, _ := compactTestLog(t, func(c *Config) { c.Now = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var passes, reads atomic.Int64
	fail := make(chan error, 3)
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			var info AppendInfo
			b := AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: []Record{
				{Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprint(i))}, {Key: []byte(fmt.Sprintf("k%d", i%5))}}})
			if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
				fail <- err
				return
			}
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil || passes.Load() == 0 { // at least one whole pass, however slow the disk
			if _, err := l.Compact(context.Background(), true); err != nil {
				fail <- err
				return
			}
			passes.Add(1)
		}
	})
	wg.Go(func() {
		var res ReadResult
		var h BatchHeader
		for i := int64(0); ctx.Err() == nil; i++ {
			leo := l.LogEndOffset()
			off := i * 7919 % (leo + 1)
			if err := l.Read(off, 4096, leo, true, &res); err != nil {
				fail <- fmt.Errorf("read %d: %w", off, err)
				return
			}
			last := Offset(-1)
			for _, r := range res.Regions {
				buf := make([]byte, r.Len)
				if _, err := r.File.ReadAt(buf, r.Pos); err != nil || !bytes.Equal(buf, r.Data) {
					fail <- fmt.Errorf("read %d: file region differs from its view (%v)", off, err)
					return
				}
				for b := r.Data; len(b) > 0; b = b[h.Size():] {
					if err := CheckBatch(b, 0, &h); err != nil || h.BaseOffset <= last || h.LastOffset() < off {
						fail <- fmt.Errorf("read %d: batch [%d,%d] after %d: %v", off, h.BaseOffset, h.LastOffset(), last, err)
						return
					}
					last = h.LastOffset()
				}
			}
			res.Release()
			reads.Add(1)
		}
	})
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	if passes.Load() == 0 || reads.Load() == 0 {
		t.Fatalf("%d passes, %d reads", passes.Load(), reads.Load())
	}
	t.Logf("%d passes, %d reads, log end %d, %d segments", passes.Load(), reads.Load(), l.LogEndOffset(), l.NumSegments())
}

// TestFinishCleanerFiles checks the recovery rules for the files an interrupted swap leaves.
func TestFinishCleanerFiles(t *testing.T) {
	dir := t.TempDir()
	name := func(base Offset, suf string) string { return filepath.Base(segmentName(dir, base, suf)) }
	files := map[string]string{
		// committed swap: the log is in place, its indexes are still .swap
		name(10, logSuffix): "new", name(10, indexSuffix) + swapSuffix: "i10", name(10, timeIndexSuffix) + swapSuffix: "t10",
		// uncommitted swap: rolled back
		name(20, logSuffix): "old", name(20, indexSuffix): "old-i20", name(20, logSuffix) + swapSuffix: "new",
		name(20, indexSuffix) + swapSuffix: "i20",
		// a copy being written
		name(30, logSuffix) + cleanedSuffix: "x", name(30, indexSuffix) + cleanedSuffix: "x",
		// an index .swap without its log
		name(40, indexSuffix) + swapSuffix: "i40",
		// an index .swap whose final name exists (rebuilt meanwhile)
		name(50, logSuffix): "new", name(50, indexSuffix): "rebuilt", name(50, indexSuffix) + swapSuffix: "i50",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := finishCleanerFiles(dir); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got[e.Name()] = string(b)
	}
	want := map[string]string{
		name(10, logSuffix): "new", name(10, indexSuffix): "i10", name(10, timeIndexSuffix): "t10",
		name(20, logSuffix): "old", name(20, indexSuffix): "old-i20",
		name(50, logSuffix): "new", name(50, indexSuffix): "rebuilt",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after recovery:\n got %v\nwant %v", got, want)
	}
}

// TestOpenFinishesAnInterruptedSwap: Open rolls back an uncommitted swap and completes a
// committed one (needs Open to call finishCleanerFiles).
func TestOpenFinishesAnInterruptedSwap(t *testing.T) {
	root := t.TempDir()
	l, clock := compactTestLog(t, nil)
	for i := 0; i < 40; i++ {
		appendKV(t, l, *clock, fmt.Sprintf("k%d=%d", i%3, i))
	}
	l.Roll()
	images := map[string]string{}
	defer func() { testHookCleaner = func(string) {} }()
	testHookCleaner = func(step string) {
		if _, ok := images[step]; !ok && (step == "indexes-removed" || step == "committed") {
			images[step] = filepath.Join(root, step)
			if err := copyLogDir(l.Dir(), images[step]); err != nil {
				t.Error(err)
			}
		}
	}
	mustCompact(t, l, true)
	want := contents(t, l)
	for step, img := range images {
		cfg := l.Config()
		il, err := Open(img, cfg, OpenOptions{})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		ents, _ := os.ReadDir(img)
		var left []string
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), swapSuffix) || strings.HasSuffix(e.Name(), cleanedSuffix) {
				left = append(left, e.Name())
			}
		}
		got := contents(t, il)
		il.Close()
		if len(left) > 0 {
			t.Fatalf("Open left cleaner files behind: %v", left)
		}
		latest := map[string]string{}
		for _, r := range got {
			kv := r[strings.Index(r, ":")+1:]
			latest[kv[:strings.Index(kv, "=")]] = kv
		}
		for _, r := range want {
			kv := r[strings.Index(r, ":")+1:]
			if latest[kv[:strings.Index(kv, "=")]] != kv {
				t.Errorf("%s: after open %v, want the latest values of %v", step, got, want)
			}
		}
		if step == "committed" {
			if _, err := os.Stat(segmentName(img, 0, indexSuffix)); err != nil {
				t.Errorf("committed swap: index not completed: %v", err)
			}
		}
	}
}

// TestStoreMaintainCompacts: the store's background work runs compaction passes.
func TestStoreMaintainCompacts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.Compacted, cfg.MinCleanableDirtyRatio = 1024, true, 0.5
	s, err := OpenStore(t.TempDir(), func(TopicPartition) Config { return cfg })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.CreateLog(TopicPartition{"compacted", 0}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		appendKV(t, l, time.Now().UnixMilli(), fmt.Sprintf("k%d=%d", i%3, i))
	}
	l.Roll()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Maintain(ctx, time.Hour, 5*time.Millisecond, time.Hour)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(contents(t, l)) != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := contents(t, l); len(got) != 3 {
		t.Errorf("after Maintain: %v", got)
	}
}

// TestCompactionStopsWhenTruncatedUnderIt: a truncation into the segments the key map was built
// from, while a pass runs, stops the pass before it drops a record on the word of a record that
// is gone.
func TestCompactionStopsWhenTruncatedUnderIt(t *testing.T) {
	for _, reappend := range []bool{false, true} {
		t.Run(fmt.Sprintf("reappend=%v", reappend), func(t *testing.T) {
			l, clock := compactTestLog(t, nil)
			for _, kv := range []string{"a=1", "b=1", "a=2", "b=2"} {
				appendKV(t, l, *clock, kv)
				l.Roll()
			}
			defer func() { testHookCleaner = func(string) {} }()
			done := false
			testHookCleaner = func(step string) {
				if step != "staged" || done {
					return
				}
				done = true
				if err := l.TruncateTo(2); err != nil {
					t.Error(err)
				}
				if reappend {
					appendKV(t, l, *clock, "c=3")
					appendKV(t, l, *clock, "d=3")
					l.Roll()
				}
			}
			st := mustCompact(t, l, true)
			if st.Complete || st.SegmentsCleaned != 0 {
				t.Fatalf("pass went on after a truncation under it: %+v", st)
			}
			want := "0:a=1 1:b=1"
			if reappend {
				want += " 2:c=3 3:d=3"
			}
			if got := strings.Join(contents(t, l), " "); got != want {
				t.Fatalf("after the stopped pass: %s, want %s", got, want)
			}
			testHookCleaner = func(string) {}
			if st := mustCompact(t, l, true); !st.Complete || st.FirstDirty != 0 {
				t.Fatalf("next pass: %+v", st)
			}
			if got := strings.Join(contents(t, l), " "); got != want {
				t.Fatalf("after the next pass: %s, want %s", got, want)
			}
		})
	}
}

// TestCompactionWritesValidIndexes: the indexes written with a cleaned segment pass the checks
// a sealed segment's indexes get when loaded, and every entry is exact: an offset index entry
// points at a batch ending at its offset, a time index entry holds the largest timestamp up to
// the batch it names.
func TestCompactionWritesValidIndexes(t *testing.T) {
	for _, interval := range []int64{1, 200} {
		t.Run(fmt.Sprintf("interval=%d", interval), func(t *testing.T) {
			l, clock := compactTestLog(t, func(c *Config) { c.IndexIntervalBytes, c.SegmentBytes = interval, 4096 })
			for i := 0; i < 300; i++ {
				*clock += int64(i % 7)
				appendKV(t, l, *clock-int64(i%5)*3, fmt.Sprintf("k%d=%d", i%11, i), fmt.Sprintf("j%d=%d", i%3, i))
			}
			l.Roll()
			if st := mustCompact(t, l, true); st.SegmentsCleaned == 0 {
				t.Fatalf("pass %+v", st)
			}
			dir := l.Dir()
			l.Close()
			bases, _, err := listSegments(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i, base := range bases[:len(bases)-1] {
				data, err := os.ReadFile(segmentName(dir, base, logSuffix))
				if err != nil {
					t.Fatal(err)
				}
				relEnd := uint64(bases[i+1] - base)
				oidx, err := index.OpenOffsetIndex(segmentName(dir, base, indexSuffix), 1<<20, false)
				if err != nil {
					t.Fatal(err)
				}
				tidx, err := index.OpenTimeIndex(segmentName(dir, base, timeIndexSuffix), 1<<20, false)
				if err != nil {
					t.Fatal(err)
				}
				if err := oidx.Check(int64(len(data)), relEnd); err != nil {
					t.Errorf("segment %d: %v", base, err)
				}
				if err := tidx.Check(relEnd); err != nil {
					t.Errorf("segment %d: %v", base, err)
				}
				lastAt, maxTsAt := map[int64]Offset{}, map[Offset]int64{}
				var h BatchHeader
				maxTs := int64(-1)
				for pos := int64(0); headerAt(data, pos, &h); pos += int64(h.Size()) {
					lastAt[pos] = h.LastOffset()
					maxTs = max(maxTs, h.MaxTimestamp)
					maxTsAt[h.LastOffset()] = maxTs
				}
				for j := 0; j < oidx.Entries(); j++ {
					if e := oidx.Entry(j); lastAt[int64(e.Position)] != base+int64(e.RelOffset) {
						t.Errorf("segment %d: offset index entry %+v: the batch there ends at %d", base, e, lastAt[int64(e.Position)])
					}
				}
				for j := 0; j < tidx.Entries(); j++ {
					if e := tidx.Entry(j); maxTsAt[base+int64(e.RelOffset)] != e.Timestamp {
						t.Errorf("segment %d: time index entry %+v: largest timestamp there is %d", base, e, maxTsAt[base+int64(e.RelOffset)])
					}
				}
				if e, ok := tidx.Last(); !ok || e.Timestamp != maxTs {
					t.Errorf("segment %d: last time index entry %+v %v, segment max timestamp %d", base, e, ok, maxTs)
				}
				oidx.Close()
				tidx.Close()
			}
		})
	}
}
