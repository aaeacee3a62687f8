package index

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// fuzzEntry is an index entry of either kind as the test sees it: key is what Lookup searches
// (relative offset or timestamp), val the other field.
type fuzzEntry struct {
	key int64
	val uint32
}

// fuzzIndex drives both index kinds through one interface, for FuzzOpenIndex.
type fuzzIndex interface {
	Entries() int
	entry(i int) fuzzEntry
	lookup(key int64) (fuzzEntry, bool)
	check() error
	appendAfter(last fuzzEntry, ok bool) (fuzzEntry, bool, error)
	truncate(e fuzzEntry) // remove entries from e on (by position or by offset)
	valid(prev, cur fuzzEntry) bool
	Close() error
}

type fuzzOffsetIndex struct{ *OffsetIndex }

func (x fuzzOffsetIndex) entry(i int) fuzzEntry {
	e := x.Entry(i)
	return fuzzEntry{int64(e.RelOffset), e.Position}
}

func (x fuzzOffsetIndex) lookup(key int64) (fuzzEntry, bool) {
	e, ok := x.Lookup(uint32(key))
	return fuzzEntry{int64(e.RelOffset), e.Position}, ok
}

func (x fuzzOffsetIndex) check() error { return x.Check(1<<40, 1<<40) }

func (x fuzzOffsetIndex) appendAfter(last fuzzEntry, ok bool) (fuzzEntry, bool, error) {
	e := OffsetEntry{1, 1}
	if ok {
		if last.key == math.MaxUint32 || last.val == math.MaxUint32 {
			return fuzzEntry{}, false, nil
		}
		e = OffsetEntry{uint32(last.key) + 1, last.val + 1}
	}
	return fuzzEntry{int64(e.RelOffset), e.Position}, true, x.Append(e)
}

func (x fuzzOffsetIndex) truncate(e fuzzEntry) { x.TruncateToPosition(e.val) }

func (x fuzzOffsetIndex) valid(prev, cur fuzzEntry) bool {
	return cur.key > prev.key && cur.val > prev.val
}

type fuzzTimeIndex struct{ *TimeIndex }

func (x fuzzTimeIndex) entry(i int) fuzzEntry {
	e := x.Entry(i)
	return fuzzEntry{e.Timestamp, e.RelOffset}
}

func (x fuzzTimeIndex) lookup(key int64) (fuzzEntry, bool) {
	e, ok := x.Lookup(key)
	return fuzzEntry{e.Timestamp, e.RelOffset}, ok
}

func (x fuzzTimeIndex) check() error { return x.Check(1 << 40) }

func (x fuzzTimeIndex) appendAfter(last fuzzEntry, ok bool) (fuzzEntry, bool, error) {
	e := TimeEntry{1, 0}
	if ok {
		if last.key == math.MaxInt64 {
			return fuzzEntry{}, false, nil
		}
		e = TimeEntry{max(last.key+1, 0), last.val}
	}
	return fuzzEntry{e.Timestamp, e.RelOffset}, true, x.MaybeAppend(e.Timestamp, e.RelOffset)
}

func (x fuzzTimeIndex) truncate(e fuzzEntry) { x.TruncateToOffset(e.val) }

func (x fuzzTimeIndex) valid(prev, cur fuzzEntry) bool {
	return cur.key > prev.key && cur.val >= prev.val
}

func openFuzzIndex(path string, timeIndex, writable bool) (fuzzIndex, error) {
	if timeIndex {
		x, err := OpenTimeIndex(path, 1<<20, writable)
		if err != nil {
			return nil, err
		}
		return fuzzTimeIndex{x}, nil
	}
	x, err := OpenOffsetIndex(path, 1<<20, writable)
	if err != nil {
		return nil, err
	}
	return fuzzOffsetIndex{x}, nil
}

// decodeFuzzEntries decodes the whole entries of an index file as the test reads the format.
func decodeFuzzEntries(data []byte, timeIndex bool) []fuzzEntry {
	var out []fuzzEntry
	if timeIndex {
		for ; len(data) >= TimeEntrySize; data = data[TimeEntrySize:] {
			out = append(out, fuzzEntry{int64(binary.BigEndian.Uint64(data)), binary.BigEndian.Uint32(data[8:])})
		}
		return out
	}
	for ; len(data) >= OffsetEntrySize; data = data[OffsetEntrySize:] {
		out = append(out, fuzzEntry{int64(binary.BigEndian.Uint32(data)), binary.BigEndian.Uint32(data[4:])})
	}
	return out
}

// FuzzOpenIndex writes arbitrary bytes as an index file and opens it read-only and writable.
// Neither panics. Read-only, the entries are the file's; Check errors exactly when they are
// out of order, and otherwise every Lookup answers as a linear search would (when Check fails,
// Lookup still answers with an existing entry no larger than the key). Writable, the index
// counts a strictly increasing prefix, then takes appends and truncations, and the file it
// leaves behind opens read-only and passes Check.
func FuzzOpenIndex(f *testing.F) {
	f.Add(offsetFile(sampleOffsets...), false)
	f.Add(append(offsetFile(sampleOffsets...), make([]byte, 40)...), false)
	f.Add(offsetFile(OffsetEntry{5, 10}, OffsetEntry{4, 20}, OffsetEntry{6, 30}), false)
	f.Add(offsetFile(OffsetEntry{0, 0}, OffsetEntry{4, 5000}), false)
	f.Add(append(offsetFile(sampleOffsets...), 1, 2, 3), false)
	f.Add(offsetFile(OffsetEntry{math.MaxUint32, math.MaxUint32}), false)
	f.Add(timeFile(TimeEntry{100, 2}, TimeEntry{200, 2}, TimeEntry{300, 7}), true)
	f.Add(append(timeFile(TimeEntry{100, 2}, TimeEntry{200, 3}), make([]byte, 36)...), true)
	f.Add(timeFile(TimeEntry{-5, 0}, TimeEntry{math.MaxInt64, 1}), true)
	f.Add(timeFile(TimeEntry{100, 2}, TimeEntry{50, 3}), true)
	f.Add(append(timeFile(TimeEntry{100, 2}), 9, 9), true)
	f.Add([]byte{}, false)
	f.Add([]byte{}, true)
	dir := f.TempDir() // executions in one process run one at a time: reuse the files
	f.Fuzz(func(t *testing.T, data []byte, timeIndex bool) {
		width := OffsetEntrySize
		if timeIndex {
			width = TimeEntrySize
		}
		want := decodeFuzzEntries(data, timeIndex)
		path := filepath.Join(dir, "ro")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkReadOnlyIndex(t, path, data, timeIndex, width, want)
		wpath := filepath.Join(dir, "rw")
		if err := os.WriteFile(wpath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkWritableIndex(t, wpath, timeIndex, width, want)
	})
}

func checkReadOnlyIndex(t *testing.T, path string, data []byte, timeIndex bool, width int, want []fuzzEntry) {
	x, err := openFuzzIndex(path, timeIndex, false)
	if len(data)%width != 0 {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("read-only open of a %d-byte file: %v, want ErrCorrupt", len(data), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	defer x.Close()
	if x.Entries() != len(want) {
		t.Fatalf("read-only Entries = %d, want %d", x.Entries(), len(want))
	}
	ordered := true
	for i := range want {
		if got := x.entry(i); got != want[i] {
			t.Fatalf("entry %d = %+v, file holds %+v", i, got, want[i])
		}
		if i > 0 && !x.valid(want[i-1], want[i]) {
			ordered = false
		}
	}
	err = x.check()
	if ordered != (err == nil) {
		t.Fatalf("Check = %v on entries that are ordered: %v", err, ordered)
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check = %v, want ErrCorrupt", err)
	}
	for _, key := range fuzzProbes(want, timeIndex) {
		got, ok := x.lookup(key)
		if ordered {
			ref, rok := linearLookup(want, key)
			if ok != rok || got != ref {
				t.Fatalf("Lookup(%d) = %+v %v, want %+v %v", key, got, ok, ref, rok)
			}
			continue
		}
		if ok && (got.key > key || !contains(want, got)) {
			t.Fatalf("Lookup(%d) on a corrupt index = %+v: not an entry at or below the key", key, got)
		}
	}
}

func checkWritableIndex(t *testing.T, path string, timeIndex bool, width int, file []fuzzEntry) {
	x, err := openFuzzIndex(path, timeIndex, true)
	if err != nil {
		t.Fatalf("writable open: %v", err)
	}
	defer func() {
		if x != nil {
			x.Close()
		}
	}()
	n := x.Entries()
	if n > len(file) {
		t.Fatalf("writable open counted %d entries in a file of %d", n, len(file))
	}
	for i := 0; i < n; i++ {
		if got := x.entry(i); got != file[i] {
			t.Fatalf("writable entry %d = %+v, file holds %+v", i, got, file[i])
		}
		if i > 0 && !x.valid(file[i-1], file[i]) {
			t.Fatalf("writable open counted entry %d %+v after %+v: not increasing", i, file[i], file[i-1])
		}
	}
	// The prefix is the longest one, except that a zero first entry is taken for the
	// preallocated tail.
	if n < len(file) {
		stopOK := n > 0 && !x.valid(file[n-1], file[n]) || n == 0 && file[0] == (fuzzEntry{})
		if !stopOK {
			t.Fatalf("writable open stopped after %d entries before %+v", n, file[n])
		}
	}
	prefix := append([]fuzzEntry(nil), file[:n]...)

	// It takes an append after the counted prefix.
	var last fuzzEntry
	if n > 0 {
		last = prefix[n-1]
	}
	e, appended, err := x.appendAfter(last, n > 0)
	if errors.Is(err, ErrFull) && (n+1)*width > 1<<20 {
		appended, err = false, nil
	}
	if err != nil {
		t.Fatalf("append of %+v after %d entries: %v", e, n, err)
	}
	if appended {
		if x.Entries() != n+1 || x.entry(n) != e {
			t.Fatalf("after append of %+v: %d entries, entry %d %+v", e, x.Entries(), n, x.entry(n))
		}
		if got, ok := x.lookup(e.key); !ok || got != e {
			t.Fatalf("Lookup(%d) of the appended entry = %+v %v", e.key, got, ok)
		}
		prefix = append(prefix, e)
	}
	// Truncating at the middle entry keeps the entries before it.
	if len(prefix) > 0 {
		mid := len(prefix) / 2
		x.truncate(prefix[mid])
		keep := mid
		if timeIndex {
			// Offsets may repeat: every entry with the middle one's offset goes.
			for keep > 0 && prefix[keep-1].val >= prefix[mid].val {
				keep--
			}
		}
		if x.Entries() != keep {
			t.Fatalf("truncation at %+v kept %d of %d entries, want %d", prefix[mid], x.Entries(), len(prefix), keep)
		}
		prefix = prefix[:keep]
	}
	err = x.Close()
	x = nil
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(prefix)*width) {
		t.Fatalf("closed writable index is %d bytes, want %d", st.Size(), len(prefix)*width)
	}
	r, err := openFuzzIndex(path, timeIndex, false)
	if err != nil {
		t.Fatalf("reopen read-only: %v", err)
	}
	defer r.Close()
	if r.Entries() != len(prefix) {
		t.Fatalf("reopened with %d entries, want %d", r.Entries(), len(prefix))
	}
	for i, e := range prefix {
		if got := r.entry(i); got != e {
			t.Fatalf("reopened entry %d = %+v, want %+v", i, got, e)
		}
	}
	if err := r.check(); err != nil {
		t.Fatalf("an index written by the writable path fails Check: %v", err)
	}
}

// fuzzProbes returns the lookup keys worth trying: around every entry and at the extremes.
func fuzzProbes(es []fuzzEntry, timeIndex bool) []int64 {
	lo, hi := int64(0), int64(math.MaxUint32)
	if timeIndex {
		lo, hi = math.MinInt64, math.MaxInt64
	}
	probes := []int64{lo, hi, 0}
	for _, e := range es {
		for _, k := range []int64{e.key - 1, e.key, e.key + 1} {
			if k >= lo && k <= hi && (k != e.key-1 || e.key > lo) && (k != e.key+1 || e.key < hi) {
				probes = append(probes, k)
			}
		}
	}
	return probes
}

func linearLookup(es []fuzzEntry, key int64) (fuzzEntry, bool) {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].key <= key {
			return es[i], true
		}
	}
	return fuzzEntry{}, false
}

func contains(es []fuzzEntry, e fuzzEntry) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}
