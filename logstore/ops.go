package logstore

import (
	"fmt"
	"math"
)

// TruncateTo removes every batch whose last offset is >= offset (a follower after a leader
// change), and the aborted transactions whose marker went with them. When offset falls inside
// a batch, that whole batch goes and the log end offset becomes its base. The cut is made
// durable before TruncateTo returns. Truncating below the log start offset empties the log and
// restarts it at offset.
//
// Readers bounded below offset are unaffected. A read result holding bytes at or past offset
// when the truncation runs may see them turn to zeros (never an unmapped page): in Kafka only
// uncommitted data, above every consumer's high watermark, is ever truncated.
func (l *Log) TruncateTo(offset Offset) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if offset >= l.logEndOffset.Load() {
		return nil
	}
	if offset < l.logStartOffset.Load() {
		return l.truncateFullyLocked(offset)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	// Drop whole segments at or past offset, keeping the first.
	i := l.segmentIndexLocked(offset)
	for _, s := range l.segments[i+1:] {
		s.markDeleted()
	}
	l.segments = l.segments[:i+1]
	s := l.segments[i]
	if err := s.reactivate(); err != nil {
		return l.fail(err)
	}
	var h BatchHeader
	pos, ok := s.find(s.bytes(), offset, &h)
	if !ok {
		pos = s.size.Load()
	}
	next := offset
	if ok && h.BaseOffset < offset {
		next = h.BaseOffset
	}
	if pos == s.size.Load() {
		next = s.next.Load()
	}
	s.oidx.TruncateToPosition(uint32(pos))
	s.tidx.TruncateToOffset(uint32(max(next-s.base, 0)))
	if err := s.truncateFilesTo(pos); err != nil {
		return l.fail(err)
	}
	// Entries whose abort marker was cut go too (next <= offset when offset was inside a batch).
	if err := l.truncateTxnsLocked(l.segments[i:], min(offset, next)); err != nil {
		return l.fail(err)
	}
	s.next.Store(next)
	s.scanState(l.cfg.now())
	l.logEndOffset.Store(next)
	l.clampOffsetsLocked(next)
	return nil
}

// TruncateFullyAndStartAt deletes every segment, with its aborted transactions, and starts an
// empty log at offset (a follower whose fetch offset is out of the leader's range).
func (l *Log) TruncateFullyAndStartAt(offset Offset) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.truncateFullyLocked(offset)
}

func (l *Log) truncateFullyLocked(offset Offset) error {
	if offset < 0 {
		return fmt.Errorf("truncate to negative offset %d", offset)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	for _, s := range l.segments {
		s.markDeleted()
	}
	s, err := createSegment(l.dir, offset, &l.cfg, l.cfg.now())
	l.dirDirty.Store(true)
	if err != nil {
		l.segments = nil
		l.closed = true
		return l.fail(err)
	}
	l.segments = []*segment{s}
	l.logEndOffset.Store(offset)
	l.logStartOffset.Store(offset)
	l.recoveryPoint.Store(offset)
	return nil
}

func (l *Log) clampOffsetsLocked(leo Offset) {
	if l.recoveryPoint.Load() > leo {
		l.recoveryPoint.Store(leo)
	}
	if l.logStartOffset.Load() > leo {
		l.logStartOffset.Store(leo)
	}
}

// DeleteRecordsBefore moves the log start offset forward to offset (DeleteRecords; the
// broker checks it against the high watermark) and deletes the segments wholly below it. An
// offset past the log end offset is ErrOffsetOutOfRange; one below the current start is a
// no-op. It returns the new log start offset.
func (l *Log) DeleteRecordsBefore(offset Offset) (Offset, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if offset > l.logEndOffset.Load() || offset < 0 {
		return l.logStartOffset.Load(), ErrOffsetOutOfRange
	}
	if offset > l.logStartOffset.Load() {
		l.logStartOffset.Store(offset)
	}
	l.deleteBelowStartLocked()
	return l.logStartOffset.Load(), nil
}

// deleteBelowStartLocked deletes sealed segments whose records are all below the log start
// offset.
func (l *Log) deleteBelowStartLocked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := l.logStartOffset.Load()
	n := 0
	for len(l.segments) > 1 && l.segments[1].base <= start {
		l.segments[0].markDeleted()
		l.segments = l.segments[1:]
		n++
	}
	return n
}

// ApplyRetention deletes the oldest segments beyond retention.bytes and those whose newest
// record is older than retention.ms, and moves the log start offset to the first remaining
// record. The active segment is rolled first when it is expired by time and holds data, so an
// idle, expired partition empties as in Kafka. It returns how many segments were deleted.
func (l *Log) ApplyRetention() (int, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	now := l.cfg.now()
	deleted := 0
	for {
		l.mu.RLock()
		closed := l.closed
		var victim *segment
		if !closed && len(l.segments) > 0 {
			total := int64(0)
			for _, s := range l.segments {
				total += s.size.Load()
			}
			s := l.segments[0]
			bySize := l.cfg.RetentionBytes >= 0 && total-s.size.Load() >= l.cfg.RetentionBytes && s.size.Load() > 0
			ts := s.largestTimestamp()
			byTime := l.cfg.RetentionMs >= 0 && ts >= 0 && now-ts > l.cfg.RetentionMs
			if bySize || byTime {
				victim = s
			}
		}
		l.mu.RUnlock()
		if closed {
			return deleted, ErrClosed
		}
		if victim == nil {
			return deleted, nil
		}
		if victim.active {
			if victim.size.Load() == 0 {
				return deleted, nil
			}
			if err := l.rollLocked(l.logEndOffset.Load(), now); err != nil {
				return deleted, l.fail(err)
			}
		}
		l.mu.Lock()
		if l.segments[0] == victim && len(l.segments) > 1 {
			victim.markDeleted()
			l.segments = l.segments[1:]
			deleted++
			if b := l.segments[0].base; b > l.logStartOffset.Load() {
				l.logStartOffset.Store(b)
			}
		}
		l.mu.Unlock()
	}
}

// TimestampOffset is the answer of a lookup by time.
type TimestampOffset struct {
	Offset    Offset
	Timestamp int64
}

// OffsetForTimestamp returns the first record at or after the log start offset whose
// timestamp is >= ts (ListOffsets by timestamp); found is false when there is none.
func (l *Log) OffsetForTimestamp(ts int64) (TimestampOffset, bool, error) {
	segs, err := l.refSegments()
	if err != nil {
		return TimestampOffset{}, false, err
	}
	defer unrefAll(segs)
	start := l.logStartOffset.Load()
	var h BatchHeader
	for _, s := range segs {
		if s.largestTimestamp() < ts || s.next.Load() <= start {
			continue
		}
		b := s.bytes()
		pos := int64(0)
		if e, ok := s.tidx.Lookup(ts); ok {
			if oe, ok := s.oidx.Lookup(e.RelOffset); ok {
				pos = int64(oe.Position)
			}
		}
		for ; headerAt(b, pos, &h); pos += int64(h.Size()) {
			if h.MaxTimestamp < ts || h.LastOffset() < start {
				continue
			}
			if r, ok := firstRecordAtOrAfter(b[pos:pos+int64(h.Size())], &h, ts, start); ok {
				return r, true, nil
			}
		}
	}
	return TimestampOffset{}, false, nil
}

// MaxTimestamp returns the first record at or after the log start offset carrying the
// largest timestamp (ListOffsets with timestamp -3, KIP-734); found is false for an empty log.
func (l *Log) MaxTimestamp() (TimestampOffset, bool, error) {
	segs, err := l.refSegments()
	if err != nil {
		return TimestampOffset{}, false, err
	}
	defer unrefAll(segs)
	start := l.logStartOffset.Load()
	best, found := TimestampOffset{Timestamp: math.MinInt64}, false
	var h BatchHeader
	for _, s := range segs {
		if s.next.Load() <= start || (s.base >= start && s.largestTimestamp() <= best.Timestamp) {
			continue
		}
		b := s.bytes()
		for pos := int64(0); headerAt(b, pos, &h); pos += int64(h.Size()) {
			if h.LastOffset() < start || h.MaxTimestamp <= best.Timestamp {
				continue
			}
			forEachRecord(b[pos:pos+int64(h.Size())], &h, func(off Offset, ts int64) bool {
				if off >= start && ts > best.Timestamp {
					best, found = TimestampOffset{Offset: off, Timestamp: ts}, true
				}
				return true
			})
		}
	}
	return best, found, nil
}

// refSegments references and loads every segment, in order.
func (l *Log) refSegments() ([]*segment, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	segs := make([]*segment, len(l.segments))
	for i, s := range l.segments {
		s.ref()
		segs[i] = s
	}
	for _, s := range segs {
		if err := s.load(); err != nil {
			unrefAll(segs)
			return nil, err
		}
	}
	return segs, nil
}

func unrefAll(segs []*segment) {
	for _, s := range segs {
		s.unref()
	}
}
