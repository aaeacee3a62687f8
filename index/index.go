// Package index implements the sparse per-segment indexes of a partition log: the offset
// index and the time index. Both are arrays of fixed-width big-endian entries in a
// memory-mapped file named after the segment's base offset. The index is derived data: the
// log is the truth, and an index that fails Check is rebuilt from the log by its owner.
//
// Offset index (<base>.index), one entry per ~index.interval.bytes of log appended:
//
//	+---------------------------+---------------------------+
//	| relative offset (u32, BE) | file position (u32, BE)   |   8 bytes
//	+---------------------------+---------------------------+
//
// relative offset = (last offset of a batch) - (segment base offset); file position = where
// that batch starts in the .log file. Both strictly increase from entry to entry.
//
// Time index (<base>.timeindex):
//
//	+-----------------------------+---------------------------+
//	| timestamp (i64 ms, BE)      | relative offset (u32, BE) |   12 bytes
//	+-----------------------------+---------------------------+
//
// An entry (T, O) says: T is the largest timestamp among all batches up to the entry's point in
// the segment, and O is the relative last offset of the first batch that carries T. Timestamps
// strictly increase from entry to entry; offsets do not decrease.
//
// A writable index is preallocated in chunks and trimmed to its entries by Seal. Because the
// unused tail is zeros, the number of entries of a writable index opened after a crash is the
// longest prefix that is strictly increasing; the log's recovery then truncates entries that
// point past the recovered log and re-adds them.
//
// Concurrency: one writer (Append, TruncateTo, Seal, Close) at a time, many concurrent readers
// (Lookup, Entries, Last). Entries are published with an atomic count after they are written,
// so a reader never sees a half-written entry. TruncateTo and Close must not run concurrently
// with readers; the log guarantees that with its segment lock.
//
// This package knows nothing of the network or of record batches.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spate-broker/spate/internal/mmfile"
)

// ErrFull is returned by Append when the index has reached its configured maximum size; the
// log rolls a new segment.
var ErrFull = errors.New("index: full")

// ErrCorrupt is returned by Check when entries are out of order or point outside the log.
var ErrCorrupt = errors.New("index: corrupt")

// growChunk is how much a writable index file grows at a time.
const growChunk = 64 << 10

// table is the shared machinery of both indexes: a file of fixed-width entries.
type table struct {
	mf        *mmfile.File
	width     int64
	maxBytes  int64
	entries   atomic.Int64 // Invariant: entries*width <= mf.Size(); entries [0,n) are valid.
	writable  bool
	validFunc func(prev, cur []byte) bool // is cur a valid successor of prev
}

func (t *table) open(path string, maxBytes int64, writable bool) error {
	maxBytes -= maxBytes % t.width
	if maxBytes < t.width {
		maxBytes = t.width
	}
	t.maxBytes = maxBytes
	t.writable = writable
	mf, err := mmfile.Open(path, maxBytes, writable, writable)
	if err != nil {
		return err
	}
	t.mf = mf
	if !writable {
		if mf.Size()%t.width != 0 {
			n := mf.Size() / t.width
			t.entries.Store(n)
			return fmt.Errorf("%w: %q size %d not a multiple of %d", ErrCorrupt, path, mf.Size(), t.width)
		}
		t.entries.Store(mf.Size() / t.width)
		return nil
	}
	// Writable: count the strictly increasing prefix; the rest is preallocated zeros or junk.
	b := mf.Bytes()
	n := int64(0)
	total := int64(len(b)) / t.width
	for n < total {
		cur := b[n*t.width : (n+1)*t.width]
		if n > 0 && !t.validFunc(b[(n-1)*t.width:n*t.width], cur) {
			break
		}
		if n == 0 && isZero(cur) && (total < 2 || !t.validFunc(cur, b[t.width:2*t.width])) {
			break // a lone zero entry cannot be told from the preallocated tail (and is harmless to drop)
		}
		n++
	}
	t.entries.Store(n)
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (t *table) entry(i int64) []byte {
	b := t.mf.Bytes()
	return b[i*t.width : (i+1)*t.width]
}

// appendEntry writes e (len == width) after the last entry and publishes it.
func (t *table) appendEntry(e []byte) error {
	n := t.entries.Load()
	end := (n + 1) * t.width
	if end > t.maxBytes {
		return ErrFull
	}
	if end > t.mf.Size() {
		grow := min(t.mf.Size()+growChunk, t.maxBytes)
		if err := t.mf.Grow(grow); err != nil {
			return err
		}
	}
	copy(t.mf.Bytes()[n*t.width:end], e)
	t.entries.Store(n + 1)
	return nil
}

// truncateEntries keeps the first n entries and zeroes the rest that were written.
func (t *table) truncateEntries(n int64) {
	old := t.entries.Load()
	if n >= old {
		return
	}
	t.entries.Store(n)
	if t.writable {
		clear(t.mf.Bytes()[n*t.width : old*t.width])
	}
}

// search returns the index of the last entry for which le(entry) is true, assuming le is
// true for a prefix of the entries, or -1.
func (t *table) search(n int64, le func(e []byte) bool) int64 {
	lo, hi := int64(0), n // invariant: le true below lo, false at and above hi
	for lo < hi {
		mid := int64(uint64(lo+hi) >> 1)
		if le(t.entry(mid)) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

func (t *table) seal() error {
	if !t.writable {
		return nil
	}
	return t.mf.Shrink(t.entries.Load() * t.width)
}

func (t *table) sync() error {
	if !t.writable {
		return nil
	}
	return t.mf.Sync()
}

func (t *table) close() error {
	if t.mf == nil {
		return nil
	}
	if t.writable {
		// Trim the preallocated tail so the file holds exactly its entries.
		if err := t.mf.Shrink(t.entries.Load() * t.width); err != nil {
			t.mf.Close()
			return err
		}
	}
	return t.mf.Close()
}

// OffsetIndex maps relative offsets to file positions. See the package doc for the format.
type OffsetIndex struct {
	t table
}

// OffsetEntry is one offset index entry.
type OffsetEntry struct {
	RelOffset uint32 // last offset of the batch, relative to the segment's base offset
	Position  uint32 // file position of the batch in the segment's .log
}

// OffsetEntrySize is the width of an offset index entry.
const OffsetEntrySize = 8

// OpenOffsetIndex opens (creating when writable) the offset index at path. maxBytes bounds a
// writable index (segment.index.bytes); a read-only index is mapped as it is.
func OpenOffsetIndex(path string, maxBytes int64, writable bool) (*OffsetIndex, error) {
	x := &OffsetIndex{t: table{width: OffsetEntrySize}}
	x.t.validFunc = func(prev, cur []byte) bool {
		return binary.BigEndian.Uint32(cur) > binary.BigEndian.Uint32(prev) &&
			binary.BigEndian.Uint32(cur[4:]) > binary.BigEndian.Uint32(prev[4:])
	}
	if err := x.t.open(path, maxBytes, writable); err != nil {
		if x.t.mf != nil {
			x.t.mf.Close()
		}
		return nil, fmt.Errorf("open offset index: %w", err)
	}
	return x, nil
}

// Entries returns the number of entries.
func (x *OffsetIndex) Entries() int { return int(x.t.entries.Load()) }

// Entry returns entry i (0 <= i < Entries()).
func (x *OffsetIndex) Entry(i int) OffsetEntry {
	e := x.t.entry(int64(i))
	return OffsetEntry{binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])}
}

// Last returns the last entry, or ok=false when the index is empty.
func (x *OffsetIndex) Last() (OffsetEntry, bool) {
	n := x.Entries()
	if n == 0 {
		return OffsetEntry{}, false
	}
	return x.Entry(n - 1), true
}

// IsFull reports whether another entry would not fit.
func (x *OffsetIndex) IsFull() bool {
	return (x.t.entries.Load()+1)*x.t.width > x.t.maxBytes
}

// Append adds an entry. The caller guarantees that both fields are larger than the last
// entry's (Append checks and refuses otherwise, as a bug). It returns ErrFull when full.
func (x *OffsetIndex) Append(e OffsetEntry) error {
	if last, ok := x.Last(); ok && (e.RelOffset <= last.RelOffset || e.Position <= last.Position) {
		return fmt.Errorf("BUG: offset index entry %+v not after %+v", e, last)
	}
	var b [OffsetEntrySize]byte
	binary.BigEndian.PutUint32(b[:], e.RelOffset)
	binary.BigEndian.PutUint32(b[4:], e.Position)
	return x.t.appendEntry(b[:])
}

// Lookup returns the last entry whose relative offset is <= rel; ok is false when there is none
// (the caller then starts at position 0).
func (x *OffsetIndex) Lookup(rel uint32) (OffsetEntry, bool) {
	i := x.t.search(x.t.entries.Load(), func(e []byte) bool { return binary.BigEndian.Uint32(e) <= rel })
	if i < 0 {
		return OffsetEntry{}, false
	}
	return x.Entry(int(i)), true
}

// TruncateToPosition removes every entry whose position is >= pos.
func (x *OffsetIndex) TruncateToPosition(pos uint32) {
	n := x.t.entries.Load()
	i := x.t.search(n, func(e []byte) bool { return binary.BigEndian.Uint32(e[4:]) < pos })
	x.t.truncateEntries(i + 1)
}

// Check verifies the entries: increasing, and pointing inside a log of logSize bytes whose
// relative offsets are below relEnd. It returns an error wrapping ErrCorrupt otherwise.
func (x *OffsetIndex) Check(logSize int64, relEnd uint64) error {
	n := x.Entries()
	for i := 0; i < n; i++ {
		e := x.Entry(i)
		if int64(e.Position) >= logSize || uint64(e.RelOffset) >= relEnd {
			return fmt.Errorf("%w: entry %d %+v outside log (size %d, relative end %d)", ErrCorrupt, i, e, logSize, relEnd)
		}
		if i > 0 {
			p := x.Entry(i - 1)
			if e.RelOffset <= p.RelOffset || e.Position <= p.Position {
				return fmt.Errorf("%w: entry %d %+v not after %+v", ErrCorrupt, i, e, p)
			}
		}
	}
	return nil
}

// Seal trims a writable index file to its entries; it is called when its segment is rolled.
func (x *OffsetIndex) Seal() error { return x.t.seal() }

// Sync flushes a writable index to disk.
func (x *OffsetIndex) Sync() error { return x.t.sync() }

// Close trims (when writable) and closes the index.
func (x *OffsetIndex) Close() error { return x.t.close() }

// TimeIndex maps timestamps to relative offsets. See the package doc for the format.
type TimeIndex struct {
	t table
}

// TimeEntry is one time index entry.
type TimeEntry struct {
	Timestamp int64  // largest timestamp so far in the segment (ms)
	RelOffset uint32 // relative last offset of the first batch that carries Timestamp
}

// TimeEntrySize is the width of a time index entry.
const TimeEntrySize = 12

// OpenTimeIndex opens (creating when writable) the time index at path.
func OpenTimeIndex(path string, maxBytes int64, writable bool) (*TimeIndex, error) {
	x := &TimeIndex{t: table{width: TimeEntrySize}}
	x.t.validFunc = func(prev, cur []byte) bool {
		return int64(binary.BigEndian.Uint64(cur)) > int64(binary.BigEndian.Uint64(prev)) &&
			binary.BigEndian.Uint32(cur[8:]) >= binary.BigEndian.Uint32(prev[8:])
	}
	if err := x.t.open(path, maxBytes, writable); err != nil {
		if x.t.mf != nil {
			x.t.mf.Close()
		}
		return nil, fmt.Errorf("open time index: %w", err)
	}
	return x, nil
}

// Entries returns the number of entries.
func (x *TimeIndex) Entries() int { return int(x.t.entries.Load()) }

// Entry returns entry i (0 <= i < Entries()).
func (x *TimeIndex) Entry(i int) TimeEntry {
	e := x.t.entry(int64(i))
	return TimeEntry{int64(binary.BigEndian.Uint64(e)), binary.BigEndian.Uint32(e[8:])}
}

// Last returns the last entry, or ok=false when the index is empty.
func (x *TimeIndex) Last() (TimeEntry, bool) {
	n := x.Entries()
	if n == 0 {
		return TimeEntry{}, false
	}
	return x.Entry(n - 1), true
}

// IsFull reports whether another entry would not fit.
func (x *TimeIndex) IsFull() bool {
	return (x.t.entries.Load()+1)*x.t.width > x.t.maxBytes
}

// MaybeAppend adds (ts, rel) when ts is larger than the last entry's timestamp (and is not
// negative); otherwise it does nothing. It returns ErrFull when full.
func (x *TimeIndex) MaybeAppend(ts int64, rel uint32) error {
	if ts < 0 {
		return nil
	}
	if last, ok := x.Last(); ok {
		if ts <= last.Timestamp {
			return nil
		}
		if rel < last.RelOffset {
			return fmt.Errorf("BUG: time index offset %d before %d", rel, last.RelOffset)
		}
	}
	var b [TimeEntrySize]byte
	binary.BigEndian.PutUint64(b[:], uint64(ts))
	binary.BigEndian.PutUint32(b[8:], rel)
	return x.t.appendEntry(b[:])
}

// Lookup returns the last entry whose timestamp is <= ts; ok is false when there is none.
// Every record before the first batch that carries the returned entry's timestamp has a
// smaller timestamp, so a search for the first record with timestamp >= ts may start at the
// batch holding the entry's offset.
func (x *TimeIndex) Lookup(ts int64) (TimeEntry, bool) {
	i := x.t.search(x.t.entries.Load(), func(e []byte) bool { return int64(binary.BigEndian.Uint64(e)) <= ts })
	if i < 0 {
		return TimeEntry{}, false
	}
	return x.Entry(int(i)), true
}

// TruncateToOffset removes every entry whose relative offset is >= rel.
func (x *TimeIndex) TruncateToOffset(rel uint32) {
	n := x.t.entries.Load()
	i := x.t.search(n, func(e []byte) bool { return binary.BigEndian.Uint32(e[8:]) < rel })
	x.t.truncateEntries(i + 1)
}

// Check verifies that entries increase and that offsets are below relEnd.
func (x *TimeIndex) Check(relEnd uint64) error {
	n := x.Entries()
	for i := 0; i < n; i++ {
		e := x.Entry(i)
		if uint64(e.RelOffset) >= relEnd {
			return fmt.Errorf("%w: time entry %d %+v outside log (relative end %d)", ErrCorrupt, i, e, relEnd)
		}
		if i > 0 {
			p := x.Entry(i - 1)
			if e.Timestamp <= p.Timestamp || e.RelOffset < p.RelOffset {
				return fmt.Errorf("%w: time entry %d %+v not after %+v", ErrCorrupt, i, e, p)
			}
		}
	}
	return nil
}

// Seal trims a writable index file to its entries.
func (x *TimeIndex) Seal() error { return x.t.seal() }

// Sync flushes a writable index to disk.
func (x *TimeIndex) Sync() error { return x.t.sync() }

// Close trims (when writable) and closes the index.
func (x *TimeIndex) Close() error { return x.t.close() }
