package logstore

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spate-broker/spate/index"
)

// Open opens (creating if needed) the log in dir and recovers it:
//
//  1. Files are listed; index files without a log and leftovers are removed. Sealed segments
//     are registered from their names and sizes only: no file is read or mapped up front, so
//     a log of thousands of segments opens quickly. Their indexes are checked on first use
//     and rebuilt from the log if the check fails.
//  2. The segments from the one holding the recovery point onwards are scanned: batch headers
//     are skipped (not checksummed) up to the recovery point, then every batch is validated
//     (header, CRC, increasing offsets). At the first invalid byte the log is truncated there
//     and any later segment is deleted; the scanned part's index entries are rebuilt.
//  3. The last segment becomes the active one.
//  4. The aborted transaction indexes (txnindex.go) are read, each cut after its last valid
//     entry below the recovered log end offset.
func Open(dir string, cfg Config, opts OpenOptions) (*Log, error) {
	cfg = cfg.normalized()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A compaction swap interrupted by a crash is finished or rolled back (cleaner.go).
	if err := finishCleanerFiles(dir); err != nil {
		return nil, fmt.Errorf("recover log %s: %w", dir, err)
	}
	l := &Log{dir: dir, cfg: cfg, rel: newReleaser()}
	bases, txnFiles, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	now := cfg.now()
	if len(bases) == 0 {
		s, err := createSegment(dir, max(opts.LogStartOffset, 0), &l.cfg, now)
		if err != nil {
			return nil, err
		}
		l.segments = []*segment{s}
		l.dirDirty.Store(true)
		l.logStartOffset.Store(s.base)
		l.logEndOffset.Store(s.base)
		l.recoveryPoint.Store(s.base)
		return l, nil
	}
	for i, base := range bases {
		st, err := os.Stat(segmentName(dir, base, logSuffix))
		if err != nil {
			return nil, err
		}
		next := base
		if i+1 < len(bases) {
			next = bases[i+1]
		}
		l.segments = append(l.segments, openSealed(dir, base, &l.cfg, st.Size(), next))
	}
	if err := l.recover(opts.RecoveryPoint, now); err != nil {
		for _, s := range l.segments {
			s.release()
		}
		return nil, fmt.Errorf("recover log %s: %w", dir, err)
	}
	for _, s := range l.segments {
		if !txnFiles[s.base] {
			continue
		}
		if err := l.loadTxnIndex(s); err != nil {
			for _, t := range l.segments {
				t.release()
			}
			return nil, fmt.Errorf("recover log %s: %w", dir, err)
		}
	}
	leo := l.active().next.Load()
	l.logEndOffset.Store(leo)
	l.logStartOffset.Store(min(max(opts.LogStartOffset, l.segments[0].base), leo))
	// Only what was synced before is known to be on disk: the recovered tail is not, until
	// the next Sync (Kafka's LogLoader keeps the checkpointed point for the same reason).
	l.recoveryPoint.Store(min(max(opts.RecoveryPoint, l.segments[0].base), leo))
	return l, nil
}

// listSegments returns the base offsets of the .log files, sorted, and those of the segments
// that have an aborted transaction index, after removing orphaned index files and files left by
// an interrupted deletion.
func listSegments(dir string) (bases []Offset, txnFiles map[Offset]bool, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	logs := map[Offset]bool{}
	txnFiles = map[Offset]bool{}
	for _, e := range ents {
		name := e.Name()
		if base, ok := parseSegmentName(name, logSuffix); ok {
			logs[base] = true
			bases = append(bases, base)
		}
	}
	for _, e := range ents {
		name := e.Name()
		for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
			if base, ok := parseSegmentName(name, suf); ok && !logs[base] {
				os.Remove(dir + "/" + name)
			} else if ok && suf == txnIndexSuffix {
				txnFiles[base] = true
			}
		}
		if strings.HasSuffix(name, ".deleted") {
			os.Remove(dir + "/" + name)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, txnFiles, nil
}

func parseSegmentName(name, suffix string) (Offset, bool) {
	if len(name) != 20+len(suffix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	v, err := strconv.ParseInt(name[:20], 10, 64)
	return v, err == nil && v >= 0
}

// recover scans the segments from the one holding rp and makes the last segment active.
func (l *Log) recover(rp Offset, now int64) error {
	first := 0
	for i, s := range l.segments {
		if s.base <= rp {
			first = i
		}
	}
	for i := first; i < len(l.segments); i++ {
		s := l.segments[i]
		last := i == len(l.segments)-1
		if err := s.reactivateForRecovery(); err != nil {
			return err
		}
		skipTo := Offset(-1)
		if i == first {
			skipTo = rp
		}
		present := s.size.Load()
		valid, next := s.recoverScan(skipTo)
		// A sealed segment may end in zeros (kept while an old mapping was in use).
		tailOK := valid == present ||
			(!last && next == l.segments[i+1].base && isZero(s.mf.Bytes()[valid:min(present, s.mf.Size())]))
		if !last && tailOK && next <= l.segments[i+1].base {
			if valid != present {
				if err := s.truncateFilesTo(valid); err != nil {
					return err
				}
			}
			s.next.Store(l.segments[i+1].base)
			if err := s.seal(); err != nil {
				return err
			}
			continue
		}
		// The end of the log, or a torn or corrupt tail: cut here and drop every later segment.
		for _, t := range l.segments[i+1:] {
			t.markDeleted()
		}
		l.segments = l.segments[:i+1]
		s.next.Store(next)
		if err := s.truncateFilesTo(valid); err != nil {
			return err
		}
		break
	}
	l.active().scanState(now)
	return nil
}

// reactivateForRecovery opens a segment read-write, as the active segment, for scanning.
func (s *segment) reactivateForRecovery() error {
	if s.loaded.Load() {
		return s.reactivate()
	}
	if err := s.openWritable(); err != nil {
		return err
	}
	s.active = true
	return nil
}

// recoverScan validates the segment's batches. Up to skipTo only headers are followed
// (that part was synced before the crash). It returns the size of the valid prefix and the
// offset after its last batch, rebuilds the index entries of the validated part and sets the
// segment's max timestamp.
func (s *segment) recoverScan(skipTo Offset) (valid int64, next Offset) {
	b := s.mf.Bytes()[:min(s.size.Load(), s.mf.Size())]
	var h BatchHeader
	pos := int64(0)
	next = s.base
	maxTs, maxRel := int64(-1), uint32(0)
	// Follow headers to the recovery point.
	if skipTo > s.base {
		for headerAt(b, pos, &h) && h.LastOffsetDelta >= 0 && h.BaseOffset >= next && h.LastOffset() < skipTo {
			if h.MaxTimestamp > maxTs {
				maxTs, maxRel = h.MaxTimestamp, uint32(h.LastOffset()-s.base)
			}
			pos += int64(h.Size())
			next = h.LastOffset() + 1
		}
	}
	// The index entries of the followed part are kept; the rest are rebuilt as validated.
	s.oidx.TruncateToPosition(uint32(min(pos, 1<<32-1)))
	s.tidx.TruncateToOffset(uint32(max(next-s.base, 0)))
	var since int64
	for pos < int64(len(b)) {
		if CheckBatch(b[pos:], 0, &h) != nil || !offsetsFit(&h, next, s.base) {
			break
		}
		size := int64(h.Size())
		rel := uint32(h.LastOffset() - s.base)
		if h.MaxTimestamp > maxTs {
			maxTs, maxRel = h.MaxTimestamp, rel
		}
		since += size
		if since >= s.cfg.IndexIntervalBytes {
			since = 0
			if s.oidx.Append(index.OffsetEntry{RelOffset: rel, Position: uint32(pos)}) != nil ||
				s.tidx.MaybeAppend(maxTs, maxRel) != nil {
				break // an index is full: the rest cannot be indexed; treat it as a bad tail
			}
		}
		pos += size
		next = h.LastOffset() + 1
	}
	s.setMaxTs(maxTs, maxRel)
	return pos, next
}

// truncateFilesTo makes size the segment's end: bytes past it are zeroed and that is made
// durable, so a later recovery cannot find stale batches there. Zeros are left alone.
func (s *segment) truncateFilesTo(size int64) error {
	b := s.mf.Bytes()
	s.size.Store(size)
	if size >= int64(len(b)) || isZero(b[size:]) {
		return nil
	}
	clear(b[size:])
	if err := s.mf.Sync(); err != nil {
		return err
	}
	if err := s.oidx.Sync(); err != nil {
		return err
	}
	return s.tidx.Sync()
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// offsetsFit reports whether a stored batch's offsets are sane after next (the offset after the
// previous batch) in a segment based at base: not below next, no overflow, and relative
// offsets that fit the index's u32.
func offsetsFit(h *BatchHeader, next, base Offset) bool {
	return h.BaseOffset >= next && h.LastOffsetDelta >= 0 &&
		h.BaseOffset <= math.MaxInt64-1-int64(h.LastOffsetDelta) &&
		h.LastOffset()-base <= math.MaxUint32
}
