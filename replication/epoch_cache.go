package replication

// EpochCache is Kafka's LeaderEpochFileCache: for each leader epoch the partition has seen,
// the offset of the first record written in it. Leaders answer OffsetForLeaderEpoch and the
// KIP-320 fetch check from it; followers find where their log diverges from the leader's.
//
// File (leader-epoch-checkpoint in the partition folder), Kafka's text checkpoint format,
// written whole on every change: temporary file, fsync, rename, fsync of the folder.
//
//	line   content          example
//	   1   version          0
//	   2   entry count      2
//	   3…  epoch startOff   3 0
//	                        5 120
//
// Every line ends with '\n'. Epochs and start offsets increase strictly from line to line
// (entries read back are put through Assign's rules, as Kafka does on load).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
)

// EpochCheckpointFile is the cache's file name in a partition folder.
const EpochCheckpointFile = "leader-epoch-checkpoint"

// Kafka's OffsetsForLeaderEpochResponse constants.
const (
	UndefinedEpoch       int32 = -1
	UndefinedEpochOffset int64 = -1
)

// EpochEntry is one leader epoch and the offset of its first record.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// EpochEndOffset is an epoch and its end offset (the start offset of the next epoch, or the
// log end offset for the latest), as OffsetForLeaderEpoch and diverging_epoch carry them.
type EpochEndOffset struct {
	Epoch     int32
	EndOffset int64
}

// EpochCache is one partition's leader epoch cache. All methods are safe for concurrent use.
// A failed file write leaves the change in memory and returns the error: the file is then
// stale, which the caller must treat as a failed log folder (Kafka takes the folder offline).
type EpochCache struct {
	path string

	mu sync.RWMutex
	// entries is sorted. Invariant: epochs and start offsets both increase strictly.
	// Guarded by mu; the file is written under mu, so writes land in order.
	entries []EpochEntry
}

// OpenEpochCache loads dir's leader-epoch-checkpoint; a missing or empty file is an empty
// cache. A malformed file is an error naming it.
func OpenEpochCache(dir string) (*EpochCache, error) {
	c := &EpochCache{path: filepath.Join(dir, EpochCheckpointFile)}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read leader epoch checkpoint %q: %w", c.path, err)
	}
	entries, err := parseEpochCheckpoint(string(b))
	if err != nil {
		return nil, fmt.Errorf("malformed leader epoch checkpoint %q: %w", c.path, err)
	}
	for _, e := range entries {
		c.assignLocked(e)
	}
	return c, nil
}

// parseEpochCheckpoint reads the file as Kafka's CheckpointFile reader does: no version line
// or no count line is empty, otherwise every following line is an entry and their number must
// match the count.
func parseEpochCheckpoint(s string) ([]EpochEntry, error) {
	lines := strings.Split(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, nil
	}
	if lines[0] != "0" {
		return nil, fmt.Errorf("line 1: unrecognized version %q", lines[0])
	}
	if len(lines) == 1 {
		return nil, nil
	}
	want, err := strconv.Atoi(lines[1])
	if err != nil || want < 0 {
		return nil, fmt.Errorf("line 2: bad entry count %q", lines[1])
	}
	out := make([]EpochEntry, 0, min(want, len(lines)))
	for i, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: malformed entry %q", i+3, l)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return nil, fmt.Errorf("line %d: malformed entry %q", i+3, l)
		}
		out = append(out, EpochEntry{Epoch: int32(e), StartOffset: o})
	}
	if len(out) != want {
		return nil, fmt.Errorf("expected %d entries, found %d", want, len(out))
	}
	return out, nil
}

// Path returns the checkpoint file's path.
func (c *EpochCache) Path() string { return c.path }

// Assign records that epoch starts at startOffset, as Kafka's assign: nothing changes when
// epoch is the latest epoch and startOffset is not below its start (an epoch, once assigned,
// keeps its start). Otherwise entries that would break monotonicity — every later entry whose
// epoch is >= epoch or whose start is >= startOffset — are removed first, so a lower epoch or
// an earlier start truncates the cache's tail. Negative values are an error.
func (c *EpochCache) Assign(epoch int32, startOffset int64) error {
	if epoch < 0 || startOffset < 0 {
		return fmt.Errorf("invalid leader epoch entry (%d, %d)", epoch, startOffset)
	}
	e := EpochEntry{Epoch: epoch, StartOffset: startOffset}
	c.mu.RLock()
	needed := c.updateNeededLocked(e)
	c.mu.RUnlock()
	if !needed {
		return nil // the common case, without the write lock
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.assignLocked(e) {
		return nil
	}
	return c.writeLocked()
}

func (c *EpochCache) updateNeededLocked(e EpochEntry) bool {
	if len(c.entries) == 0 {
		return true
	}
	last := c.entries[len(c.entries)-1]
	return e.Epoch != last.Epoch || e.StartOffset < last.StartOffset
}

func (c *EpochCache) assignLocked(e EpochEntry) bool {
	if !c.updateNeededLocked(e) {
		return false
	}
	n := len(c.entries)
	for n > 0 && (c.entries[n-1].Epoch >= e.Epoch || c.entries[n-1].StartOffset >= e.StartOffset) {
		n--
	}
	c.entries = append(c.entries[:n], e)
	return true
}

// Latest returns the latest epoch; ok is false for an empty cache.
func (c *EpochCache) Latest() (epoch int32, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.entries) == 0 {
		return UndefinedEpoch, false
	}
	return c.entries[len(c.entries)-1].Epoch, true
}

// Entries returns a copy of the entries, oldest first.
func (c *EpochCache) Entries() []EpochEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]EpochEntry(nil), c.entries...)
}

// EndOffsetFor is Kafka's LeaderEpochFileCache.endOffsetFor: the largest epoch <= requested
// and its end offset, the start offset of the first epoch greater than requested. For the
// latest epoch the end is logEndOffset (still being written). An UNDEFINED (-1) request, an
// empty cache, or a request above the latest epoch answers (-1, -1). A request below the
// first epoch answers (requested, the first epoch's start): data before it is gone, and the
// asker keeps nothing past it (KIP-279; Kafka's code, although its doc comment still says
// UNDEFINED for this case).
func (c *EpochCache) EndOffsetFor(requested int32, logEndOffset int64) (foundEpoch int32, endOffset int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.entries)
	switch {
	case requested == UndefinedEpoch || n == 0:
		return UndefinedEpoch, UndefinedEpochOffset
	case c.entries[n-1].Epoch == requested:
		return requested, logEndOffset
	}
	// higher: the first entry with epoch > requested.
	h := 0
	for h < n && c.entries[h].Epoch <= requested {
		h++
	}
	switch {
	case h == n:
		return UndefinedEpoch, UndefinedEpochOffset
	case h == 0:
		return requested, c.entries[0].StartOffset
	default:
		return c.entries[h-1].Epoch, c.entries[h].StartOffset
	}
}

// TruncateFromEnd removes every entry whose start offset is >= endOffset (the log was
// truncated to endOffset). A negative endOffset changes nothing.
func (c *EpochCache) TruncateFromEnd(endOffset int64) error {
	c.mu.RLock()
	n := len(c.entries)
	needed := endOffset >= 0 && n > 0 && c.entries[n-1].StartOffset >= endOffset
	c.mu.RUnlock()
	if !needed {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n = len(c.entries)
	for n > 0 && endOffset >= 0 && c.entries[n-1].StartOffset >= endOffset {
		n--
	}
	if n == len(c.entries) {
		return nil
	}
	c.entries = c.entries[:n]
	return c.writeLocked()
}

// TruncateFromStart removes the entries wholly below startOffset (the log start offset moved):
// the last entry starting at or before startOffset is kept, starting at startOffset, so
// TruncateFromStart(6) keeps an entry that starts at 6.
func (c *EpochCache) TruncateFromStart(startOffset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for i < len(c.entries) && c.entries[i].StartOffset <= startOffset {
		i++
	}
	if i == 0 || (i == 1 && c.entries[0].StartOffset == startOffset) {
		return nil
	}
	first := EpochEntry{Epoch: c.entries[i-1].Epoch, StartOffset: startOffset}
	c.entries = append(c.entries[:0], c.entries[i-1:]...)
	c.entries[0] = first
	return c.writeLocked()
}

// Clear removes every entry (the log was emptied: TruncateFullyAndStartAt).
func (c *EpochCache) Clear() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = c.entries[:0]
	return c.writeLocked()
}

// CheckFetch is the leader's KIP-320 check of a follower's fetch (Kafka's
// Partition.fetchRecords with a last fetched epoch): the end offset of lastFetchedEpoch in
// this (the leader's) cache must be known, and the follower must not be past it. When it is,
// diverging is set and the response carries div as its diverging_epoch with no records; when
// the epoch's end is unknown the answer is code OFFSET_OUT_OF_RANGE. A negative
// lastFetchedEpoch (a consumer, or a follower with no epoch) checks nothing.
func (c *EpochCache) CheckFetch(lastFetchedEpoch int32, fetchOffset, logEndOffset int64) (div EpochEndOffset, diverging bool, code int16) {
	div = EpochEndOffset{Epoch: UndefinedEpoch, EndOffset: UndefinedEpochOffset}
	if lastFetchedEpoch < 0 {
		return div, false, 0
	}
	e, end := c.EndOffsetFor(lastFetchedEpoch, logEndOffset)
	if e == UndefinedEpoch || end == UndefinedEpochOffset {
		return div, false, kerr.OffsetOutOfRange.Code
	}
	if e < lastFetchedEpoch || end < fetchOffset {
		return EpochEndOffset{Epoch: e, EndOffset: end}, true, 0
	}
	return div, false, 0
}

// writeLocked writes the file atomically: temporary file, fsync, rename, fsync the folder.
func (c *EpochCache) writeLocked() error {
	b := make([]byte, 0, 8+len(c.entries)*24)
	b = append(b, "0\n"...)
	b = strconv.AppendInt(b, int64(len(c.entries)), 10)
	b = append(b, '\n')
	for _, e := range c.entries {
		b = strconv.AppendInt(b, int64(e.Epoch), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.StartOffset, 10)
		b = append(b, '\n')
	}
	if err := writeFileAtomic(c.path, b); err != nil {
		return fmt.Errorf("write leader epoch checkpoint %q: %w", c.path, err)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
