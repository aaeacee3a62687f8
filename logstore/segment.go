package logstore

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/spate-broker/spate/index"
	"github.com/spate-broker/spate/internal/mmfile"
)

// File names: <20-digit base offset>.log/.index/.timeindex/.txnindex, as Kafka names them
// (.txnindex: txnindex.go).
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

func segmentName(dir string, base Offset, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// segment is one file of the log plus its two indexes and its aborted transactions.
//
// A segment is active (the last one: mapped read-write inside a reservation of segment.bytes,
// indexes writable) or sealed (file trimmed to its data, mapped read-only on first use,
// indexes loaded on first use). A reader takes a reference (ref) while it uses the segment's
// file or views of its mapping; a deleted segment's files are unlinked at once and its
// mapping and file descriptor are released when the last reference is dropped.
type segment struct {
	base Offset
	dir  string
	cfg  *Config // the owning log's config; read under the log's locks

	loadMu sync.Mutex // guards lazy loading of a sealed segment (mf, oidx, tidx)
	loaded atomic.Bool
	mf     *mmfile.File
	// released: the mapping below this position was given back to the kernel
	// (releaser); guarded by the log's appendMu.
	released int64
	oidx     *index.OffsetIndex
	tidx     *index.TimeIndex

	// size is the number of valid bytes. Invariant: [0, size) holds whole, valid batches;
	// it is stored only after those bytes are written, so readers never see a partial batch.
	size atomic.Int64
	// next is the offset after the segment's last record (== the log end offset for the
	// active segment). Published after size.
	next atomic.Int64

	active bool // guarded by Log.mu (write) and Log.appendMu

	// copied is copiedFrom+1, where the batches in [copiedFrom, size) were all copied into the
	// mapping by this process (writeBatchLocked), so their pages are resident in it; 0 when
	// none is known to be (a segment opened from disk). Written under Log.appendMu.
	copied atomic.Int64

	txn txnIndex // aborted transactions whose marker is in the segment (txnindex.go)

	// Writer state of the active segment, guarded by Log.appendMu.
	bytesSinceIndex int64
	maxTs           int64        // largest batch max timestamp in the segment, -1 if none
	maxTsPub        atomic.Int64 // maxTs, published for readers (time lookups, retention)
	maxTsRel        uint32       // relative last offset of the first batch with maxTs
	created         int64        // wall ms when the segment was created or opened
	firstTs         int64        // max timestamp of the first batch, -1 if none (segment.ms rolls on it)

	refs    atomic.Int32
	deleted atomic.Bool
	closed  atomic.Bool
	retired []*mmfile.File // older mappings kept until the last reference is dropped
}

// ref takes a reference; the caller holds Log.mu (read or write), so a deleted segment is
// never referenced anew.
func (s *segment) ref() { s.refs.Add(1) }

// unref drops a reference, closing a deleted segment when it was the last.
func (s *segment) unref() {
	if s.refs.Add(-1) == 0 && s.deleted.Load() {
		s.release()
	}
}

// release unmaps and closes everything, once.
func (s *segment) release() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.mf != nil {
		s.mf.Close()
	}
	for _, m := range s.retired {
		m.Close()
	}
	s.retired = nil
	if s.oidx != nil {
		s.oidx.Close()
	}
	if s.tidx != nil {
		s.tidx.Close()
	}
}

// markDeleted unlinks the files and releases the segment now or at the last unref. The
// caller holds Log.mu for writing and has removed s from the segment list.
func (s *segment) markDeleted() {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		os.Remove(segmentName(s.dir, s.base, suf))
	}
	s.deleted.Store(true)
	if s.refs.Load() == 0 {
		s.release()
	}
}

// closeKeep closes a segment of a log that is being closed, keeping its files. Writable files
// are trimmed to their data.
func (s *segment) closeKeep() error {
	s.deleted.Store(true) // "no longer in a log": release at the last unref
	var err error
	if s.active && s.mf != nil {
		err = s.mf.Shrink(s.size.Load())
	}
	if s.refs.Load() == 0 {
		s.release()
	}
	return err
}

// createSegment makes a new, empty active segment at base.
func createSegment(dir string, base Offset, cfg *Config, now int64) (*segment, error) {
	s := &segment{base: base, dir: dir, cfg: cfg, active: true, maxTs: -1, created: now, firstTs: -1}
	s.maxTsPub.Store(-1)
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		os.Remove(segmentName(dir, base, suf))
	}
	if err := s.openWritable(); err != nil {
		return nil, err
	}
	s.next.Store(base)
	return s, nil
}

// openWritable maps the log read-write inside a reservation of segment.bytes and opens the
// indexes writable.
func (s *segment) openWritable() error {
	mf, err := mmfile.Open(segmentName(s.dir, s.base, logSuffix), max(s.cfg.SegmentBytes, 1<<20), true, true)
	if err != nil {
		return fmt.Errorf("open segment %d: %w", s.base, err)
	}
	oidx, err := index.OpenOffsetIndex(segmentName(s.dir, s.base, indexSuffix), s.cfg.SegmentIndexBytes, true)
	if err != nil {
		mf.Close()
		return fmt.Errorf("open segment %d: %w", s.base, err)
	}
	tidx, err := index.OpenTimeIndex(segmentName(s.dir, s.base, timeIndexSuffix), s.cfg.SegmentIndexBytes, true)
	if err != nil {
		mf.Close()
		oidx.Close()
		return fmt.Errorf("open segment %d: %w", s.base, err)
	}
	s.mf, s.oidx, s.tidx = mf, oidx, tidx
	s.loaded.Store(true)
	return nil
}

// openSealed registers a sealed segment without touching its files beyond a stat.
func openSealed(dir string, base Offset, cfg *Config, size int64, next Offset) *segment {
	s := &segment{base: base, dir: dir, cfg: cfg, maxTs: -1}
	s.maxTsPub.Store(-1)
	s.size.Store(size)
	s.next.Store(next)
	return s
}

// load maps a sealed segment and its indexes on first use, rebuilding an index that fails
// its check. Safe for concurrent callers.
func (s *segment) load() error {
	if s.loaded.Load() {
		return nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loaded.Load() {
		return nil
	}
	if s.closed.Load() {
		return ErrClosed
	}
	mf, err := mmfile.Open(segmentName(s.dir, s.base, logSuffix), 0, false, false)
	if err != nil {
		return fmt.Errorf("open segment %d: %w", s.base, err)
	}
	if mf.Size() < s.size.Load() {
		mf.Close()
		return fmt.Errorf("open segment %d: file is %d bytes, expected %d", s.base, mf.Size(), s.size.Load())
	}
	s.mf = mf
	relEnd := uint64(s.next.Load() - s.base)
	oidx, err := index.OpenOffsetIndex(segmentName(s.dir, s.base, indexSuffix), s.cfg.SegmentIndexBytes, false)
	if err == nil {
		if err = oidx.Check(s.size.Load(), relEnd); err != nil {
			oidx.Close()
		}
	}
	tidx, terr := index.OpenTimeIndex(segmentName(s.dir, s.base, timeIndexSuffix), s.cfg.SegmentIndexBytes, false)
	if terr == nil {
		if terr = tidx.Check(relEnd); terr != nil {
			tidx.Close()
		}
	}
	if err != nil || terr != nil {
		if err == nil {
			oidx.Close()
		}
		if terr == nil {
			tidx.Close()
		}
		if oidx, tidx, err = s.rebuildIndexes(); err != nil {
			mf.Close()
			s.mf = nil
			return err
		}
	}
	s.oidx, s.tidx = oidx, tidx
	if e, ok := tidx.Last(); ok {
		s.setMaxTs(e.Timestamp, e.RelOffset)
	}
	s.loaded.Store(true)
	return nil
}

// rebuildIndexes recreates both index files of a sealed segment from its log (headers only).
func (s *segment) rebuildIndexes() (*index.OffsetIndex, *index.TimeIndex, error) {
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		os.Remove(segmentName(s.dir, s.base, suf))
	}
	oidx, err := index.OpenOffsetIndex(segmentName(s.dir, s.base, indexSuffix), s.cfg.SegmentIndexBytes, true)
	if err != nil {
		return nil, nil, err
	}
	tidx, err := index.OpenTimeIndex(segmentName(s.dir, s.base, timeIndexSuffix), s.cfg.SegmentIndexBytes, true)
	if err != nil {
		oidx.Close()
		return nil, nil, err
	}
	b := s.bytes()
	var h BatchHeader
	var since int64
	maxTs, maxRel := int64(-1), uint32(0)
	for pos := int64(0); pos+BatchHeaderSize <= int64(len(b)); {
		ParseBatchHeader(b[pos:], &h)
		size := int64(h.Size())
		if size < BatchHeaderSize || pos+size > int64(len(b)) {
			break
		}
		rel := uint32(h.LastOffset() - s.base)
		if h.MaxTimestamp > maxTs {
			maxTs, maxRel = h.MaxTimestamp, rel
		}
		since += size
		if since >= s.cfg.IndexIntervalBytes {
			if oidx.Append(index.OffsetEntry{RelOffset: rel, Position: uint32(pos)}) == nil {
				tidx.MaybeAppend(maxTs, maxRel)
			}
			since = 0
		}
		pos += size
	}
	tidx.MaybeAppend(maxTs, maxRel)
	oidx.Seal()
	tidx.Seal()
	return oidx, tidx, nil
}

// bytes returns a view of the valid data. The caller holds a reference (or the log's locks)
// and has called load.
//
// size is loaded before the mapping's length: the appender grows the mapping before it
// publishes a larger size, so a size read first is always within the mapping read after.
// (Read the other way round, a concurrent append could publish a size past the mapping
// length already read.)
func (s *segment) bytes() []byte {
	n := s.size.Load()
	return s.mf.Bytes()[:n]
}

// headerAt reads the batch header at pos if a whole, plausible batch lies in b there.
func headerAt(b []byte, pos int64, h *BatchHeader) bool {
	if pos < 0 || pos+BatchHeaderSize > int64(len(b)) {
		return false
	}
	ParseBatchHeader(b[pos:], h)
	size := int64(h.BatchLength) + LogOverhead
	return size >= BatchHeaderSize && pos+size <= int64(len(b))
}

// find returns the position of the first batch whose last offset is >= offset, and its
// header; ok is false when there is none in the segment. It starts at the offset index's hint
// and scans batch headers.
func (s *segment) find(b []byte, offset Offset, h *BatchHeader) (pos int64, ok bool) {
	if offset > s.base {
		rel := offset - s.base
		if rel > math.MaxUint32 {
			rel = math.MaxUint32
		}
		if e, found := s.oidx.Lookup(uint32(rel)); found && int64(e.Position) < int64(len(b)) {
			pos = int64(e.Position)
		}
	}
	for headerAt(b, pos, h) {
		if h.LastOffset() >= offset {
			return pos, true
		}
		pos += int64(h.Size())
	}
	return pos, false
}

// seal turns the active segment into a sealed one: trims the log file and the indexes to
// their data and records the final time index entry.
func (s *segment) seal() error {
	if !s.active {
		return nil
	}
	s.active = false
	if err := s.tidx.MaybeAppend(s.maxTs, s.maxTsRel); err != nil && !errors.Is(err, index.ErrFull) {
		return err
	}
	if err := s.oidx.Seal(); err != nil {
		return err
	}
	if err := s.tidx.Seal(); err != nil {
		return err
	}
	size := s.size.Load()
	for _, m := range s.retired {
		size = max(size, m.Size()) // an older mapping may still be read up to its length
	}
	return s.mf.Shrink(size)
}

// reactivate makes a sealed segment active again (truncation into it). An existing read-only
// mapping is retired, not unmapped: readers may hold views of it.
func (s *segment) reactivate() error {
	if s.active {
		return nil
	}
	if err := s.load(); err != nil {
		return err
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	old, oidx, tidx := s.mf, s.oidx, s.tidx
	s.loaded.Store(false)
	if err := s.openWritable(); err != nil {
		s.mf, s.oidx, s.tidx = old, oidx, tidx
		s.loaded.Store(true)
		return err
	}
	if s.refs.Load() == 0 {
		old.Close() // no reader holds a view: the caller holds Log.mu, so none can start
	} else {
		s.retired = append(s.retired, old)
	}
	// The old index mappings are not handed out to readers beyond a lookup under Log.mu,
	// which the truncating caller holds for writing.
	oidx.Close()
	tidx.Close()
	s.active = true
	return nil
}

// scanState recomputes the writer state (max timestamp) by scanning all headers.
func (s *segment) scanState(now int64) {
	b := s.bytes()
	var h BatchHeader
	s.setMaxTs(-1, 0)
	s.created, s.firstTs = now, -1
	for pos := int64(0); headerAt(b, pos, &h); pos += int64(h.Size()) {
		if pos == 0 {
			s.firstTs = h.MaxTimestamp
		}
		if h.MaxTimestamp > s.maxTs {
			s.setMaxTs(h.MaxTimestamp, uint32(h.LastOffset()-s.base))
		}
	}
	s.bytesSinceIndex = 0
}

// largestTimestamp returns the segment's largest batch timestamp (for retention.ms), loading a
// sealed segment's time index when needed; -1 when unknown.
func (s *segment) largestTimestamp() int64 {
	if err := s.load(); err != nil {
		return -1
	}
	return s.maxTsPub.Load()
}

// setMaxTs sets the segment's max timestamp (writer: appendMu, or loadMu for a sealed one).
func (s *segment) setMaxTs(ts int64, rel uint32) {
	s.maxTs, s.maxTsRel = ts, rel
	s.maxTsPub.Store(ts)
}

// copiedFrom returns the position from which every batch of the segment was copied into the
// mapping by this process (math.MaxInt64: none).
func (s *segment) copiedFrom() int64 {
	if v := s.copied.Load(); v > 0 {
		return v - 1
	}
	return math.MaxInt64
}
