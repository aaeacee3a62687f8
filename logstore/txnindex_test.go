package logstore

// Tests of the aborted transaction index (KIP-98, txnindex.go) and of compaction with
// transactions (cleaner.go): real files, exact contents.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// txnTestConfig is a log config with settable segment sizes (rolls are explicit in the tests).
func txnTestConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.IndexIntervalBytes, cfg.PreallocateBytes = 1<<20, 1, 4096
	return cfg
}

func txnTestOpen(t *testing.T, dir string, rp Offset) *Log {
	t.Helper()
	l, err := Open(dir, txnTestConfig(), OpenOptions{RecoveryPoint: rp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// txnTestData is a transactional data batch of producer pid ("key=value" records).
func txnTestData(pid int64, kvs ...string) []byte {
	var recs []Record
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		recs = append(recs, Record{Key: []byte(k), Value: []byte(v)})
	}
	return AppendBatch(nil, BatchSpec{BaseTimestamp: 1_700_000_000_000, Attributes: AttrTransactional, ProducerID: pid,
		ProducerEpoch: 1, Records: recs})
}

// txnTestPlain is a batch of plain records ("key=value").
func txnTestPlain(kvs ...string) []byte {
	var recs []Record
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		recs = append(recs, Record{Key: []byte(k), Value: []byte(v)})
	}
	return AppendBatch(nil, BatchSpec{BaseTimestamp: 1_700_000_000_000, ProducerID: -1, BaseSequence: -1, Records: recs})
}

// txnTestMarker is the control batch ending producer pid's transaction (key: version 0, type
// 0 abort / 1 commit; value: version 0, coordinator epoch 0).
func txnTestMarker(pid int64, commit bool) []byte {
	typ := byte(0)
	if commit {
		typ = 1
	}
	return AppendBatch(nil, BatchSpec{BaseTimestamp: 1_700_000_000_000, Attributes: AttrControl | AttrTransactional,
		ProducerID: pid, ProducerEpoch: 1, Records: []Record{{Key: []byte{0, 0, 0, typ}, Value: []byte{0, 0, 0, 0, 0, 0}}}})
}

// txnTestAppend appends batch as leader (control batches allowed) and checks where it went.
func txnTestAppend(t *testing.T, l *Log, batch []byte, first, last Offset) {
	t.Helper()
	var info AppendInfo
	if err := l.AppendAsLeader(batch, 0, true, &info); err != nil {
		t.Fatal(err)
	}
	if info.FirstOffset != first || info.LastOffset != last {
		t.Fatalf("appended at [%d,%d], want [%d,%d]", info.FirstOffset, info.LastOffset, first, last)
	}
}

func txnTestAbort(t *testing.T, l *Log, txn AbortedTxn) {
	t.Helper()
	if err := l.AppendAbortedTxn(txn); err != nil {
		t.Fatalf("AppendAbortedTxn(%+v): %v", txn, err)
	}
}

// The entries of txnTestBuild's log, by LastOffset.
var (
	txnA = AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 2, LastStableOffset: 3}
	txnB = AbortedTxn{ProducerID: 2, FirstOffset: 3, LastOffset: 6, LastStableOffset: 5}
	txnC = AbortedTxn{ProducerID: 3, FirstOffset: 5, LastOffset: 7, LastStableOffset: 8}
	txnD = AbortedTxn{ProducerID: 4, FirstOffset: 12, LastOffset: 13, LastStableOffset: 8}
	txnE = AbortedTxn{ProducerID: 5, FirstOffset: 8, LastOffset: 14, LastStableOffset: 15}
)

// txnTestBuild writes four segments of transactions into an empty log:
//
//	segment 0   0-1 data p1 | 2 abort p1 (A) | 3-4 data p2
//	segment 5   5 data p3 | 6 abort p2 (B) | 7 abort p3 (C)
//	segment 8   8 data p5 | 9 plain
//	segment 10  10 data p1 | 11 commit p1 | 12 data p4 | 13 abort p4 (D) | 14 abort p5 (E)
//
// B and E span segments: their data is in an earlier segment than their marker.
func txnTestBuild(t *testing.T, l *Log) {
	t.Helper()
	txnTestAppend(t, l, txnTestData(1, "a=1", "b=1"), 0, 1)
	txnTestAppend(t, l, txnTestMarker(1, false), 2, 2)
	txnTestAbort(t, l, txnA)
	txnTestAppend(t, l, txnTestData(2, "c=1", "d=1"), 3, 4)
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestData(3, "e=1"), 5, 5)
	txnTestAppend(t, l, txnTestMarker(2, false), 6, 6)
	txnTestAbort(t, l, txnB)
	txnTestAppend(t, l, txnTestMarker(3, false), 7, 7)
	txnTestAbort(t, l, txnC)
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestData(5, "f=1"), 8, 8)
	txnTestAppend(t, l, txnTestPlain("g=1"), 9, 9)
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestData(1, "h=1"), 10, 10)
	txnTestAppend(t, l, txnTestMarker(1, true), 11, 11)
	txnTestAppend(t, l, txnTestData(4, "i=1"), 12, 12)
	txnTestAppend(t, l, txnTestMarker(4, false), 13, 13)
	txnTestAbort(t, l, txnD)
	txnTestAppend(t, l, txnTestMarker(5, false), 14, 14)
	txnTestAbort(t, l, txnE)
}

func mustRoll(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
}

// txnTestEncode is the file content of entries.
func txnTestEncode(entries ...AbortedTxn) []byte {
	var b []byte
	for _, e := range entries {
		b = appendTxnEntry(b, e)
	}
	return b
}

// txnTestFiles returns the .txnindex files of dir, by name.
func txnTestFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), txnIndexSuffix) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
	}
	return out
}

// checkTxnFiles fails unless the .txnindex files of dir hold exactly want (segment base ->
// entries; no file for a segment not listed).
func checkTxnFiles(t *testing.T, dir string, want map[Offset][]AbortedTxn) {
	t.Helper()
	got := txnTestFiles(t, dir)
	wantFiles := map[string][]byte{}
	for base, es := range want {
		wantFiles[filepath.Base(segmentName(dir, base, txnIndexSuffix))] = txnTestEncode(es...)
	}
	if !reflect.DeepEqual(got, wantFiles) {
		t.Errorf(".txnindex files:\n got %s\nwant %s", txnTestDescribe(got), txnTestDescribe(wantFiles))
	}
}

func txnTestDescribe(files map[string][]byte) string {
	var parts []string
	for name, b := range files {
		parts = append(parts, fmt.Sprintf("%s=%x", name, b))
	}
	return strings.Join(parts, " ")
}

func checkCollect(t *testing.T, l *Log, from, upper Offset, want ...AbortedTxn) {
	t.Helper()
	got := l.CollectAbortedTxns(from, upper, nil)
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Errorf("CollectAbortedTxns(%d, %d) = %+v, want %+v", from, upper, got, want)
	}
}

// TestAbortedTxnIndexFileFormat: one entry is 34 bytes, big-endian: version int16 0, producer
// id, first offset, last offset, last stable offset (Kafka's AbortedTxn).
func TestAbortedTxnIndexFileFormat(t *testing.T) {
	got := hex.EncodeToString(txnTestEncode(AbortedTxn{ProducerID: 0x0102030405060708, FirstOffset: 0x10, LastOffset: 0x1234, LastStableOffset: 0x1235}))
	want := "0000" + "0102030405060708" + "0000000000000010" + "0000000000001234" + "0000000000001235"
	if got != want {
		t.Fatalf("entry %s, want %s", got, want)
	}
}

// TestAbortedTxnIndexAppendCollectAcrossRolls: each entry goes to the index file of the segment
// holding its abort marker; a segment without entries has no file; all entries come back in
// LastOffset order, in memory and after a reopen (with and without a recovery scan).
func TestAbortedTxnIndexAppendCollectAcrossRolls(t *testing.T) {
	dir := t.TempDir()
	l := txnTestOpen(t, dir, 0)
	txnTestBuild(t, l)
	want := map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}, 10: {txnD, txnE}}
	checkTxnFiles(t, dir, want)
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD, txnE)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, rp := range []Offset{0, 15} {
		l := txnTestOpen(t, dir, rp)
		checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD, txnE)
		checkTxnFiles(t, dir, want)
		l.Close()
	}
	// Appends after a reopen continue the active segment's file.
	l = txnTestOpen(t, dir, 15)
	txnTestAppend(t, l, txnTestData(6, "j=1"), 15, 15)
	txnTestAppend(t, l, txnTestMarker(6, false), 16, 16)
	f := AbortedTxn{ProducerID: 6, FirstOffset: 15, LastOffset: 16, LastStableOffset: 17}
	txnTestAbort(t, l, f)
	want[10] = []AbortedTxn{txnD, txnE, f}
	checkTxnFiles(t, dir, want)
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD, txnE, f)
}

// TestCollectAbortedTxnsBoundaries: entries with LastOffset >= from and FirstOffset < upper,
// whichever segment holds them; a fetch from inside a transaction reports it; upper is
// exclusive; dst is appended to.
func TestCollectAbortedTxnsBoundaries(t *testing.T) {
	l := txnTestOpen(t, t.TempDir(), 0)
	checkCollect(t, l, 0, math.MaxInt64) // empty log
	txnTestBuild(t, l)
	for _, tc := range []struct {
		from, upper Offset
		want        []AbortedTxn
	}{
		{0, math.MaxInt64, []AbortedTxn{txnA, txnB, txnC, txnD, txnE}},
		{2, math.MaxInt64, []AbortedTxn{txnA, txnB, txnC, txnD, txnE}}, // from at A's marker
		{3, math.MaxInt64, []AbortedTxn{txnB, txnC, txnD, txnE}},       // just past A
		{4, 5, []AbortedTxn{txnB}},                                     // inside B, whose data began before
		{0, 5, []AbortedTxn{txnA, txnB}},                               // C starts at 5: upper is exclusive
		{0, 6, []AbortedTxn{txnA, txnB, txnC}},
		{0, 3, []AbortedTxn{txnA}},
		{0, 0, nil},
		{8, math.MaxInt64, []AbortedTxn{txnD, txnE}}, // C ended at 7
		{9, 10, []AbortedTxn{txnE}},                  // E began in segment 8, its marker is in segment 10
		{9, 12, []AbortedTxn{txnE}},                  // D begins at 12
		{9, 13, []AbortedTxn{txnD, txnE}},
		{14, 15, []AbortedTxn{txnE}},
		{15, math.MaxInt64, nil},
		{100, math.MaxInt64, nil},
	} {
		checkCollect(t, l, tc.from, tc.upper, tc.want...)
	}
	dst := append(make([]AbortedTxn, 0, 8), AbortedTxn{ProducerID: 99})
	if got := l.CollectAbortedTxns(13, 14, dst); !reflect.DeepEqual(got, []AbortedTxn{{ProducerID: 99}, txnD, txnE}) || &got[0] != &dst[0] {
		t.Errorf("CollectAbortedTxns into dst: %+v", got)
	}
}

// TestAppendAbortedTxnRefusesMisplacedEntries: the marker must be in the active segment, below
// the log end, after the previous entry's; the offsets must be ordered. A refused entry
// changes nothing and is not sticky.
func TestAppendAbortedTxnRefusesMisplacedEntries(t *testing.T) {
	dir := t.TempDir()
	l := txnTestOpen(t, dir, 0)
	txnTestBuild(t, l)
	for _, bad := range []AbortedTxn{
		{ProducerID: 7, FirstOffset: 14, LastOffset: 15, LastStableOffset: 16}, // marker at the log end
		{ProducerID: 7, FirstOffset: 9, LastOffset: 9, LastStableOffset: 10},   // before the active segment
		{ProducerID: 7, FirstOffset: 10, LastOffset: 14, LastStableOffset: 15}, // not after E
		{ProducerID: 7, FirstOffset: 10, LastOffset: 13, LastStableOffset: 15}, // before E
		{ProducerID: 7, FirstOffset: 15, LastOffset: 14, LastStableOffset: 15}, // first after last
		{ProducerID: 7, FirstOffset: -1, LastOffset: 14, LastStableOffset: 15},
	} {
		if err := l.AppendAbortedTxn(bad); err == nil {
			t.Errorf("AppendAbortedTxn(%+v) accepted", bad)
		}
	}
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}, 10: {txnD, txnE}})
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD, txnE)
	txnTestAppend(t, l, txnTestMarker(7, false), 15, 15)
	txnTestAbort(t, l, AbortedTxn{ProducerID: 7, FirstOffset: 15, LastOffset: 15, LastStableOffset: 16})
	l.Close()
	if err := l.AppendAbortedTxn(AbortedTxn{ProducerID: 8, FirstOffset: 15, LastOffset: 15}); !errors.Is(err, ErrClosed) {
		t.Errorf("closed log: %v", err)
	}
	checkCollect(t, l, 0, math.MaxInt64)
}

// TestTruncateAbortedTxnsFrom: entries whose marker is at or past the offset go, from memory
// and durably from the files (a file left empty is removed); appends continue after them.
func TestTruncateAbortedTxnsFrom(t *testing.T) {
	dir := t.TempDir()
	l := txnTestOpen(t, dir, 0)
	txnTestBuild(t, l)
	if err := l.TruncateAbortedTxnsFrom(7); err != nil {
		t.Fatal(err)
	}
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB)
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB}})
	// The broker derives the active segment's entries again from the log.
	txnTestAbort(t, l, txnD)
	txnTestAbort(t, l, txnE)
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB}, 10: {txnD, txnE}})
	l.Close()
	l = txnTestOpen(t, dir, 0)
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnD, txnE)
	if err := l.TruncateAbortedTxnsFrom(14); err != nil {
		t.Fatal(err)
	}
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB}, 10: {txnD}})
	if err := l.TruncateAbortedTxnsFrom(0); err != nil {
		t.Fatal(err)
	}
	checkCollect(t, l, 0, math.MaxInt64)
	checkTxnFiles(t, dir, nil)
	if l.LogEndOffset() != 15 {
		t.Errorf("log end %d: the log itself must not change", l.LogEndOffset())
	}
}

// TestTruncateToDropsAbortedTxns: a truncation drops the entries whose marker it cuts, with
// the segments it deletes; a full truncation drops them all; the index works on afterwards.
func TestTruncateToDropsAbortedTxns(t *testing.T) {
	dir := t.TempDir()
	l := txnTestOpen(t, dir, 0)
	txnTestBuild(t, l)
	if err := l.TruncateTo(14); err != nil {
		t.Fatal(err)
	}
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD)
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}, 10: {txnD}})
	if err := l.TruncateTo(7); err != nil { // into segment 5: segments 8 and 10 go
		t.Fatal(err)
	}
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB)
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB}})
	// Segment 5 is active again: a new abort marker at 7 gets an entry after B.
	txnTestAppend(t, l, txnTestMarker(3, false), 7, 7)
	c2 := AbortedTxn{ProducerID: 3, FirstOffset: 5, LastOffset: 7, LastStableOffset: 8}
	txnTestAbort(t, l, c2)
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, c2}})
	l.Close()
	l = txnTestOpen(t, dir, 0)
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, c2)

	if err := l.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	checkCollect(t, l, 0, math.MaxInt64)
	checkTxnFiles(t, dir, nil)
	txnTestAppend(t, l, txnTestData(9, "x=1"), 100, 100)
	txnTestAppend(t, l, txnTestMarker(9, false), 101, 101)
	g := AbortedTxn{ProducerID: 9, FirstOffset: 100, LastOffset: 101, LastStableOffset: 102}
	txnTestAbort(t, l, g)
	checkTxnFiles(t, dir, map[Offset][]AbortedTxn{100: {g}})
	if err := l.TruncateTo(50); err != nil { // below the log start: a full truncation
		t.Fatal(err)
	}
	checkCollect(t, l, 0, math.MaxInt64)
	checkTxnFiles(t, dir, nil)
}

// TestRetentionDeletesAbortedTxnsWithTheirSegment: a segment deleted by DeleteRecordsBefore or
// retention takes its index file and entries with it; Delete removes every file.
func TestRetentionDeletesAbortedTxnsWithTheirSegment(t *testing.T) {
	t.Run("DeleteRecordsBefore", func(t *testing.T) {
		dir := t.TempDir()
		l := txnTestOpen(t, dir, 0)
		txnTestBuild(t, l)
		if _, err := l.DeleteRecordsBefore(8); err != nil {
			t.Fatal(err)
		}
		checkCollect(t, l, 0, math.MaxInt64, txnD, txnE)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{10: {txnD, txnE}})
		l.Close()
		l = txnTestOpen(t, dir, 0)
		checkCollect(t, l, 0, math.MaxInt64, txnD, txnE)
	})
	t.Run("retention.bytes", func(t *testing.T) {
		dir := t.TempDir()
		l := txnTestOpen(t, dir, 0)
		txnTestBuild(t, l)
		st, err := os.Stat(segmentName(dir, 0, logSuffix))
		if err != nil {
			t.Fatal(err)
		}
		c := l.Config()
		c.RetentionBytes, c.RetentionMs = l.Size()-st.Size(), -1 // the first segment must go
		l.SetConfig(c)
		if n, err := l.ApplyRetention(); err != nil || n != 1 {
			t.Fatalf("retention deleted %d segments: %v", n, err)
		}
		checkCollect(t, l, 0, math.MaxInt64, txnB, txnC, txnD, txnE)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{5: {txnB, txnC}, 10: {txnD, txnE}})
	})
	t.Run("Delete", func(t *testing.T) {
		dir := t.TempDir()
		l := txnTestOpen(t, dir, 0)
		txnTestBuild(t, l)
		if err := l.Delete(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("log folder left after Delete: %v", err)
		}
	})
}

// TestAbortedTxnIndexTornTailCutAtEveryLength: a crash in the middle of writing an entry leaves
// 1 to 33 bytes of it; open keeps the whole entries before, cuts the file to them, and the next
// entry is written where the torn one began.
func TestAbortedTxnIndexTornTailCutAtEveryLength(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	l := txnTestOpen(t, src, 0)
	txnTestBuild(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(segmentName(src, 10, txnIndexSuffix))
	for k := 0; k < txnEntrySize; k++ {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(k))
		if err := copyLogDir(src, dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(dir, name), txnEntrySize+int64(k)); err != nil {
			t.Fatal(err)
		}
		l := txnTestOpen(t, dir, 15)
		checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}, 10: {txnD}})
		txnTestAbort(t, l, txnE)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}, 10: {txnD, txnE}})
		l.Close()
	}
}

// TestAbortedTxnIndexInvalidEntryEndsFile: an entry that fails validation ends the file there,
// whatever follows.
func TestAbortedTxnIndexInvalidEntryEndsFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	l := txnTestOpen(t, src, 0)
	txnTestBuild(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	badVersion := txnTestEncode(txnC)
	badVersion[1] = 1
	later := txnTestEncode(AbortedTxn{ProducerID: 3, FirstOffset: 5, LastOffset: 7}) // valid after B
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for name, tc := range map[string]struct {
		content []byte // segment 5's file
		want    []AbortedTxn
	}{
		"version 1":             {join(txnTestEncode(txnB), badVersion, later), []AbortedTxn{txnB}},
		"first after last":      {join(txnTestEncode(txnB, AbortedTxn{ProducerID: 3, FirstOffset: 8, LastOffset: 7}), later), []AbortedTxn{txnB}},
		"negative first":        {join(txnTestEncode(txnB, AbortedTxn{ProducerID: 3, FirstOffset: -5, LastOffset: 7}), later), []AbortedTxn{txnB}},
		"last not increasing":   {join(txnTestEncode(txnB, AbortedTxn{ProducerID: 3, FirstOffset: 5, LastOffset: 6}), later), []AbortedTxn{txnB}},
		"last past segment end": {join(txnTestEncode(txnB, AbortedTxn{ProducerID: 3, FirstOffset: 5, LastOffset: 8}), later), []AbortedTxn{txnB}},
		"last below segment":    {join(txnTestEncode(AbortedTxn{ProducerID: 2, FirstOffset: 1, LastOffset: 4}, txnB)), nil},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			if err := copyLogDir(src, dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(segmentName(dir, 5, txnIndexSuffix), tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			l := txnTestOpen(t, dir, 0)
			checkCollect(t, l, 0, math.MaxInt64, append(append([]AbortedTxn{txnA}, tc.want...), txnD, txnE)...)
			files := map[Offset][]AbortedTxn{0: {txnA}, 10: {txnD, txnE}}
			if tc.want != nil {
				files[5] = tc.want
			}
			checkTxnFiles(t, dir, files)
		})
	}
}

// TestOpenDropsAbortedTxnsPastLogEnd: entries whose marker is not in the recovered log (a torn
// log tail; a lost segment) are dropped at open, and their files cut or removed.
func TestOpenDropsAbortedTxnsPastLogEnd(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	l := txnTestOpen(t, src, 0)
	txnTestBuild(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("torn last batch", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "log")
		if err := copyLogDir(src, dir); err != nil {
			t.Fatal(err)
		}
		logName := segmentName(dir, 10, logSuffix)
		st, err := os.Stat(logName)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(logName, st.Size()-3); err != nil { // E's marker is torn
			t.Fatal(err)
		}
		l := txnTestOpen(t, dir, 10)
		if l.LogEndOffset() != 14 {
			t.Fatalf("log end %d after recovery, want 14", l.LogEndOffset())
		}
		checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}, 10: {txnD}})
	})
	t.Run("lost segment", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "log")
		if err := copyLogDir(src, dir); err != nil {
			t.Fatal(err)
		}
		for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			os.Remove(segmentName(dir, 10, suf))
		}
		l := txnTestOpen(t, dir, 0)
		if l.LogEndOffset() != 10 {
			t.Fatalf("log end %d after recovery, want 10", l.LogEndOffset())
		}
		checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}, 5: {txnB, txnC}})
	})
	t.Run("corrupt middle segment", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "log")
		if err := copyLogDir(src, dir); err != nil {
			t.Fatal(err)
		}
		// Segment 5's second batch (B's marker at 6) is corrupt: the log ends at 6 and the
		// later segments go with their entries.
		logName := segmentName(dir, 5, logSuffix)
		b, err := os.ReadFile(logName)
		if err != nil {
			t.Fatal(err)
		}
		var h BatchHeader
		ParseBatchHeader(b, &h)
		b[h.Size()+BatchHeaderSize] ^= 0xff
		if err := os.WriteFile(logName, b, 0o644); err != nil {
			t.Fatal(err)
		}
		l := txnTestOpen(t, dir, 0)
		if l.LogEndOffset() != 6 {
			t.Fatalf("log end %d after recovery, want 6", l.LogEndOffset())
		}
		checkCollect(t, l, 0, math.MaxInt64, txnA)
		checkTxnFiles(t, dir, map[Offset][]AbortedTxn{0: {txnA}})
	})
}

// TestSyncMakesAbortedTxnsDurable: an entry written after the log's last Sync (its marker
// already synced) is fsynced by the next Sync, which must not skip it because the log end did
// not move.
func TestSyncMakesAbortedTxnsDurable(t *testing.T) {
	l := txnTestOpen(t, t.TempDir(), 0)
	txnTestAppend(t, l, txnTestData(1, "a=1"), 0, 0)
	txnTestAppend(t, l, txnTestMarker(1, false), 1, 1)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	txnTestAbort(t, l, AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 1, LastStableOffset: 2})
	l.mu.RLock()
	s := l.active()
	l.mu.RUnlock()
	if !s.txn.unsynced.Load() || !l.txnDirty.Load() {
		t.Fatal("a written entry is not marked for the next Sync")
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.txn.unsynced.Load() || l.txnDirty.Load() || l.dirDirty.Load() {
		t.Fatal("Sync left the entry (or its new file's folder entry) unsynced")
	}
	mustRoll(t, l) // a sealed segment's unsynced entries are synced too
	txnTestAppend(t, l, txnTestMarker(2, false), 2, 2)
	txnTestAbort(t, l, AbortedTxn{ProducerID: 2, FirstOffset: 2, LastOffset: 2, LastStableOffset: 3})
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestPlain("b=1"), 3, 3)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.mu.RLock()
	for _, s := range l.segments {
		if s.txn.unsynced.Load() {
			t.Errorf("segment %d: entries left unsynced", s.base)
		}
	}
	l.mu.RUnlock()
}

// TestCollectAbortedTxnsConcurrentWithAppends: readers collect while one writer appends
// transactions, rolls, truncates and deletes old segments (run with -race); every answer is
// ordered and holds only entries the writer wrote.
func TestCollectAbortedTxnsConcurrentWithAppends(t *testing.T) {
	cfg := txnTestConfig()
	cfg.SegmentBytes = 600
	l, err := Open(t.TempDir(), cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop.Store(true)
		var info AppendInfo
		for i := 0; i < 400; i++ {
			pid := int64(i % 5)
			if err := l.AppendAsLeader(txnTestData(pid, "k=v", "k2=v"), 0, false, &info); err != nil {
				t.Error(err)
				return
			}
			first := info.FirstOffset
			if err := l.AppendAsLeader(txnTestMarker(pid, i%3 == 0), 0, true, &info); err != nil {
				t.Error(err)
				return
			}
			if i%3 != 0 {
				txn := AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: info.LastOffset, LastStableOffset: info.LastOffset + 1}
				if err := l.AppendAbortedTxn(txn); err != nil {
					t.Error(err)
					return
				}
			}
			switch i % 50 {
			case 17:
				if err := l.TruncateTo(l.LogEndOffset() - 4); err != nil {
					t.Error(err)
					return
				}
			case 33:
				if _, err := l.DeleteRecordsBefore(max(l.LogEndOffset()-100, l.LogStartOffset())); err != nil {
					t.Error(err)
					return
				}
			case 41:
				if err := l.TruncateAbortedTxnsFrom(l.LogEndOffset() - 10); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	for r := 0; r < 3; r++ {
		wg.Go(func() {
			dst := make([]AbortedTxn, 0, 1024)
			for n := 0; !stop.Load(); n++ {
				from := max(l.LogEndOffset()-Offset(n%200), 0)
				dst = l.CollectAbortedTxns(from, math.MaxInt64, dst[:0])
				prev := Offset(-1)
				for _, e := range dst {
					if e.LastOffset <= prev || e.LastOffset < from || e.FirstOffset != e.LastOffset-2 || e.LastStableOffset != e.LastOffset+1 {
						t.Errorf("collect from %d: entry %+v after %d", from, e, prev)
						return
					}
					prev = e.LastOffset
				}
			}
		})
	}
	wg.Wait()
}

// txnTestSummary describes a log's batches: "off:key=value" for records, "off:abort(pid)" or
// "off:commit(pid)" for markers, "[base,last]:empty(pid)" for batches without records.
func txnTestSummary(t *testing.T, l *Log) string {
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
		switch {
		case h.RecordCount == 0:
			out = append(out, fmt.Sprintf("[%d,%d]:empty(%d)", h.BaseOffset, h.LastOffset(), h.ProducerID))
		case h.IsControl() && len(rs) == 1 && len(rs[0].key) == 4 && rs[0].key[3] == 0:
			out = append(out, fmt.Sprintf("%d:abort(%d)", h.BaseOffset, h.ProducerID))
		case h.IsControl():
			out = append(out, fmt.Sprintf("%d:commit(%d)", h.BaseOffset, h.ProducerID))
		default:
			for _, r := range rs {
				out = append(out, fmt.Sprintf("%d:%s=%s", r.off, r.key, r.value))
			}
		}
	}
	return strings.Join(out, " ")
}

// TestCompactionDiscardsAbortedTransactions (KIP-98): the cleaner removes the records of
// aborted transactions — they never supersede a record — keeps committed transactional records
// as ordinary records and keeps every marker; an aborted batch that is its producer's last
// stays as an empty batch. The index entries and files are unchanged.
func TestCompactionDiscardsAbortedTransactions(t *testing.T) {
	l, _ := compactTestLog(t, func(c *Config) { c.SegmentBytes = 1 << 20 })
	txnTestAppend(t, l, txnTestPlain("k=v0", "m=v0"), 0, 1)
	txnTestAppend(t, l, txnTestData(7, "k=bad", "m=bad"), 2, 3)
	txnTestAppend(t, l, txnTestData(8, "m=c8", "n=c8"), 4, 5)
	txnTestAppend(t, l, txnTestMarker(7, false), 6, 6)
	first := AbortedTxn{ProducerID: 7, FirstOffset: 2, LastOffset: 6, LastStableOffset: 4}
	txnTestAbort(t, l, first)
	txnTestAppend(t, l, txnTestMarker(8, true), 7, 7)
	txnTestAppend(t, l, txnTestData(7, "z=bad2"), 8, 8)
	txnTestAppend(t, l, txnTestMarker(7, false), 9, 9)
	second := AbortedTxn{ProducerID: 7, FirstOffset: 8, LastOffset: 9, LastStableOffset: 10}
	txnTestAbort(t, l, second)
	txnTestAppend(t, l, txnTestPlain("w=1"), 10, 10)
	txnTestAppend(t, l, txnTestData(9, "o=open"), 11, 11) // an open transaction: ordinary records
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestPlain("v=1"), 12, 12) // the active segment
	files := txnTestFiles(t, l.Dir())
	st := mustCompact(t, l, true)
	want := "0:k=v0 4:m=c8 5:n=c8 6:abort(7) 7:commit(8) [8,8]:empty(7) 9:abort(7) 10:w=1 11:o=open 12:v=1"
	if got := txnTestSummary(t, l); got != want || st.AbortedRemoved != 3 || st.RecordsRemoved != 1 {
		t.Fatalf("after the pass:\n got %s\nwant %s\n%+v", got, want, st)
	}
	checkCollect(t, l, 0, math.MaxInt64, first, second)
	if got := txnTestFiles(t, l.Dir()); !reflect.DeepEqual(got, files) || len(files) != 1 {
		t.Errorf(".txnindex files changed by the pass: %s, before %s", txnTestDescribe(got), txnTestDescribe(files))
	}
	// A second pass changes nothing; a reopened log has the same entries.
	st = mustCompact(t, l, true)
	if got := txnTestSummary(t, l); got != want || st.SegmentsCleaned != 0 || st.AbortedRemoved != 0 {
		t.Fatalf("second pass: %s %+v", got, st)
	}
	dir := l.Dir()
	l.Close()
	l2 := txnTestOpen(t, dir, 0)
	checkCollect(t, l2, 0, math.MaxInt64, first, second)
	if got := txnTestSummary(t, l2); got != want {
		t.Errorf("after reopen: %s", got)
	}
}

// TestCompactionKeepsAbortedTxnsOfCleanedSegments: segments cleaned by swaps keep their index
// files byte for byte and their entries; aborted data whose marker is in a later segment is
// removed too.
func TestCompactionKeepsAbortedTxnsOfCleanedSegments(t *testing.T) {
	l, _ := compactTestLog(t, func(c *Config) { c.SegmentBytes = 1 << 20 })
	dir := l.Dir()
	txnTestBuild(t, l)
	txnTestAppend(t, l, txnTestPlain("a=2", "c=2", "g=2"), 15, 17)
	mustRoll(t, l)
	files := txnTestFiles(t, dir)
	st := mustCompact(t, l, true)
	// Gone: aborted 0-1 (A), 3-4 (B), 5 (C), 8 (E, marker in a later segment), 12 (D), and
	// g=1 superseded by g=2. Producers 2, 3, 4 and 5 keep their last batch, emptied.
	want := "2:abort(1) [3,4]:empty(2) [5,5]:empty(3) 6:abort(2) 7:abort(3) [8,8]:empty(5) 10:h=1 11:commit(1) " +
		"[12,12]:empty(4) 13:abort(4) 14:abort(5) 15:a=2 16:c=2 17:g=2"
	if got := txnTestSummary(t, l); got != want {
		t.Fatalf("after the pass:\n got %s\nwant %s\n%+v", got, want, st)
	}
	if got := txnTestFiles(t, dir); !reflect.DeepEqual(got, files) {
		t.Errorf(".txnindex files changed by the pass: %s, before %s", txnTestDescribe(got), txnTestDescribe(files))
	}
	checkCollect(t, l, 0, math.MaxInt64, txnA, txnB, txnC, txnD, txnE)
	l.Close()
	l2 := txnTestOpen(t, dir, 0)
	checkCollect(t, l2, 0, math.MaxInt64, txnA, txnB, txnC, txnD, txnE)
}

// TestCompactionRespectsCleanableLimit: a pass cleans no segment holding the cleanable limit
// (the last stable offset) or after it; nil lifts the limit.
func TestCompactionRespectsCleanableLimit(t *testing.T) {
	l, _ := compactTestLog(t, func(c *Config) { c.SegmentBytes = 1 << 20 })
	txnTestAppend(t, l, txnTestPlain("k=1"), 0, 0)
	txnTestAppend(t, l, txnTestPlain("k=2"), 1, 1)
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestPlain("k=3", "j=1"), 2, 3)
	txnTestAppend(t, l, txnTestPlain("j=2"), 4, 4)
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestPlain("k=4"), 5, 5)
	txnTestAppend(t, l, txnTestPlain("j=3"), 6, 6)
	mustRoll(t, l)
	txnTestAppend(t, l, txnTestPlain("k=5"), 7, 7)
	dir := l.Dir()
	segFile := func(base Offset) []byte {
		b, err := os.ReadFile(segmentName(dir, base, logSuffix))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	limit := Offset(3) // inside segment 2
	calls := 0
	l.SetCleanableLimit(func() Offset { calls++; return limit })
	seg2, seg5 := segFile(2), segFile(5)
	st := mustCompact(t, l, true)
	if got, want := strings.Join(contents(t, l), " "), "1:k=2 2:k=3 3:j=1 4:j=2 5:k=4 6:j=3 7:k=5"; got != want || st.EndOffset != 2 || calls != 1 {
		t.Fatalf("limit 3: %s, want %s (%+v, %d calls)", got, want, st, calls)
	}
	if !bytes.Equal(segFile(2), seg2) || !bytes.Equal(segFile(5), seg5) {
		t.Fatal("a segment at or after the limit was rewritten")
	}
	limit = 5 // segment 5's base: segment 2 may be cleaned, segment 5 not
	st = mustCompact(t, l, true)
	if got, want := strings.Join(contents(t, l), " "), "2:k=3 4:j=2 5:k=4 6:j=3 7:k=5"; got != want || st.EndOffset != 5 {
		t.Fatalf("limit 5: %s, want %s (%+v)", got, want, st)
	}
	if !bytes.Equal(segFile(5), seg5) {
		t.Fatal("the segment holding the limit was rewritten")
	}
	limit = -1 // below the log: nothing is cleanable
	if st := mustCompact(t, l, true); st.SegmentsCleaned != 0 || st.SegmentsDeleted != 0 {
		t.Fatalf("limit below the log: %+v", st)
	}
	l.SetCleanableLimit(nil)
	st = mustCompact(t, l, true)
	if got, want := strings.Join(contents(t, l), " "), "5:k=4 6:j=3 7:k=5"; got != want || st.SegmentsDeleted != 1 || st.EndOffset != 7 || calls != 3 {
		t.Fatalf("no limit: %s, want %s (%+v, %d calls)", got, want, st, calls)
	}
}

// FuzzOpenTxnIndex feeds arbitrary bytes as a segment's .txnindex file: reading it must not
// panic, must allocate no more entries than whole 34-byte entries in the file, and must keep
// exactly the longest prefix of valid entries (decode → encode gives back those bytes).
func FuzzOpenTxnIndex(f *testing.F) {
	f.Add(txnTestEncode(txnD, txnE), uint16(10), uint16(5))
	f.Add(txnTestEncode(txnD, txnE)[:50], uint16(10), uint16(5))
	f.Add(append(txnTestEncode(txnD), 0, 1, 2), uint16(10), uint16(5))
	f.Add(txnTestEncode(txnA, txnB, txnC), uint16(0), uint16(100))
	f.Add([]byte{}, uint16(0), uint16(0))
	bad := txnTestEncode(txnD, txnE)
	bad[34] = 9
	f.Add(bad, uint16(10), uint16(5))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, base, span uint16) {
		b, end := Offset(base), Offset(base)+Offset(span)
		path := segmentName(dir, b, txnIndexSuffix)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		entries, valid, size, err := readTxnIndex(path, b, end)
		if err != nil {
			t.Fatal(err)
		}
		if size != int64(len(data)) || valid != int64(len(entries))*txnEntrySize || valid > size {
			t.Fatalf("size %d valid %d with %d entries, for %d bytes", size, valid, len(entries), len(data))
		}
		if cap(entries) > len(data)/txnEntrySize {
			t.Fatalf("%d entries allocated for %d bytes", cap(entries), len(data))
		}
		if !bytes.Equal(txnTestEncode(entries...), data[:valid]) {
			t.Fatal("entries do not encode back to the bytes they were read from")
		}
		prev := b - 1
		for _, e := range entries {
			if e.FirstOffset < 0 || e.FirstOffset > e.LastOffset || e.LastOffset <= prev || e.LastOffset >= end {
				t.Fatalf("invalid entry kept: %+v after %d in [%d,%d)", e, prev, b, end)
			}
			prev = e.LastOffset
		}
		if valid+txnEntrySize <= size {
			if _, n, ok := decodeTxnEntries(entries, data[valid:valid+txnEntrySize], b, end); ok || n != 0 {
				t.Fatalf("read stopped at %d before a valid entry", valid)
			}
		}
		d, n, _ := decodeTxnEntries(nil, data, b, end)
		if int64(n) != valid || len(d) != len(entries) || (len(d) > 0 && !reflect.DeepEqual(d, entries)) {
			t.Fatalf("decoding the bytes at once kept %d bytes, reading the file %d", n, valid)
		}
	})
}
