package index

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// offsetFile encodes offset index entries as they are stored on disk.
func offsetFile(es ...OffsetEntry) []byte {
	var b []byte
	for _, e := range es {
		b = binary.BigEndian.AppendUint32(b, e.RelOffset)
		b = binary.BigEndian.AppendUint32(b, e.Position)
	}
	return b
}

// timeFile encodes time index entries as they are stored on disk.
func timeFile(es ...TimeEntry) []byte {
	var b []byte
	for _, e := range es {
		b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp))
		b = binary.BigEndian.AppendUint32(b, e.RelOffset)
	}
	return b
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func mustOpenOffset(t *testing.T, path string, maxBytes int64, writable bool) *OffsetIndex {
	t.Helper()
	x, err := OpenOffsetIndex(path, maxBytes, writable)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func mustOpenTime(t *testing.T, path string, maxBytes int64, writable bool) *TimeIndex {
	t.Helper()
	x, err := OpenTimeIndex(path, maxBytes, writable)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func offsetEntries(x *OffsetIndex) []OffsetEntry {
	out := make([]OffsetEntry, x.Entries())
	for i := range out {
		out[i] = x.Entry(i)
	}
	return out
}

func timeEntries(x *TimeIndex) []TimeEntry {
	out := make([]TimeEntry, x.Entries())
	for i := range out {
		out[i] = x.Entry(i)
	}
	return out
}

func equalSlices[E comparable](a, b []E) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sampleOffsets is a small, valid offset index.
var sampleOffsets = []OffsetEntry{{10, 100}, {20, 250}, {35, 400}, {36, 401}}

func TestOffsetIndexEmpty(t *testing.T) {
	x := mustOpenOffset(t, filepath.Join(t.TempDir(), "0.index"), 1<<20, true)
	defer x.Close()
	if x.Entries() != 0 {
		t.Fatalf("Entries = %d, want 0", x.Entries())
	}
	if e, ok := x.Last(); ok {
		t.Fatalf("Last = %+v, true on an empty index", e)
	}
	for _, rel := range []uint32{0, 1, 1<<32 - 1} {
		if e, ok := x.Lookup(rel); ok {
			t.Errorf("Lookup(%d) = %+v, true on an empty index", rel, e)
		}
	}
	if err := x.Check(0, 0); err != nil {
		t.Errorf("Check of an empty index: %v", err)
	}
}

func TestOffsetIndexAppendLookup(t *testing.T) {
	x := mustOpenOffset(t, filepath.Join(t.TempDir(), "0.index"), 1<<20, true)
	defer x.Close()
	for _, e := range sampleOffsets {
		if err := x.Append(e); err != nil {
			t.Fatalf("Append(%+v): %v", e, err)
		}
	}
	if got := offsetEntries(x); !equalSlices(got, sampleOffsets) {
		t.Fatalf("entries = %+v, want %+v", got, sampleOffsets)
	}
	if e, ok := x.Last(); !ok || e != (OffsetEntry{36, 401}) {
		t.Fatalf("Last = %+v %v, want {36 401} true", e, ok)
	}
	none := OffsetEntry{}
	for _, c := range []struct {
		rel  uint32
		want OffsetEntry
		ok   bool
	}{
		{0, none, false}, // before the first entry
		{9, none, false}, // just before the first entry
		{10, sampleOffsets[0], true},
		{11, sampleOffsets[0], true}, // between entries
		{19, sampleOffsets[0], true}, // just before the second
		{20, sampleOffsets[1], true}, // exact
		{34, sampleOffsets[1], true}, // between
		{35, sampleOffsets[2], true}, // exact
		{36, sampleOffsets[3], true}, // exact, last
		{37, sampleOffsets[3], true}, // after the last
		{1<<32 - 1, sampleOffsets[3], true},
	} {
		if got, ok := x.Lookup(c.rel); ok != c.ok || got != c.want {
			t.Errorf("Lookup(%d) = %+v %v, want %+v %v", c.rel, got, ok, c.want, c.ok)
		}
	}
}

func TestOffsetIndexAppendRefusesNonIncreasing(t *testing.T) {
	x := mustOpenOffset(t, filepath.Join(t.TempDir(), "0.index"), 1<<20, true)
	defer x.Close()
	if err := x.Append(OffsetEntry{10, 100}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []OffsetEntry{
		{10, 200}, // same offset
		{9, 200},  // smaller offset
		{11, 100}, // same position
		{11, 99},  // smaller position
		{10, 100}, // duplicate
		{0, 0},
	} {
		if err := x.Append(e); err == nil {
			t.Errorf("Append(%+v) after {10 100} succeeded", e)
		}
	}
	if x.Entries() != 1 {
		t.Fatalf("refused appends changed the index: %d entries", x.Entries())
	}
	if err := x.Append(OffsetEntry{11, 101}); err != nil {
		t.Fatalf("Append({11 101}): %v", err)
	}
}

func TestOffsetIndexErrFullAtMaxBytes(t *testing.T) {
	// 20 bytes round down to two 8-byte entries.
	path := filepath.Join(t.TempDir(), "0.index")
	x := mustOpenOffset(t, path, 20, true)
	if x.IsFull() {
		t.Fatal("IsFull on an empty index of two entries")
	}
	if err := x.Append(OffsetEntry{1, 1}); err != nil {
		t.Fatal(err)
	}
	if x.IsFull() {
		t.Fatal("IsFull with one of two entries")
	}
	if err := x.Append(OffsetEntry{2, 2}); err != nil {
		t.Fatal(err)
	}
	if !x.IsFull() {
		t.Fatal("not IsFull with two of two entries")
	}
	if err := x.Append(OffsetEntry{3, 3}); !errors.Is(err, ErrFull) {
		t.Fatalf("third Append: %v, want ErrFull", err)
	}
	if x.Entries() != 2 {
		t.Fatalf("Entries = %d after ErrFull, want 2", x.Entries())
	}
	if got := fileSize(t, path); got > 16 {
		t.Fatalf("index file grew to %d bytes, past its bound of 16", got)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	// A bound below one entry still holds one entry.
	y := mustOpenOffset(t, filepath.Join(t.TempDir(), "1.index"), 3, true)
	defer y.Close()
	if err := y.Append(OffsetEntry{1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := y.Append(OffsetEntry{2, 2}); !errors.Is(err, ErrFull) {
		t.Fatalf("second Append with maxBytes 3: %v, want ErrFull", err)
	}
}

func TestOffsetIndexGrowsPastOneChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.index")
	x := mustOpenOffset(t, path, 1<<20, true)
	n := growChunk/OffsetEntrySize + 10
	for i := 1; i <= n; i++ {
		if err := x.Append(OffsetEntry{uint32(i), uint32(i * 3)}); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	for _, i := range []int{1, n / 2, n} {
		if e, ok := x.Lookup(uint32(i)); !ok || e != (OffsetEntry{uint32(i), uint32(i * 3)}) {
			t.Errorf("Lookup(%d) = %+v %v", i, e, ok)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, path); got != int64(n*OffsetEntrySize) {
		t.Fatalf("closed file is %d bytes, want %d", got, n*OffsetEntrySize)
	}
}

func TestOffsetIndexTruncateToPosition(t *testing.T) {
	for _, c := range []struct {
		pos  uint32
		keep int
	}{
		{0, 0},
		{100, 0}, // the first entry's position: it goes
		{101, 1},
		{250, 1},
		{251, 2},
		{401, 3},
		{402, 4},
		{1<<32 - 1, 4},
	} {
		path := filepath.Join(t.TempDir(), "0.index")
		x := mustOpenOffset(t, path, 1<<20, true)
		for _, e := range sampleOffsets {
			if err := x.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		x.TruncateToPosition(c.pos)
		if got := offsetEntries(x); !equalSlices(got, sampleOffsets[:c.keep]) {
			t.Errorf("TruncateToPosition(%d) left %+v, want %+v", c.pos, got, sampleOffsets[:c.keep])
		}
		// The removed slots are zeroed, so a crash now cannot resurrect them.
		raw := x.t.mf.Bytes()[c.keep*OffsetEntrySize : len(sampleOffsets)*OffsetEntrySize]
		if !isZero(raw) {
			t.Errorf("TruncateToPosition(%d) left removed entries on disk: %x", c.pos, raw)
		}
		// Appending after a truncation continues from the kept entries.
		next := OffsetEntry{1000, 5000}
		if err := x.Append(next); err != nil {
			t.Fatalf("Append after TruncateToPosition(%d): %v", c.pos, err)
		}
		if e, _ := x.Last(); e != next {
			t.Errorf("Last after append = %+v", e)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, path); got != int64((c.keep+1)*OffsetEntrySize) {
			t.Errorf("TruncateToPosition(%d): closed file %d bytes, want %d", c.pos, got, (c.keep+1)*OffsetEntrySize)
		}
	}
}

func TestOffsetIndexSealTrimsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.index")
	x := mustOpenOffset(t, path, 1<<20, true)
	defer x.Close()
	for _, e := range sampleOffsets {
		if err := x.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := fileSize(t, path); got <= int64(len(sampleOffsets)*OffsetEntrySize) {
		t.Fatalf("active index file is %d bytes; expected a preallocated tail", got)
	}
	if err := x.Seal(); err != nil {
		t.Fatal(err)
	}
	if got, want := fileSize(t, path), int64(len(sampleOffsets)*OffsetEntrySize); got != want {
		t.Fatalf("sealed file is %d bytes, want %d", got, want)
	}
	if got := offsetEntries(x); !equalSlices(got, sampleOffsets) {
		t.Fatalf("entries after Seal = %+v", got)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := offsetFile(sampleOffsets...); string(raw) != string(want) {
		t.Fatalf("sealed file = %x, want %x", raw, want)
	}
}

func TestOffsetIndexReopenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.index")
	x := mustOpenOffset(t, path, 1<<20, true)
	for _, e := range sampleOffsets {
		if err := x.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustOpenOffset(t, path, 1<<20, false)
	defer r.Close()
	if got := offsetEntries(r); !equalSlices(got, sampleOffsets) {
		t.Fatalf("read-only entries = %+v, want %+v", got, sampleOffsets)
	}
	if e, ok := r.Lookup(21); !ok || e != sampleOffsets[1] {
		t.Fatalf("Lookup(21) = %+v %v", e, ok)
	}
	if err := r.Check(402, 37); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := r.Seal(); err != nil {
		t.Fatalf("Seal of a read-only index: %v", err)
	}
	if err := r.Sync(); err != nil {
		t.Fatalf("Sync of a read-only index: %v", err)
	}
	if got, want := fileSize(t, path), int64(len(sampleOffsets)*OffsetEntrySize); got != want {
		t.Fatalf("read-only open changed the file to %d bytes, want %d", got, want)
	}
	// A read-only index is mapped as it is, even when it is larger than maxBytes.
	small := mustOpenOffset(t, path, 8, false)
	defer small.Close()
	if small.Entries() != len(sampleOffsets) {
		t.Fatalf("read-only open with a small maxBytes: %d entries", small.Entries())
	}
}

func TestOffsetIndexReopenWritableAfterCrash(t *testing.T) {
	// A crash leaves the preallocated zero tail: copy the file while it is open.
	dir := t.TempDir()
	path := filepath.Join(dir, "0.index")
	x := mustOpenOffset(t, path, 1<<20, true)
	defer x.Close()
	for _, e := range sampleOffsets {
		if err := x.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path) // read(2) sees what was written through the mapping
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != growChunk {
		t.Fatalf("open index file is %d bytes, want one chunk of %d", len(raw), growChunk)
	}
	crashed := writeFile(t, "crashed.index", raw)
	y := mustOpenOffset(t, crashed, 1<<20, true)
	if got := offsetEntries(y); !equalSlices(got, sampleOffsets) {
		t.Fatalf("writable reopen counted %+v, want %+v", got, sampleOffsets)
	}
	if err := y.Append(OffsetEntry{50, 900}); err != nil {
		t.Fatal(err)
	}
	if err := y.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := fileSize(t, crashed), int64((len(sampleOffsets)+1)*OffsetEntrySize); got != want {
		t.Fatalf("closed file is %d bytes, want %d", got, want)
	}
}

func TestOffsetIndexReopenWritableCountsIncreasingPrefix(t *testing.T) {
	for _, c := range []struct {
		name string
		file []byte
		want int
	}{
		{"empty file", nil, 0},
		{"only zeros", make([]byte, 64), 0},
		{"entries then zeros", append(offsetFile(sampleOffsets...), make([]byte, 80)...), 4},
		{"entries, no tail", offsetFile(sampleOffsets...), 4},
		{"offset goes back", offsetFile(OffsetEntry{1, 10}, OffsetEntry{5, 20}, OffsetEntry{4, 30}, OffsetEntry{9, 40}), 2},
		{"position repeats", offsetFile(OffsetEntry{1, 10}, OffsetEntry{5, 10}), 1},
		{"junk after entries", append(offsetFile(OffsetEntry{1, 10}), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1), 1},
		{"partial entry after entries", append(offsetFile(OffsetEntry{1, 10}, OffsetEntry{2, 20}), 0, 0, 0, 3), 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "0.index", c.file)
			x := mustOpenOffset(t, path, 1<<20, true)
			defer x.Close()
			if x.Entries() != c.want {
				t.Fatalf("Entries = %d, want %d", x.Entries(), c.want)
			}
			// The next append goes right after the counted prefix.
			last, _ := x.Last()
			next := OffsetEntry{last.RelOffset + 100, last.Position + 1000}
			if err := x.Append(next); err != nil {
				t.Fatal(err)
			}
			if x.Entry(c.want) != next {
				t.Fatalf("entry %d = %+v after Append, want %+v", c.want, x.Entry(c.want), next)
			}
		})
	}
}

// TestOffsetIndexReopenWritableKeepsZeroFirstEntry: the first batch of a segment is at
// position 0 and, when it holds one record and reaches index.interval.bytes, it is indexed as
// (0, 0). The package doc promises that a writable reopen counts the longest strictly
// increasing prefix; a zero first entry followed by valid entries is such a prefix. The active
// segment's index is reopened writable on every restart, clean or not, so losing the prefix
// leaves every lookup below the restart point to scan the segment from position 0.
func TestOffsetIndexReopenWritableKeepsZeroFirstEntry(t *testing.T) {
	want := []OffsetEntry{{0, 0}, {4, 5000}, {9, 9000}}
	path := writeFile(t, "0.index", append(offsetFile(want...), make([]byte, 64)...))
	x := mustOpenOffset(t, path, 1<<20, true)
	defer x.Close()
	if got := offsetEntries(x); !equalSlices(got, want) {
		t.Fatalf("writable reopen counted %+v, want %+v (the index written before the crash)", got, want)
	}
}

func TestOffsetIndexCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries []OffsetEntry
		logSize int64
		relEnd  uint64
		ok      bool
	}{
		{"valid", sampleOffsets, 402, 37, true},
		{"position at log end", sampleOffsets, 401, 37, false},
		{"offset at relative end", sampleOffsets, 402, 36, false},
		{"offset out of order", []OffsetEntry{{10, 100}, {9, 200}}, 1000, 100, false},
		{"offset repeats", []OffsetEntry{{10, 100}, {10, 200}}, 1000, 100, false},
		{"position out of order", []OffsetEntry{{10, 200}, {11, 100}}, 1000, 100, false},
		{"position repeats", []OffsetEntry{{10, 100}, {11, 100}}, 1000, 100, false},
		{"empty log", []OffsetEntry{{0, 0}}, 0, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "0.index", offsetFile(c.entries...))
			x := mustOpenOffset(t, path, 1<<20, false)
			defer x.Close()
			if x.Entries() != len(c.entries) {
				t.Fatalf("read-only Entries = %d, want %d", x.Entries(), len(c.entries))
			}
			err := x.Check(c.logSize, c.relEnd)
			if c.ok && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOffsetIndexSizeNotMultipleOfWidth(t *testing.T) {
	path := writeFile(t, "0.index", append(offsetFile(sampleOffsets...), 1, 2, 3))
	x, err := OpenOffsetIndex(path, 1<<20, false)
	if !errors.Is(err, ErrCorrupt) {
		if x != nil {
			x.Close()
		}
		t.Fatalf("read-only open of a %d-byte index: %v, want ErrCorrupt", fileSize(t, path), err)
	}
	if x != nil {
		t.Fatal("a failed open returned an index")
	}
}

func TestTimeIndexMaybeAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.timeindex")
	x := mustOpenTime(t, path, 1<<20, true)
	defer x.Close()
	steps := []struct {
		ts  int64
		rel uint32
	}{
		{-1, 0},   // negative: ignored
		{100, 3},  // first
		{100, 4},  // same timestamp: ignored
		{99, 5},   // smaller: ignored
		{-5, 6},   // negative: ignored
		{200, 3},  // equal offset is allowed (offsets do not decrease)
		{300, 10}, // both larger
	}
	for _, s := range steps {
		if err := x.MaybeAppend(s.ts, s.rel); err != nil {
			t.Fatalf("MaybeAppend(%d, %d): %v", s.ts, s.rel, err)
		}
	}
	want := []TimeEntry{{100, 3}, {200, 3}, {300, 10}}
	if got := timeEntries(x); !equalSlices(got, want) {
		t.Fatalf("entries = %+v, want %+v", got, want)
	}
	// A larger timestamp with a smaller offset is a caller bug: refused.
	if err := x.MaybeAppend(400, 9); err == nil {
		t.Fatal("MaybeAppend(400, 9) after (300, 10) succeeded")
	}
	if x.Entries() != 3 {
		t.Fatalf("refused append changed the index: %d entries", x.Entries())
	}
	if e, ok := x.Last(); !ok || e != (TimeEntry{300, 10}) {
		t.Fatalf("Last = %+v %v", e, ok)
	}
}

func TestTimeIndexLookup(t *testing.T) {
	x := mustOpenTime(t, filepath.Join(t.TempDir(), "0.timeindex"), 1<<20, true)
	defer x.Close()
	if _, ok := x.Lookup(1 << 62); ok {
		t.Fatal("Lookup on an empty time index found an entry")
	}
	entries := []TimeEntry{{0, 0}, {100, 2}, {200, 2}, {300, 7}}
	for _, e := range entries {
		if err := x.MaybeAppend(e.Timestamp, e.RelOffset); err != nil {
			t.Fatal(err)
		}
	}
	if got := timeEntries(x); !equalSlices(got, entries) {
		t.Fatalf("entries = %+v, want %+v", got, entries)
	}
	// Lookup returns the last entry whose timestamp is <= ts.
	for _, c := range []struct {
		ts   int64
		want TimeEntry
		ok   bool
	}{
		{-1 << 63, TimeEntry{}, false},
		{-1, TimeEntry{}, false},
		{0, entries[0], true},
		{99, entries[0], true},
		{100, entries[1], true},
		{150, entries[1], true},
		{200, entries[2], true},
		{299, entries[2], true},
		{300, entries[3], true},
		{1<<63 - 1, entries[3], true},
	} {
		if got, ok := x.Lookup(c.ts); ok != c.ok || got != c.want {
			t.Errorf("Lookup(%d) = %+v %v, want %+v %v", c.ts, got, ok, c.want, c.ok)
		}
	}
}

func TestTimeIndexTruncateToOffset(t *testing.T) {
	entries := []TimeEntry{{100, 2}, {200, 2}, {300, 7}, {400, 9}}
	for _, c := range []struct {
		rel  uint32
		keep int
	}{
		{0, 0},
		{2, 0}, // both entries at offset 2 go
		{3, 2},
		{7, 2},
		{8, 3},
		{9, 3},
		{10, 4},
		{1<<32 - 1, 4},
	} {
		path := filepath.Join(t.TempDir(), "0.timeindex")
		x := mustOpenTime(t, path, 1<<20, true)
		for _, e := range entries {
			if err := x.MaybeAppend(e.Timestamp, e.RelOffset); err != nil {
				t.Fatal(err)
			}
		}
		x.TruncateToOffset(c.rel)
		if got := timeEntries(x); !equalSlices(got, entries[:c.keep]) {
			t.Errorf("TruncateToOffset(%d) left %+v, want %+v", c.rel, got, entries[:c.keep])
		}
		raw := x.t.mf.Bytes()[c.keep*TimeEntrySize : len(entries)*TimeEntrySize]
		if !isZero(raw) {
			t.Errorf("TruncateToOffset(%d) left removed entries on disk: %x", c.rel, raw)
		}
		// A timestamp that was truncated away may be appended again.
		if err := x.MaybeAppend(250, 9); err != nil {
			t.Fatal(err)
		}
		wantLen := c.keep + 1
		if c.keep > 0 && entries[c.keep-1].Timestamp >= 250 {
			wantLen = c.keep // 250 is not above the last kept timestamp: ignored
		}
		if x.Entries() != wantLen {
			t.Errorf("TruncateToOffset(%d) then MaybeAppend(250, 9): %d entries, want %d", c.rel, x.Entries(), wantLen)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, path); got != int64(wantLen*TimeEntrySize) {
			t.Errorf("TruncateToOffset(%d): closed file %d bytes, want %d", c.rel, got, wantLen*TimeEntrySize)
		}
	}
}

func TestTimeIndexErrFullAtMaxBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.timeindex")
	x := mustOpenTime(t, path, 30, true) // two 12-byte entries
	defer x.Close()
	for i := int64(1); i <= 2; i++ {
		if err := x.MaybeAppend(i*10, uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if !x.IsFull() {
		t.Fatal("not IsFull with two of two entries")
	}
	if err := x.MaybeAppend(30, 3); !errors.Is(err, ErrFull) {
		t.Fatalf("third MaybeAppend: %v, want ErrFull", err)
	}
	// An ignored timestamp is not an error even when full.
	if err := x.MaybeAppend(5, 3); err != nil {
		t.Fatalf("ignored MaybeAppend on a full index: %v", err)
	}
}

func TestTimeIndexSealAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.timeindex")
	x := mustOpenTime(t, path, 1<<20, true)
	entries := []TimeEntry{{100, 2}, {200, 2}, {300, 7}}
	for _, e := range entries {
		if err := x.MaybeAppend(e.Timestamp, e.RelOffset); err != nil {
			t.Fatal(err)
		}
	}
	// Crash image: the file with its preallocated zero tail.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Seal(); err != nil {
		t.Fatal(err)
	}
	if got, want := fileSize(t, path), int64(len(entries)*TimeEntrySize); got != want {
		t.Fatalf("sealed file is %d bytes, want %d", got, want)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustOpenTime(t, path, 1<<20, false)
	defer r.Close()
	if got := timeEntries(r); !equalSlices(got, entries) {
		t.Fatalf("read-only entries = %+v, want %+v", got, entries)
	}
	if err := r.Check(8); err != nil {
		t.Fatalf("Check: %v", err)
	}

	crashed := writeFile(t, "crashed.timeindex", raw)
	w := mustOpenTime(t, crashed, 1<<20, true)
	defer w.Close()
	if got := timeEntries(w); !equalSlices(got, entries) {
		t.Fatalf("writable reopen after a crash counted %+v, want %+v", got, entries)
	}
}

func TestTimeIndexReopenWritableCountsIncreasingPrefix(t *testing.T) {
	for _, c := range []struct {
		name string
		file []byte
		want int
	}{
		{"only zeros", make([]byte, 48), 0},
		{"timestamp repeats", timeFile(TimeEntry{100, 1}, TimeEntry{100, 2}), 1},
		{"timestamp goes back", timeFile(TimeEntry{100, 1}, TimeEntry{200, 2}, TimeEntry{150, 3}), 2},
		{"offset goes back", timeFile(TimeEntry{100, 5}, TimeEntry{200, 4}), 1},
		{"offset repeats", timeFile(TimeEntry{100, 5}, TimeEntry{200, 5}, TimeEntry{300, 6}), 3},
		{"partial entry", append(timeFile(TimeEntry{100, 5}), 1, 2, 3, 4, 5), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "0.timeindex", c.file)
			x := mustOpenTime(t, path, 1<<20, true)
			defer x.Close()
			if x.Entries() != c.want {
				t.Fatalf("Entries = %d, want %d", x.Entries(), c.want)
			}
		})
	}
}

func TestTimeIndexCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries []TimeEntry
		relEnd  uint64
		ok      bool
	}{
		{"valid", []TimeEntry{{100, 2}, {200, 2}, {300, 7}}, 8, true},
		{"offset at relative end", []TimeEntry{{100, 2}, {300, 8}}, 8, false},
		{"timestamp repeats", []TimeEntry{{100, 2}, {100, 3}}, 8, false},
		{"timestamp goes back", []TimeEntry{{100, 2}, {50, 3}}, 8, false},
		{"offset goes back", []TimeEntry{{100, 3}, {200, 2}}, 8, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "0.timeindex", timeFile(c.entries...))
			x := mustOpenTime(t, path, 1<<20, false)
			defer x.Close()
			err := x.Check(c.relEnd)
			if c.ok && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check = %v, want ErrCorrupt", err)
			}
		})
	}
	path := writeFile(t, "1.timeindex", append(timeFile(TimeEntry{100, 2}), 0, 0, 0, 0))
	if x, err := OpenTimeIndex(path, 1<<20, false); !errors.Is(err, ErrCorrupt) || x != nil {
		t.Fatalf("read-only open of a 16-byte time index: %v, want ErrCorrupt", err)
	}
}

// TestIndexConcurrentReadersSeeWholeEntries appends while readers look up: every entry a
// reader sees was appended whole (run with -race).
func TestIndexConcurrentReadersSeeWholeEntries(t *testing.T) {
	x := mustOpenOffset(t, filepath.Join(t.TempDir(), "0.index"), 1<<20, true)
	defer x.Close()
	const n = 20000 // crosses growth chunks
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			if err := x.Append(OffsetEntry{uint32(i), uint32(2 * i)}); err != nil {
				errc <- err
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			select {
			case err := <-errc:
				t.Fatal(err)
			default:
			}
			if x.Entries() != n {
				t.Fatalf("Entries = %d, want %d", x.Entries(), n)
			}
			return
		default:
		}
		m := x.Entries()
		if m == 0 {
			continue
		}
		e, ok := x.Lookup(uint32(m))
		if !ok || e.RelOffset != uint32(m) || e.Position != 2*e.RelOffset {
			t.Fatalf("Lookup(%d) with %d entries = %+v %v", m, m, e, ok)
		}
	}
}
