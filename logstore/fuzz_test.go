package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeedSpecs are valid batches of every shape the log stores, encoded by AppendBatch.
func fuzzSeedSpecs() []BatchSpec {
	big := bytes.Repeat([]byte("v"), 5000) // multi-byte varint lengths
	return []BatchSpec{
		{BaseTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, // no records
		{BaseTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
			Records: []Record{{Key: []byte("k"), Value: []byte("value")}}},
		{BaseTimestamp: 1_700_000_000_000, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 7,
			PartitionLeaderEpoch: 5, Records: []Record{
				{Value: []byte("a"), TimestampDelta: 5},
				{Key: []byte{}, Value: nil, TimestampDelta: -3},
				{Key: []byte("key"), Value: []byte("with headers"), TimestampDelta: 70,
					Headers: []RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: nil}}},
			}},
		{BaseTimestamp: 2000, ProducerID: 9, ProducerEpoch: 1, Attributes: AttrControl | AttrTransactional,
			Records: []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}},
		{BaseTimestamp: 3000, Attributes: AttrLogAppendTime, ProducerID: -1,
			Records: []Record{{Value: []byte("x")}, {Value: []byte("y"), TimestampDelta: 1}}},
		{BaseTimestamp: 4000, Attributes: 1, ProducerID: -1, // flagged gzip: records are opaque
			Records: []Record{{Value: []byte("not really compressed")}}},
		{BaseTimestamp: 5000, ProducerID: -1, Records: []Record{{Value: big}}},
		{BaseTimestamp: -1, ProducerID: -1, Records: []Record{{Value: []byte("no timestamp")}}},
	}
}

func fuzzSeedBatches() [][]byte {
	var out [][]byte
	for _, s := range fuzzSeedSpecs() {
		out = append(out, AppendBatch(nil, s))
	}
	return out
}

// checkErrorClass fails unless err is one of the validation errors CheckBatch may return:
// corruption and invalid input are errors of their own class, never I/O errors.
func checkErrorClass(t *testing.T, err error) {
	t.Helper()
	switch CodeOf(err) {
	case CodeCorruptMessage, CodeInvalidRecord, CodeUnsupportedForMessageFormat, CodeMessageTooLarge:
	default:
		t.Fatalf("CheckBatch returned %v (code %d), not a validation error", err, CodeOf(err))
	}
}

// FuzzCheckBatch feeds arbitrary bytes to CheckBatch. A batch it accepts must be internally
// consistent and must survive the rewrites the log makes (base offset, leader epoch); the
// record walkers must not panic on it.
func FuzzCheckBatch(f *testing.F) {
	for _, b := range fuzzSeedBatches() {
		f.Add(b, uint16(0))
		f.Add(b, uint16(len(b)))
		f.Add(b, uint16(len(b)-1))
		f.Add(append(append([]byte(nil), b...), b...), uint16(100))
		f.Add(b[:len(b)-1], uint16(0))
		f.Add(b[:BatchHeaderSize-1], uint16(0))
	}
	bad := AppendBatch(nil, fuzzSeedSpecs()[1])
	bad[offMagic] = 1
	f.Add(bad, uint16(0))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, maxBatch uint16) {
		var h0, hm BatchHeader
		err0 := CheckBatch(b, 0, &h0)
		errm := CheckBatch(b, int(maxBatch), &hm)
		if err0 != nil {
			checkErrorClass(t, err0)
			if errm == nil {
				t.Fatalf("accepted with maxBatch %d but refused without a bound: %v", maxBatch, err0)
			}
			return
		}
		if errm != nil {
			checkErrorClass(t, errm)
			if maxBatch == 0 || h0.Size() <= int(maxBatch) || !errors.Is(errm, ErrTooLarge) {
				t.Fatalf("a %d-byte batch refused with maxBatch %d: %v", h0.Size(), maxBatch, errm)
			}
		} else if maxBatch > 0 && h0.Size() > int(maxBatch) {
			t.Fatalf("a %d-byte batch accepted with maxBatch %d", h0.Size(), maxBatch)
		}
		checkAcceptedBatch(t, b, &h0)
	})
}

func checkAcceptedBatch(t *testing.T, b []byte, h *BatchHeader) {
	size := h.Size()
	if size < BatchHeaderSize || size > len(b) {
		t.Fatalf("accepted batch of size %d with %d bytes given", size, len(b))
	}
	var p BatchHeader
	ParseBatchHeader(b, &p)
	if p != *h {
		t.Fatalf("CheckBatch header %+v, ParseBatchHeader %+v", *h, p)
	}
	if h.Magic != 2 || h.RecordCount < 0 || h.LastOffsetDelta < 0 || h.Compression() > 4 {
		t.Fatalf("accepted header %+v", *h)
	}
	if got := BatchCRC(b[:size]); got != h.CRC {
		t.Fatalf("accepted batch CRC %08x, computed %08x", h.CRC, got)
	}
	// The batch alone checks the same; one byte short it is refused.
	var e BatchHeader
	if err := CheckBatch(b[:size], 0, &e); err != nil || e != *h {
		t.Fatalf("the batch alone: %v, header %+v", err, e)
	}
	if err := CheckBatch(b[:size-1], 0, &e); err == nil {
		t.Fatal("a batch one byte short was accepted")
	}
	// Re-encode as the log does (new base offset and leader epoch, both outside the CRC):
	// still valid, same header but for those two fields.
	c := append([]byte(nil), b[:size]...)
	SetBaseOffset(c, h.BaseOffset^0x5a5a)
	SetPartitionLeaderEpoch(c, ^h.PartitionLeaderEpoch)
	if err := CheckBatch(c, size, &e); err != nil {
		t.Fatalf("re-encoded batch refused: %v", err)
	}
	want := *h
	want.BaseOffset, want.PartitionLeaderEpoch = h.BaseOffset^0x5a5a, ^h.PartitionLeaderEpoch
	if e != want {
		t.Fatalf("re-encoded header %+v, want %+v", e, want)
	}
	// Any byte flipped under the CRC is caught.
	for _, i := range []int{offAttributes, offRecordCount + 3, size - 1} {
		c[i] ^= 0x41
		if err := CheckBatch(c, 0, &e); err == nil {
			t.Fatalf("byte %d flipped under the CRC was accepted", i)
		}
		c[i] ^= 0x41
	}
	// The record walkers never panic on an accepted batch.
	recs := b[BatchHeaderSize:size]
	calls := int32(0)
	ok := ForEachRecord(recs, h.RecordCount, h.BaseTimestamp, -1, func(r RecordInfo) bool {
		calls++
		if r.OffsetDelta < 0 {
			t.Fatalf("record %d: negative offset delta %d", calls, r.OffsetDelta)
		}
		return true
	})
	if ok && h.Compression() == 0 && calls != h.RecordCount {
		t.Fatalf("ForEachRecord reported success after %d of %d records", calls, h.RecordCount)
	}
	batch := b[:size]
	forEachRecord(batch, h, func(off Offset, ts int64) bool {
		if off < h.BaseOffset {
			t.Fatalf("record offset %d below the base %d", off, h.BaseOffset)
		}
		if h.Attributes&AttrLogAppendTime != 0 && ts != h.MaxTimestamp {
			t.Fatalf("LogAppendTime batch: record timestamp %d, batch %d", ts, h.MaxTimestamp)
		}
		return true
	})
	if r, found := firstRecordAtOrAfter(batch, h, h.BaseTimestamp, h.BaseOffset); found && r.Offset < h.BaseOffset {
		t.Fatalf("firstRecordAtOrAfter returned offset %d below the base %d", r.Offset, h.BaseOffset)
	}
}

// FuzzForEachRecord feeds arbitrary records sections to ForEachRecord. Each reported record
// consumes at least 4 bytes (length, attributes, timestamp and offset varints), so the work is
// bounded by the input, not by the untrusted count; ForEachRecord holds no make() or append
// (checked by reading it, and by TestForEachRecordAllocatesNothing).
func FuzzForEachRecord(f *testing.F) {
	for _, b := range fuzzSeedBatches() {
		var h BatchHeader
		ParseBatchHeader(b, &h)
		recs := b[BatchHeaderSize:]
		f.Add(recs, h.RecordCount, h.BaseTimestamp, int64(-1), uint8(0))
		f.Add(recs, h.RecordCount, h.BaseTimestamp, h.MaxTimestamp, uint8(1))
		f.Add(recs, h.RecordCount+1, h.BaseTimestamp, int64(-1), uint8(0))
		f.Add(recs, int32(1<<31-1), int64(0), int64(-1), uint8(0))
		f.Add(recs, int32(-1), int64(0), int64(-1), uint8(0))
		if len(recs) > 0 {
			f.Add(recs[:len(recs)-1], h.RecordCount, int64(0), int64(-1), uint8(0))
		}
	}
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, int32(1), int64(0), int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, recs []byte, count int32, baseTs, logAppendTs int64, stop uint8) {
		calls := 0
		ok := ForEachRecord(recs, count, baseTs, logAppendTs, func(r RecordInfo) bool {
			calls++
			if r.OffsetDelta < 0 {
				t.Fatalf("record %d: negative offset delta %d", calls, r.OffsetDelta)
			}
			if logAppendTs >= 0 && r.Timestamp != logAppendTs {
				t.Fatalf("record %d: timestamp %d, want the log append time %d", calls, r.Timestamp, logAppendTs)
			}
			return stop == 0 || calls < int(stop)
		})
		if int64(calls) > max(int64(count), 0) {
			t.Fatalf("%d records reported for a count of %d", calls, count)
		}
		if calls*4 > len(recs) {
			t.Fatalf("%d records reported from %d bytes", calls, len(recs))
		}
		switch {
		case stop != 0 && calls == int(stop):
			if !ok {
				t.Fatal("a walk stopped by the callback reported malformed input")
			}
		case ok && int64(calls) != max(int64(count), 0):
			t.Fatalf("success after %d of %d records", calls, count)
		}
	})
}

func TestForEachRecordDecodesAppendBatch(t *testing.T) {
	for i, spec := range fuzzSeedSpecs() {
		if spec.Attributes&AttrCompressionMask != 0 {
			continue
		}
		b := AppendBatch(nil, spec)
		var h BatchHeader
		if err := CheckBatch(b, 0, &h); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if h.Size() != len(b) || int(h.RecordCount) != len(spec.Records) {
			t.Fatalf("seed %d: size %d of %d, %d records of %d", i, h.Size(), len(b), h.RecordCount, len(spec.Records))
		}
		var got []RecordInfo
		if !ForEachRecord(b[BatchHeaderSize:], h.RecordCount, h.BaseTimestamp, -1, func(r RecordInfo) bool {
			got = append(got, r)
			return true
		}) {
			t.Fatalf("seed %d: ForEachRecord failed on AppendBatch output", i)
		}
		if len(got) != len(spec.Records) {
			t.Fatalf("seed %d: %d records, want %d", i, len(got), len(spec.Records))
		}
		maxTs := spec.BaseTimestamp
		for j, r := range got {
			want := RecordInfo{OffsetDelta: int32(j), Timestamp: spec.BaseTimestamp + spec.Records[j].TimestampDelta}
			if r != want {
				t.Errorf("seed %d record %d: %+v, want %+v", i, j, r, want)
			}
			maxTs = max(maxTs, want.Timestamp)
		}
		if h.MaxTimestamp != maxTs {
			t.Errorf("seed %d: MaxTimestamp %d, want %d", i, h.MaxTimestamp, maxTs)
		}
	}
}

func TestCheckBatchAndForEachRecordAllocateNothing(t *testing.T) {
	fn := func(RecordInfo) bool { return true }
	for i, b := range fuzzSeedBatches() {
		var h BatchHeader
		if n := testing.AllocsPerRun(50, func() {
			if err := CheckBatch(b, 0, &h); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("seed %d: CheckBatch allocated %.1f times", i, n)
		}
		recs := b[BatchHeaderSize:]
		if n := testing.AllocsPerRun(50, func() {
			ForEachRecord(recs, 1<<31-1, 0, -1, fn)
		}); n != 0 {
			t.Errorf("seed %d: ForEachRecord allocated %.1f times", i, n)
		}
	}
}

// recoverFuzzPrefix is the valid start of the segment in FuzzRecoverSegment: four batches
// with dense offsets 0..6, as the log stores them.
func recoverFuzzPrefix() (batches [][]byte, leo Offset) {
	specs := fuzzSeedSpecs()
	for _, i := range []int{1, 2, 4, 6} {
		b := AppendBatch(nil, specs[i])
		SetBaseOffset(b, leo)
		batches = append(batches, b)
		leo += int64(len(specs[i].Records))
	}
	return batches, leo
}

// Mode bits of FuzzRecoverSegment.
const (
	recoverFromPoint    = 1 << iota // recover from the prefix's end (it was synced), not from 0
	recoverWrittenByLog             // the prefix is written by a Log (index files exist)
	recoverTwoSegments              // ... and rolled after the first batch
	recoverIndexEvery               // index.interval.bytes 1 instead of 4096
)

// FuzzRecoverSegment puts arbitrary bytes after valid batches at the end of the last segment,
// as a crash might leave them, and opens the log: recovery must keep every valid batch, cut
// the rest so every batch read back is valid with increasing offsets, and leave a log that takes
// appends and recovers to itself.
func FuzzRecoverSegment(f *testing.F) {
	prefix, leo := recoverFuzzPrefix()
	next := recoverFuzzTail(leo)
	torn := next[:len(next)-5]
	overlap := append([]byte(nil), next...)
	SetBaseOffset(overlap, leo-1)
	gap := append([]byte(nil), next...)
	SetBaseOffset(gap, leo+1<<22)
	for mode := uint8(0); mode < 16; mode++ {
		f.Add([]byte{}, mode)
		f.Add(next, mode)
		f.Add(torn, mode)
		f.Add(append(append([]byte(nil), next...), torn...), mode)
	}
	f.Add(make([]byte, 4096), uint8(0))
	f.Add(overlap, uint8(recoverWrittenByLog))
	f.Add(append(append([]byte(nil), gap...), next...), uint8(recoverFromPoint|recoverIndexEvery))
	f.Add(prefix[0], uint8(recoverFromPoint))
	f.Add(bytes.Repeat([]byte{0xff}, 100), uint8(recoverFromPoint|recoverWrittenByLog))
	f.Fuzz(func(t *testing.T, tail []byte, mode uint8) {
		checkRecoverSegment(t, prefix, leo, tail, mode)
	})
}

// recoverFuzzTail is a valid batch of three records that continues the prefix at leo.
func recoverFuzzTail(leo Offset) []byte {
	b := AppendBatch(nil, fuzzSeedSpecs()[2])
	SetBaseOffset(b, leo)
	return b
}

// TestRecoverTailBaseOffset: the base offset is outside the CRC. A raised one cannot be told
// from a gap a follower may write (AppendAsFollower takes base > end), so the batch is kept and
// the log end follows it (torn_test.go); a lowered one would make offsets go back: cut there.
func TestRecoverTailBaseOffset(t *testing.T) {
	prefix, leo := recoverFuzzPrefix()
	for _, c := range []struct {
		name string
		base Offset
		end  Offset
	}{
		{"raised", leo + 10, leo + 13},
		{"lowered", leo - 1, leo},
	} {
		tail := recoverFuzzTail(leo)
		SetBaseOffset(tail, c.base)
		for _, mode := range []uint8{0, recoverFromPoint | recoverWrittenByLog} {
			t.Run(fmt.Sprintf("%s/mode-%d", c.name, mode), func(t *testing.T) {
				if end := checkRecoverSegment(t, prefix, leo, tail, mode); end != c.end {
					t.Fatalf("log end offset %d after recovery, want %d", end, c.end)
				}
			})
		}
	}
}

// TestRecoverCutsTailWithOverflowingOffsets: a tail batch whose last offset overflows int64
// must not become the log's end.
func TestRecoverCutsTailWithOverflowingOffsets(t *testing.T) {
	prefix, leo := recoverFuzzPrefix()
	huge := recoverFuzzTail(leo)
	SetBaseOffset(huge, 1<<63-2) // three records: the last offset wraps to a negative one
	checkRecoverSegment(t, prefix, leo, huge, 0)
}

// TestRecoverDoesNotFollowNegativeLastOffsetDelta: up to the recovery point, recovery follows
// batch headers without checking the CRC. A header past the synced data whose last offset
// delta is negative claims to end below the recovery point; it must not be followed.
func TestRecoverDoesNotFollowNegativeLastOffsetDelta(t *testing.T) {
	prefix, leo := recoverFuzzPrefix()
	neg := recoverFuzzTail(leo)
	binary.BigEndian.PutUint32(neg[offLastOffsetDelta:], uint32(0xfffffffd)) // -3
	for _, mode := range []uint8{recoverFromPoint, recoverFromPoint | recoverWrittenByLog | recoverIndexEvery} {
		t.Run(fmt.Sprintf("mode-%d", mode), func(t *testing.T) { checkRecoverSegment(t, prefix, leo, neg, mode) })
	}
}

func recoverFuzzConfig(mode uint8) Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.PreallocateBytes = 4096
	cfg.SegmentMs = 1 << 62 // the seed timestamps are old: no time-based roll
	cfg.Now = func() int64 { return 1_700_000_000_000 }
	if mode&recoverIndexEvery != 0 {
		cfg.IndexIntervalBytes = 1
	}
	return cfg
}

// checkRecoverSegment builds the log, recovers it and checks it; it returns the recovered log
// end offset.
func checkRecoverSegment(t *testing.T, prefix [][]byte, leo Offset, tail []byte, mode uint8) Offset {
	dir := t.TempDir()
	cfg := recoverFuzzConfig(mode)
	last := filepath.Join(dir, "00000000000000000000.log")
	if mode&recoverWrittenByLog != 0 {
		l, err := Open(dir, cfg, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var info AppendInfo
		for i, b := range prefix {
			if err := l.AppendAsFollower(b, &info); err != nil {
				t.Fatalf("append prefix batch %d: %v", i, err)
			}
			if i == 0 && mode&recoverTwoSegments != 0 {
				if err := l.Roll(); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := 1 + int(mode&recoverTwoSegments>>2)
		if n := l.NumSegments(); n != want {
			t.Fatalf("prefix written in %d segments, want %d", n, want)
		}
		last = segmentName(dir, l.active().base, logSuffix)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	} else if err := os.WriteFile(last, bytes.Join(prefix, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(tail); err != nil {
		t.Fatal(err)
	}
	fh.Close()

	opts := OpenOptions{}
	if mode&recoverFromPoint != 0 {
		opts.RecoveryPoint = leo
	}
	l, err := Open(dir, cfg, opts)
	if err != nil {
		t.Fatalf("open with a %d-byte tail: %v", len(tail), err)
	}
	defer func() { l.Close() }()
	end := l.LogEndOffset()
	got := readWholeLog(t, l, "recovered log")
	if end < leo {
		t.Fatalf("log end offset %d after recovery, below the valid prefix's %d", end, leo)
	}
	want := bytes.Join(prefix, nil)
	if !bytes.HasPrefix(got, want) {
		t.Fatalf("the valid prefix (%d bytes) is not intact in the %d bytes read back", len(want), len(got))
	}
	if n := nextOffsetOf(t, got); n != end {
		t.Fatalf("batches read back end at offset %d, log end offset %d", n, end)
	}
	checkPointReads(t, l, got)

	// The recovered log takes an append at its end.
	b := AppendBatch(nil, fuzzSeedSpecs()[1])
	var info AppendInfo
	if err := l.AppendAsLeader(b, 1, false, &info); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	if info.FirstOffset != end || l.LogEndOffset() != end+1 {
		t.Fatalf("append after recovery at %d: first offset %d, log end %d", end, info.FirstOffset, l.LogEndOffset())
	}
	if _, _, err := l.OffsetForTimestamp(0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.MaxTimestamp(); err != nil {
		t.Fatal(err)
	}
	after := readWholeLog(t, l, "log after an append")
	if !bytes.HasPrefix(after, got) || len(after) != len(got)+len(b) {
		t.Fatalf("append after recovery: %d bytes read back, want %d + %d", len(after), len(got), len(b))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// A recovered log recovers to itself.
	l, err = Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	if l.LogEndOffset() != end+1 {
		t.Fatalf("second recovery: log end %d, want %d", l.LogEndOffset(), end+1)
	}
	if again := readWholeLog(t, l, "log recovered twice"); !bytes.Equal(again, after) {
		t.Fatalf("second recovery read back %d bytes, want the same %d", len(again), len(after))
	}
	return end
}

// readWholeLog reads every batch of l, checking each against the file it came from.
func readWholeLog(t *testing.T, l *Log, what string) []byte {
	t.Helper()
	var res ReadResult
	defer res.Release()
	if err := l.Read(l.LogStartOffset(), 1<<40, l.LogEndOffset(), true, &res); err != nil {
		t.Fatalf("%s: read: %v", what, err)
	}
	var out []byte
	for _, r := range res.Regions {
		disk := make([]byte, r.Len)
		if _, err := r.File.ReadAt(disk, r.Pos); err != nil || !bytes.Equal(disk, r.Data) {
			t.Fatalf("%s: region at %d differs from the file: %v", what, r.Pos, err)
		}
		out = append(out, r.Data...)
	}
	if res.NextOffset != l.LogEndOffset() && len(out) > 0 {
		t.Fatalf("%s: read ended at %d, log end offset %d", what, res.NextOffset, l.LogEndOffset())
	}
	return out
}

// checkPointReads reads each batch of the log (whose bytes are all) by its first and its last
// offset, one batch at a time: the offset index rebuilt by recovery must lead to it.
func checkPointReads(t *testing.T, l *Log, all []byte) {
	t.Helper()
	var res ReadResult
	defer res.Release()
	var h BatchHeader
	for pos := 0; pos < len(all); pos += h.Size() {
		ParseBatchHeader(all[pos:], &h)
		for _, off := range []Offset{h.BaseOffset, h.LastOffset()} {
			if err := l.Read(off, 1, l.LogEndOffset(), true, &res); err != nil {
				t.Fatalf("read at %d: %v", off, err)
			}
			if len(res.Regions) != 1 || !bytes.Equal(res.Regions[0].Data, all[pos:pos+h.Size()]) {
				t.Fatalf("read at %d: %d regions, %d bytes; want the batch at position %d", off, len(res.Regions), res.Bytes, pos)
			}
		}
	}
}

// nextOffsetOf checks that b is a sequence of valid batches whose offsets increase from 0 and
// returns the offset after the last one. Offsets are dense in the prefix the test wrote (it is
// compared byte for byte); a recovered tail may start past the end, as a follower's batch may
// (AppendAsFollower takes base > end, and recovery cannot tell a raised base offset from one).
func nextOffsetOf(t *testing.T, b []byte) Offset {
	t.Helper()
	next := Offset(0)
	var h BatchHeader
	for pos := 0; pos < len(b); pos += h.Size() {
		if err := CheckBatch(b[pos:], 0, &h); err != nil {
			t.Fatalf("batch at position %d read back: %v", pos, err)
		}
		if h.BaseOffset < next || h.LastOffset() < h.BaseOffset {
			t.Fatalf("batch at position %d holds offsets [%d, %d] after offset %d", pos, h.BaseOffset, h.LastOffset(), next)
		}
		next = h.LastOffset() + 1
	}
	return next
}
