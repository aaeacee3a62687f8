// Package logstore is the partition log: an ordered, append-only sequence of Kafka record
// batches (magic v2) kept in segment files, with sparse offset and time indexes (package
// index). It owns appends, reads of file regions for sendfile(2), offset-for-time lookups,
// segment rolling, retention, the log start offset, flushing, truncation and crash recovery.
// It knows nothing of the network, of replication or of producers' state.
//
// Disk layout of one log (a <topic>-<partition> folder):
//
//	00000000000000000000.log        batches exactly as produced (see batch.go), except the
//	                                base offset and partition leader epoch fields
//	00000000000000000000.index      sparse offset index (package index)
//	00000000000000000000.timeindex  time index (package index)
//	00000000000000000000.txnindex   aborted transactions whose marker is in the segment
//	                                (txnindex.go); only for segments that have some
//	00000000000000004096.log        next segment: named by the offset of its first record
//	…
//
// The recovery point and log start offset are kept by the owner (see Store) in the data
// folder's checkpoint files and passed to Open.
//
// Invariants:
//   - Offsets increase from batch to batch; a batch is never split, on disk or in a read.
//     A leader's appends are dense; follower appends and recovery accept gaps between batches
//     (as Kafka does: compaction leaves them), never overlaps or overflow.
//   - [0, size) of every segment holds whole batches that passed validation; size is
//     published after the bytes are written, so readers never see a partial batch.
//   - The active segment's file is allocated (fallocate) before its mapping covers it, so a
//     full disk is an error from Append, never SIGBUS.
//   - Everything below the recovery point was synced to disk; recovery validates from there.
//   - An aborted transaction index entry lives in the segment holding its abort marker, below
//     the log end offset; entries increase in LastOffset across the log (txnindex.go).
//
// Locks: appendMu (one writer: append, roll, truncate, retention, delete-records, aborted
// transaction index entries) is taken before mu. mu guards the segment list: readers hold it for reading while they locate
// segments and take references; structural changes (roll, delete, truncate) hold it for
// writing. Readers never wait for appends.
package logstore

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/spate-broker/spate/index"
	"github.com/spate-broker/spate/internal/mmfile"
)

// OpenOptions carries what the owner persisted about a log across restarts.
type OpenOptions struct {
	// RecoveryPoint is the offset below which the log was synced; recovery starts there.
	// 0 means "scan everything".
	RecoveryPoint Offset
	// LogStartOffset is the first offset visible to readers (moved by retention and
	// DeleteRecords); it is raised to the first segment's base offset if below it.
	LogStartOffset Offset
	// FlushNeeded is set when flush.messages unflushed records have accumulated: the caller
	// must Sync (off any event loop) before it acknowledges the append as flushed.
	FlushNeeded bool
}

// Log is one partition's log. Append* and the structural operations may be called from any
// goroutine (they serialize on appendMu); Read and the lookups may be called concurrently with
// everything.
type Log struct {
	dir string

	appendMu sync.Mutex
	cfg      Config // guarded by appendMu; readers use the immutable parts only
	werr     error  // first write error; sticky (guarded by appendMu)

	mu       sync.RWMutex
	segments []*segment // sorted by base; the last is active. Guarded by mu.
	closed   bool       // guarded by mu

	logStartOffset atomic.Int64
	logEndOffset   atomic.Int64
	recoveryPoint  atomic.Int64

	dirDirty      atomic.Bool // a segment file was created since the last Sync: fsync the folder
	txnDirty      atomic.Bool // an aborted transaction index was written since the last Sync
	unflushedMsgs int64       // guarded by appendMu
	firstUnflush  int64       // ms of the oldest unflushed append, 0 if none (guarded by appendMu)
	syncMu        sync.Mutex

	rel *releaser

	cleanableLimit atomic.Pointer[func() Offset] // SetCleanableLimit; nil: no limit
}

// AppendInfo describes what an append wrote. The caller supplies it.
type AppendInfo struct {
	FirstOffset    Offset // offset of the first record appended
	LastOffset     Offset // offset of the last record appended
	NumRecords     int64
	Bytes          int64
	MaxTimestamp   int64 // largest batch max timestamp appended
	LogAppendTime  int64 // the time written into LogAppendTime batches, -1 for CreateTime
	LogStartOffset Offset
	// FlushNeeded is set when flush.messages unflushed records have accumulated: the caller
	// must Sync (off any event loop) before it acknowledges the append as flushed.
	FlushNeeded bool
}

// Dir returns the log's folder.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset returns the first offset readers may see.
func (l *Log) LogStartOffset() Offset { return l.logStartOffset.Load() }

// LogEndOffset returns the offset the next appended record will get.
func (l *Log) LogEndOffset() Offset { return l.logEndOffset.Load() }

// RecoveryPoint returns the offset below which the log is known to be on disk.
func (l *Log) RecoveryPoint() Offset { return l.recoveryPoint.Load() }

// Config returns a copy of the log's configuration.
func (l *Log) Config() Config {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.cfg
}

// SetConfig changes the configuration. Segment sizes apply from the next roll.
func (l *Log) SetConfig(c Config) {
	c = c.normalized()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = c
}

// Size returns the total bytes of all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segments {
		n += s.size.Load()
	}
	return n
}

// NumSegments returns the number of segments.
func (l *Log) NumSegments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segments)
}

func (l *Log) active() *segment { return l.segments[len(l.segments)-1] }

// AppendAsLeader validates the record batches in records (one or more magic v2 batches, as a
// produce request carries them), assigns them offsets from the log end offset, stamps the
// partition leader epoch, and copies them once into the active segment (a large batch with
// pwritev, a small one into the mapping: writeBatchLocked). records is not
// modified. Nothing is written unless every batch is valid. Control batches are refused unless
// allowControl (transaction markers written by the broker itself).
func (l *Log) AppendAsLeader(records []byte, leaderEpoch int32, allowControl bool, info *AppendInfo) error {
	return l.appendAsLeader(records, leaderEpoch, allowControl, false, info)
}

// AppendCheckedAsLeader is AppendAsLeader for records whose first batch the caller has just
// validated with CheckBatch (the produce path does, to answer in Kafka's order): that batch's
// CRC is not computed a second time. Every other rule is checked as by AppendAsLeader. records
// must not have changed since the check.
func (l *Log) AppendCheckedAsLeader(records []byte, leaderEpoch int32, info *AppendInfo) error {
	return l.appendAsLeader(records, leaderEpoch, false, true, info)
}

func (l *Log) appendAsLeader(records []byte, leaderEpoch int32, allowControl, firstChecked bool, info *AppendInfo) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.validateLeaderLocked(records, allowControl, firstChecked, info); err != nil {
		return err
	}
	return l.appendLocked(records, true, leaderEpoch, info)
}

// AppendAsFollower appends batches that already carry their offsets (replication): the first
// batch's base offset must be >= the log end offset and offsets must increase.
func (l *Log) AppendAsFollower(records []byte, info *AppendInfo) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	var h BatchHeader
	next := l.logEndOffset.Load()
	*info = AppendInfo{FirstOffset: -1, LastOffset: -1, MaxTimestamp: -1, LogAppendTime: -1}
	for rest := records; len(rest) > 0; rest = rest[h.Size():] {
		if err := CheckBatch(rest, 0, &h); err != nil {
			return err
		}
		if !offsetsFit(&h, next, h.BaseOffset) {
			return &Error{Code: CodeInvalidRecord, Msg: fmt.Sprintf("follower batch at offset %d is below log end %d", h.BaseOffset, next)}
		}
		if int64(h.Size()) > l.cfg.SegmentBytes {
			return &Error{Code: CodeRecordListTooLarge, Msg: "batch larger than segment.bytes"}
		}
		next = h.LastOffset() + 1
	}
	return l.appendLocked(records, false, 0, info)
}

func (l *Log) validateLeaderLocked(records []byte, allowControl, firstChecked bool, info *AppendInfo) error {
	*info = AppendInfo{FirstOffset: -1, LastOffset: -1, MaxTimestamp: -1, LogAppendTime: -1}
	if len(records) == 0 {
		return &Error{Code: CodeInvalidRecord, Msg: "no record batches"}
	}
	var h BatchHeader
	crcOf := crcOfData
	if firstChecked {
		crcOf = nil
	}
	for rest := records; len(rest) > 0; rest, crcOf = rest[h.Size():], crcOfData {
		if err := checkBatch(rest, int(l.cfg.MaxMessageBytes), &h, crcOf); err != nil {
			return err
		}
		if h.RecordCount == 0 || h.LastOffsetDelta != h.RecordCount-1 {
			return &Error{Code: CodeInvalidRecord, Msg: "record count does not match the last offset delta"}
		}
		if h.IsControl() && !allowControl {
			return &Error{Code: CodeInvalidRecord, Msg: "clients may not write control batches"}
		}
	}
	if int64(len(records)) > l.cfg.SegmentBytes {
		return &Error{Code: CodeRecordListTooLarge, Msg: "batches larger than segment.bytes"}
	}
	if l.cfg.Compacted {
		return l.checkCompactedKeys(records) // Kafka refuses null keys on compacted topics
	}
	return nil
}

// appendLocked writes validated batches. asLeader assigns offsets from the log end offset.
func (l *Log) appendLocked(records []byte, asLeader bool, leaderEpoch int32, info *AppendInfo) error {
	if l.werr != nil {
		return l.werr
	}
	if l.closedLocked() {
		return ErrClosed
	}
	now := l.cfg.now()
	appendTime := int64(-1)
	if asLeader && l.cfg.LogAppendTime {
		appendTime = now
	}
	info.LogAppendTime = appendTime
	var h BatchHeader
	for rest := records; len(rest) > 0; rest = rest[h.Size():] {
		ParseBatchHeader(rest, &h)
		size := int64(h.Size())
		base := h.BaseOffset
		if asLeader {
			base = l.logEndOffset.Load()
		}
		last := base + int64(h.LastOffsetDelta)
		maxTs := h.MaxTimestamp
		if appendTime >= 0 {
			maxTs = appendTime
		}
		if err := l.maybeRollLocked(size, base, last, maxTs, now); err != nil {
			return l.fail(err)
		}
		s := l.active()
		pos := s.size.Load()
		if err := l.ensureRoomLocked(s, pos+size); err != nil {
			return l.fail(err)
		}
		if err := l.writeBatchLocked(s, rest[:size], pos, asLeader, base, leaderEpoch, appendTime); err != nil {
			return l.fail(err)
		}
		if err := l.indexBatchLocked(s, pos, size, last, maxTs); err != nil {
			return l.fail(err)
		}
		s.size.Store(pos + size)
		s.next.Store(last + 1)
		l.logEndOffset.Store(last + 1)
		if info.FirstOffset < 0 {
			info.FirstOffset = base
		}
		info.LastOffset = last
		info.NumRecords += int64(h.LastOffsetDelta) + 1
		info.Bytes += size
		info.MaxTimestamp = max(info.MaxTimestamp, maxTs)
	}
	info.LogStartOffset = l.logStartOffset.Load()
	if l.firstUnflush == 0 {
		l.firstUnflush = now
	}
	l.unflushedMsgs += info.NumRecords
	info.FlushNeeded = l.unflushedMsgs >= l.cfg.FlushMessages
	return nil
}

// pwriteMinBytes is the batch size from which the appender writes a batch with pwritev(2)
// instead of copying it into the segment's mapping. Measured on the development machine
// (make perf, A/B): a copy through the mapping takes a page fault per 4 KiB — the kernel
// allocating and zeroing a page cache page and mapping it — which cost more CPU than the
// copy itself (S1: broker CPU 0.84/0.88 → 0.55/0.49 s, produce +30%, peak RSS 95 → 55 MiB);
// a system call per batch costs more than a fault or two for small batches.
const pwriteMinBytes = 16 << 10

// writeBatchLocked writes the batch at pos of the active segment s (room ensured), as leader
// with its base offset, leader epoch and, for LogAppendTime, timestamp and CRC set. Batches
// from pwriteMinBytes go through the file (mmfile.WriteAt: header patched in a copy, body from
// batch, not copied by Go), smaller ones are copied into the mapping and patched in place.
// batch is not modified. Caller holds appendMu.
func (l *Log) writeBatchLocked(s *segment, batch []byte, pos int64, asLeader bool, base Offset, leaderEpoch int32, appendTime int64) error {
	if len(batch) >= pwriteMinBytes && appendTime < 0 {
		var hdr [BatchHeaderSize]byte
		copy(hdr[:], batch)
		if asLeader {
			SetBaseOffset(hdr[:], base)
			SetPartitionLeaderEpoch(hdr[:], leaderEpoch)
		}
		s.copied.Store(pos + int64(len(batch)) + 1) // not through the mapping: copied from its end on
		return s.mf.WriteAt(hdr[:], batch[BatchHeaderSize:], pos)
	}
	if s.copied.Load() == 0 {
		s.copied.Store(pos + 1)
	}
	dst := s.mf.Bytes()[pos : pos+int64(len(batch))]
	copy(dst, batch)
	if asLeader {
		SetBaseOffset(dst, base)
		SetPartitionLeaderEpoch(dst, leaderEpoch)
		if appendTime >= 0 {
			setLogAppendTime(dst, appendTime)
		}
	}
	return nil
}

// fail records the first write error; later appends see it too (a segment's write state is
// unknown after a failed write).
func (l *Log) fail(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err // a validation error, not a write failure
	}
	if l.werr == nil {
		l.werr = fmt.Errorf("log %s: %w", l.dir, err)
	}
	return l.werr
}

func (l *Log) closedLocked() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// maybeRollLocked rolls a new segment when the batch would not fit, the segment is too old,
// an index is full, or the batch's offsets do not fit the segment's relative offsets.
//
// The age rule is Kafka's: the batch's timestamp minus the segment's first batch timestamp
// when there is one, else the time since the segment was created.
func (l *Log) maybeRollLocked(size int64, base, last Offset, batchTs, now int64) error {
	s := l.active()
	cur := s.size.Load()
	if cur == 0 {
		if last-s.base > math.MaxUint32 {
			return l.rollLocked(base, now) // a follower's batch far past the segment's base
		}
		return nil
	}
	if last-s.base > math.MaxUint32 {
		return l.rollLocked(base, now) // relative offsets would overflow: start at the batch
	}
	if cur+size > l.cfg.SegmentBytes || cur+size > s.mf.Max() ||
		s.age(batchTs, now) > l.cfg.SegmentMs ||
		s.oidx.IsFull() || s.tidx.IsFull() {
		return l.rollLocked(s.next.Load(), now)
	}
	return nil
}

// Roll seals the active segment (if it holds data) and starts a new one at the log end offset.
func (l *Log) Roll() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.active().size.Load() == 0 {
		return nil
	}
	return l.rollLocked(l.logEndOffset.Load(), l.cfg.now())
}

func (l *Log) rollLocked(base Offset, now int64) error {
	ns, err := createSegment(l.dir, base, &l.cfg, now)
	if err != nil {
		return err
	}
	l.dirDirty.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.active()
	if err := old.seal(); err != nil {
		ns.deleted.Store(true)
		ns.markDeleted()
		return fmt.Errorf("seal segment %d: %w", old.base, err)
	}
	if old.size.Load() == 0 {
		// An empty segment at the same base is replaced; an empty one below is dropped.
		l.segments = l.segments[:len(l.segments)-1]
		if old.base != base {
			old.markDeleted()
		} else {
			old.deleted.Store(true)
			if old.refs.Load() == 0 {
				old.release()
			}
		}
	}
	l.segments = append(l.segments, ns)
	if size := old.size.Load(); size > old.released {
		l.rel.release(old.mf, old.released, size) // sealed: read through the file from now on
		old.released = size
	}
	return nil
}

// age is how old the segment is for segment.ms.
func (s *segment) age(batchTs, now int64) int64 {
	if s.firstTs >= 0 && batchTs >= 0 {
		return batchTs - s.firstTs
	}
	return now - s.created
}

// ensureRoomLocked grows the active segment's file and mapping to hold end bytes, keeping a
// preallocated stretch (disk blocks allocated, so a write into the mapping never meets a
// full disk as SIGBUS) ahead of the write cursor. The stretch grows with what the segment
// holds, from minPreallocateBytes up to PreallocateBytes: a partition that takes little data
// (one of many) does not have megabytes of blocks allocated for it, while a busy one soon
// grows its file in large steps.
func (l *Log) ensureRoomLocked(s *segment, end int64) error {
	mapped := s.mf.Size()
	ahead := min(l.cfg.PreallocateBytes, max(minPreallocateBytes, end))
	if end+ahead/2 <= mapped {
		return nil
	}
	target := min(max(end, mapped)+ahead, s.mf.Max())
	target = min((target+mmfile.PageSize-1)&^(mmfile.PageSize-1), s.mf.Max())
	if target < end {
		return fmt.Errorf("segment %d: %d bytes do not fit its reservation", s.base, end)
	}
	if err := s.mf.Grow(target); err != nil {
		return err
	}
	if behind := end - releaseLagBytes; behind-s.released >= releaseStepBytes {
		l.rel.release(s.mf, s.released, behind)
		s.released = behind
	}
	return nil
}

// minPreallocateBytes is the stretch ahead of the write cursor of a segment that holds little.
const minPreallocateBytes = 256 << 10

// The appender's mapping keeps releaseLagBytes behind the cursor resident and gives the rest
// back (releaser) in steps of releaseStepBytes.
const (
	releaseLagBytes  = 1 << 20
	releaseStepBytes = 2 << 20
)

// indexBatchLocked adds the index entries due for the batch written at pos.
func (l *Log) indexBatchLocked(s *segment, pos, size int64, last Offset, maxTs int64) error {
	rel := uint32(last - s.base)
	if maxTs > s.maxTs {
		s.setMaxTs(maxTs, rel)
	}
	if pos == 0 {
		s.firstTs = maxTs
	}
	s.bytesSinceIndex += size
	if s.bytesSinceIndex < l.cfg.IndexIntervalBytes {
		return nil
	}
	s.bytesSinceIndex = 0
	if err := s.oidx.Append(index.OffsetEntry{RelOffset: rel, Position: uint32(pos)}); err != nil {
		return err
	}
	return s.tidx.MaybeAppend(s.maxTs, s.maxTsRel)
}

// Region is a stretch of a segment file holding whole batches: send it with sendfile(2) from
// File at Pos, or read the same bytes from Data (a read-only view of the mapping). Both stay
// valid until the ReadResult is released.
//
// Recent marks a region that lies wholly within the last RecentBytes of the active segment
// and whose batches this process copied into the mapping (small batches; large ones are
// written with pwritev and their pages never enter the mapping): bytes appended moments ago
// whose pages are resident in the mapping, so a write(2) from Data faults nothing in from
// disk and adds nothing to the process's resident set. It is a hint: memory pressure may
// still have evicted them.
type Region struct {
	File   *os.File
	Pos    int64
	Len    int64
	Data   []byte
	Recent bool
}

// RecentBytes is how far behind an active segment's end a region counts as Recent: the stretch
// the appender keeps mapped (releaseLagBytes).
const RecentBytes = releaseLagBytes

// ReadResult is what Read returns; the caller supplies it and reuses it. Release must be
// called when the regions are no longer needed (after the bytes were sent).
type ReadResult struct {
	Regions     []Region
	Bytes       int64  // sum of the regions' lengths
	FirstOffset Offset // base offset of the first batch returned, -1 if none
	NextOffset  Offset // offset after the last batch returned
	segs        []*segment
}

// Release drops the references that keep the regions' files and mappings alive, and empties
// the result for reuse.
func (r *ReadResult) Release() {
	for i, s := range r.segs {
		s.unref()
		r.segs[i] = nil
	}
	r.segs = r.segs[:0]
	for i := range r.Regions {
		r.Regions[i] = Region{}
	}
	r.Regions = r.Regions[:0]
	r.Bytes = 0
}

// Read returns whole batches starting with the batch that contains offset, up to maxBytes
// in total and only batches whose last offset is below maxOffset (the high watermark, or the
// log end offset for followers). With minOne, the first batch is returned even if it is larger
// than maxBytes, so consumers always make progress. An offset below the log start offset or
// past the log end offset is ErrOffsetOutOfRange. The result must be released.
func (l *Log) Read(offset Offset, maxBytes int64, maxOffset Offset, minOne bool, res *ReadResult) error {
	res.Release()
	res.FirstOffset, res.NextOffset = -1, offset
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if offset < l.logStartOffset.Load() || offset > l.logEndOffset.Load() {
		return ErrOffsetOutOfRange
	}
	if offset >= maxOffset {
		return nil
	}
	i := l.segmentIndexLocked(offset)
	var h BatchHeader
	for ; i < len(l.segments); i++ {
		s := l.segments[i]
		if s.next.Load() <= offset && !s.active {
			continue
		}
		if err := s.load(); err != nil {
			return err
		}
		b := s.bytes()
		pos, ok := s.find(b, offset, &h)
		if !ok {
			continue
		}
		start, end := pos, pos
		for headerAt(b, end, &h) && h.LastOffset() < maxOffset {
			n := int64(h.Size())
			if res.Bytes+(end-start)+n > maxBytes && !(minOne && res.Bytes == 0 && end == start) {
				break
			}
			if res.FirstOffset < 0 {
				res.FirstOffset = h.BaseOffset
			}
			res.NextOffset = h.LastOffset() + 1
			end += n
		}
		if end > start {
			s.ref()
			res.segs = append(res.segs, s)
			recent := s.active && start >= max(int64(len(b))-RecentBytes, s.copiedFrom())
			res.Regions = append(res.Regions, Region{File: s.mf.File(), Pos: start, Len: end - start, Data: b[start:end], Recent: recent})
			res.Bytes += end - start
		}
		if end < int64(len(b)) || res.Bytes >= maxBytes {
			break // stopped by the limit or the high watermark, not by the segment's end
		}
		offset = res.NextOffset
	}
	return nil
}

// segmentIndexLocked returns the index of the segment that holds offset: the last one whose
// base is <= offset (0 when offset is below all).
func (l *Log) segmentIndexLocked(offset Offset) int {
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].base > offset })
	return max(i-1, 0)
}

// Sync writes everything appended so far to disk, aborted transaction index entries included,
// and advances the recovery point.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	leo := l.logEndOffset.Load()
	l.unflushedMsgs, l.firstUnflush = 0, 0
	l.appendMu.Unlock()
	txn := l.txnDirty.Swap(false)
	rp := l.recoveryPoint.Load()
	if leo <= rp && !txn {
		return nil
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	var segs []*segment
	for _, s := range l.segments {
		if s.next.Load() > rp || s.active || s.txn.unsynced.Load() {
			s.ref()
			segs = append(segs, s)
		}
	}
	l.mu.RUnlock()
	var err error
	for _, s := range segs {
		if err == nil {
			err = s.sync()
		}
		s.unref()
	}
	if err != nil {
		if txn {
			l.txnDirty.Store(true)
		}
		return err
	}
	if l.dirDirty.Swap(false) {
		// New segment files must be in the folder on disk before the recovery point covers them.
		if err := syncDir(l.dir); err != nil {
			l.dirDirty.Store(true)
			return err
		}
	}
	for {
		cur := l.recoveryPoint.Load()
		if leo <= cur || l.recoveryPoint.CompareAndSwap(cur, leo) {
			return nil
		}
	}
}

// FlushDue reports whether flush.ms has passed since the oldest unflushed append.
func (l *Log) FlushDue(nowMs int64) bool {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.firstUnflush != 0 && nowMs-l.firstUnflush >= l.cfg.FlushMs
}

// sync flushes a segment's files. A segment never loaded by this process has nothing to flush
// but its aborted transaction index.
func (s *segment) sync() error {
	if err := s.txn.sync(segmentName(s.dir, s.base, txnIndexSuffix)); err != nil {
		return err
	}
	if !s.loaded.Load() {
		return nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.closed.Load() || s.mf == nil {
		return nil
	}
	if err := s.mf.Sync(); err != nil {
		return err
	}
	if err := s.oidx.Sync(); err != nil {
		return err
	}
	return s.tidx.Sync()
}

// Close syncs the log, trims the active segment's files to their data and closes it.
// Readers holding results keep their files open until they release them.
func (l *Log) Close() error {
	err := l.Sync()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.rel.stop()
	for _, s := range l.segments {
		if cerr := s.closeKeep(); err == nil {
			err = cerr
		}
	}
	l.segments = nil
	return err
}

// Delete closes the log and removes its folder (topic deletion).
func (l *Log) Delete() error {
	l.appendMu.Lock()
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		l.rel.stop()
		for _, s := range l.segments {
			s.markDeleted()
		}
		l.segments = nil
	}
	l.mu.Unlock()
	l.appendMu.Unlock()
	return os.RemoveAll(l.dir)
}

// syncDir fsyncs a folder, making the creation and removal of its files durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
