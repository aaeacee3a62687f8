package logstore

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestLeaderBatchesLargeAndSmallWritten: batches on either side of pwriteMinBytes (written
// through the file, or copied into the mapping) are stored with the offsets and leader epoch
// the leader assigned and their CRC valid, byte for byte otherwise, in the mapping and in the
// file, after a roll and after reopening; the producer's buffer is left unchanged.
func TestLeaderBatchesLargeAndSmallWritten(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for i, n := range []int{1, 100, 3, 200, 1, 16, 150, 2, 300, 300, 1} { // records of 1 KiB
		recs := make([]Record, n)
		for j := range recs {
			v := bytes.Repeat([]byte{byte(i), byte(j)}, 512)
			recs[j] = Record{Key: []byte{byte(j)}, Value: v}
		}
		b := AppendBatch(nil, BatchSpec{BaseOffset: 12345, PartitionLeaderEpoch: -1, ProducerID: -1, BaseSequence: -1, Records: recs})
		orig := bytes.Clone(b)
		var info AppendInfo
		if err := l.AppendAsLeader(b, 7, false, &info); err != nil {
			t.Fatalf("batch %d (%d bytes): %v", i, len(b), err)
		}
		if !bytes.Equal(b, orig) {
			t.Fatalf("batch %d: the producer's buffer was modified", i)
		}
		sent = append(sent, b)
	}
	check := func(when string, l *Log) {
		var res ReadResult
		defer res.Release()
		var got []byte
		for off := int64(0); off < l.LogEndOffset(); off = res.NextOffset {
			res.Release()
			if err := l.Read(off, 1<<30, l.LogEndOffset(), true, &res); err != nil {
				t.Fatalf("%s: read at %d: %v", when, off, err)
			}
			for _, r := range res.Regions {
				fromFile := make([]byte, r.Len)
				if _, err := r.File.ReadAt(fromFile, r.Pos); err != nil || !bytes.Equal(fromFile, r.Data) {
					t.Fatalf("%s: file and mapping differ at %d: %v", when, r.Pos, err)
				}
				got = append(got, r.Data...)
			}
		}
		next := int64(0)
		for i, b := range sent {
			var h BatchHeader
			if err := CheckBatch(got, 1<<30, &h); err != nil {
				t.Fatalf("%s: batch %d: %v", when, i, err)
			}
			if h.BaseOffset != next || h.PartitionLeaderEpoch != 7 {
				t.Fatalf("%s: batch %d at base %d epoch %d, want %d and 7", when, i, h.BaseOffset, h.PartitionLeaderEpoch, next)
			}
			stored := got[:h.Size()]
			if !bytes.Equal(stored[16:], b[16:]) || binary.BigEndian.Uint32(stored[8:]) != binary.BigEndian.Uint32(b[8:]) {
				t.Fatalf("%s: batch %d (%d bytes) differs from what was produced", when, i, len(b))
			}
			next += int64(h.LastOffsetDelta) + 1
			got = got[h.Size():]
		}
		if len(got) != 0 {
			t.Fatalf("%s: %d bytes after the last batch", when, len(got))
		}
	}
	check("appended", l)
	if n := len(l.segments); n < 2 {
		t.Fatalf("%d segments: the test wants a roll", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check("reopened", l)
}

// TestReadMarksRecentRegions: a region is Recent exactly when it lies in the active segment
// within RecentBytes of its end and every batch in it was copied into the mapping (small
// batches); a batch written with pwritev, a sealed segment or an older stretch is not.
func TestReadMarksRecentRegions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 8 << 20
	dir := t.TempDir()
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	var ends []int64 // end position of each batch in its segment
	appendOne := func(i, size int) {
		t.Helper()
		v := bytes.Repeat([]byte{byte(i)}, size-100)
		b := AppendBatch(nil, BatchSpec{PartitionLeaderEpoch: -1, ProducerID: -1, BaseSequence: -1,
			Records: []Record{{Value: v}}})
		var info AppendInfo
		if err := l.AppendAsLeader(b, 1, false, &info); err != nil {
			t.Fatal(err)
		}
		var pos int64
		if len(ends) > 0 {
			pos = ends[len(ends)-1]
		}
		ends = append(ends, pos+int64(len(b)))
	}
	read := func(off int64, maxBytes int64) Region {
		t.Helper()
		var res ReadResult
		if err := l.Read(off, maxBytes, l.LogEndOffset(), true, &res); err != nil {
			t.Fatal(err)
		}
		defer res.Release()
		if len(res.Regions) != 1 {
			t.Fatalf("read at %d: %d regions, want 1", off, len(res.Regions))
		}
		r := res.Regions[0]
		r.Data = nil
		return r
	}
	startOf := func(o int) int64 {
		if o == 0 {
			return 0
		}
		return ends[o-1]
	}
	// 3 MiB of 8 KiB batches (copied into the mapping), one 64 KiB batch (pwritev), then
	// 40 more small ones.
	const small, big = 8 << 10, 64 << 10
	for i := range 384 {
		appendOne(i, small)
	}
	bigAt := len(ends)
	appendOne(bigAt, big)
	for i := range 40 {
		appendOne(bigAt+1+i, small)
	}
	total := ends[len(ends)-1]
	for _, o := range []int{0, 100, bigAt - 5, bigAt, bigAt + 1, bigAt + 20, len(ends) - 1} {
		pos := startOf(o)
		r := read(int64(o), 1)
		want := total-pos <= RecentBytes && o > bigAt
		if r.Pos != pos || r.Recent != want {
			t.Errorf("offset %d: region at %d recent %v, want at %d recent %v (%d bytes from the end)",
				o, r.Pos, r.Recent, pos, want, total-pos)
		}
	}
	// A region that starts within the window but holds the pwritev'd batch is not Recent, nor
	// one that starts before the window and reaches the end.
	if r := read(int64(bigAt-3), 1<<30); r.Recent || r.Pos+r.Len != total {
		t.Errorf("region over the large batch: recent %v, ends at %d (want not recent, %d)", r.Recent, r.Pos+r.Len, total)
	}
	if r := read(0, 1<<30); r.Recent {
		t.Errorf("region from the segment's start is Recent")
	}
	// After a reopen nothing already in the segment is Recent (its pages are not known to be
	// in the mapping); small batches appended since are.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(dir, cfg, OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := read(int64(len(ends)-1), 1); r.Recent {
		t.Errorf("last batch before the reopen is Recent")
	}
	appendOne(len(ends), small)
	if r := read(int64(len(ends)-1), 1); !r.Recent {
		t.Errorf("batch appended after the reopen is not Recent")
	}
	// Once the segment is sealed by a roll, none of it is Recent; the new one's first batch is.
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if r := read(l.LogEndOffset()-1, 1); r.Recent {
		t.Errorf("last batch of the sealed segment is Recent")
	}
	appendOne(len(ends), small)
	if r := read(l.LogEndOffset()-1, 1); !r.Recent || r.Pos != 0 {
		t.Errorf("first batch of the new active segment: pos %d recent %v, want 0 and recent", r.Pos, r.Recent)
	}
}

// TestAppendCheckedAsLeaderChecksAllButTheFirstCRC: the produce path's append skips only the
// CRC of the first batch (the broker checked it); every later batch is checked in full, and
// a corrupt one still leaves the log untouched.
func TestAppendCheckedAsLeaderChecksAllButTheFirstCRC(t *testing.T) {
	l, err := Open(t.TempDir(), DefaultConfig(), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	batch := func(v string) []byte {
		return AppendBatch(nil, BatchSpec{PartitionLeaderEpoch: -1, ProducerID: -1, BaseSequence: -1,
			Records: []Record{{Value: []byte(v)}, {Value: []byte(v + "!")}}})
	}
	var info AppendInfo
	two := append(batch("a"), batch("b")...)
	if err := l.AppendCheckedAsLeader(two, 3, &info); err != nil || info.FirstOffset != 0 || info.LastOffset != 3 {
		t.Fatalf("two valid batches: %v, offsets %d-%d", err, info.FirstOffset, info.LastOffset)
	}
	bad := append(batch("c"), batch("d")...)
	bad[len(bad)-1] ^= 0x40 // the second batch's last byte: its CRC no longer matches
	if err := l.AppendCheckedAsLeader(bad, 3, &info); CodeOf(err) != CodeCorruptMessage {
		t.Fatalf("corrupt second batch: %v (code %d), want CORRUPT_MESSAGE", err, CodeOf(err))
	}
	if got := l.LogEndOffset(); got != 4 {
		t.Fatalf("log end offset %d after the refused append, want 4", got)
	}
	// AppendAsLeader checks the first batch's CRC too.
	bad = batch("e")
	bad[len(bad)-1] ^= 0x40
	if err := l.AppendAsLeader(bad, 3, false, &info); CodeOf(err) != CodeCorruptMessage {
		t.Fatalf("AppendAsLeader, corrupt batch: %v", err)
	}
}
