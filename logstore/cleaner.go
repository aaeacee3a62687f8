package logstore

// Log compaction: Kafka's log cleaner, for logs whose cleanup.policy includes "compact"
// (Config.Compacted). A pass keeps, for every key, the record with the latest offset, and
// removes tombstones (records with a null value) once their delete horizon has passed.
//
// The parts of a log, as a pass sees them:
//
//	 log start          first dirty          first uncleanable         active segment
//	 |  clean (deduped) |  dirty (appended   |  too new (min.compaction |  never cleaned
//	 |  by earlier      |  since the last    |  .lag.ms) or at/past the |
//	 |  passes)         |  pass)             |  cleanable limit: sealed,|
//	 |                  |                    |  but left alone          |
//
//   - The first dirty offset comes from the log's checkpoint file (below); the first
//     uncleanable offset is the lowest of the active segment's base, the base of the first
//     dirty segment holding a record newer than min.compaction.lag.ms, and the base of the
//     segment holding the cleanable limit (SetCleanableLimit: the partition owner's last stable
//     offset, so that no segment holding or following records of an open transaction, or
//     records a follower could still truncate, is cleaned — Kafka cleans only below it). A
//     first dirty offset past the first uncleanable one (a truncation made the segment holding
//     it active again, or it is held back now) is lowered to it: a pass never ends past what it
//     may clean, so every segment below its end was cleaned by it.
//   - A pass runs when dirty bytes / (clean + dirty bytes) >= min.cleanable.dirty.ratio
//     (counted in whole sealed segments), when the oldest dirty record is older than
//     max.compaction.lag.ms, when a delete horizon recorded by the last pass has passed, or when
//     forced. It first syncs the log: a record supersedes another only once it is on disk.
//   - It maps every key of the dirty part to its latest offset (offsetMap: 16-byte digests in
//     a table bounded by CleanerBufferBytes; when the table fills, the pass maps only the
//     records before that point, and the rest waits for the next pass).
//   - It then rewrites each sealed segment from the log start up to the end of the mapped part,
//     in order, one at a time. A record survives unless its key maps to a later offset, it has
//     no key (such records cannot be appended to a compacted log; they remain from before the
//     policy changed), or it is a tombstone whose batch's delete horizon has passed. Records
//     past the mapped part are kept. Control batches (transaction markers) are kept as they are.
//   - Records of aborted transactions (KIP-98) are removed and never enter the key map, so they
//     never supersede a record: a transactional data batch is aborted when an entry of the log's
//     aborted transaction index (txnindex.go, as it was when the pass was planned) has its
//     producer id and FirstOffset <= the batch's base offset <= LastOffset. Such a batch is
//     dropped whole, wherever it lies in a cleaned segment, under the same rule as below for a
//     batch that loses every record. Records of committed transactions are ordinary records.
//     The index entries stay (a cleaned segment keeps its .txnindex as it is).
//   - A batch whose records all survive is copied byte for byte. A batch that loses some is
//     re-encoded (appendFilteredBatch: offsets, sequences and timestamps kept). A batch that
//     loses all is dropped, except (Kafka's rule) the last batch of an idempotent producer,
//     kept as an empty batch so that the producer's last sequence survives a restart, and the
//     last batch of the log's first segment, kept as an empty batch so the segment is never
//     empty (the log start offset, retention and time lookups keep their meaning); the same
//     for the last segment the key map was built from, which the pass watches for truncation.
//   - Tombstones are kept for delete.retention.ms after their batch was first cleaned
//     (KIP-534): a batch whose surviving records include a tombstone is stamped with the delete
//     horizon now + delete.retention.ms (AttrDeleteHorizon, BaseTimestamp), and a later pass
//     removes its tombstones once the horizon has passed.
//   - Offsets after cleaning increase with gaps; a read of an offset that was cleaned away
//     returns the next surviving batch. The log start offset, log end offset and recovery
//     point do not change; a segment left with no batch is deleted (never the first).
//   - logstore knows no high watermark or last stable offset: without a cleanable limit a pass
//     cleans every sealed segment (a transaction still open there is cleaned as if committed).
//
// Swapping a cleaned segment in (crash-safe, as Kafka's replaceSegments, one segment at a
// time so that every step is a single atomic file operation):
//
//	1  write <base>.log.cleaned, .index.cleaned, .timeindex.cleaned; fsync them
//	2  rename the indexes, then the log, to <base>.*.swap
//	3  delete the old segment's <base>.index and .timeindex; fsync the folder
//	4  under the log's locks, check that the segment and the last segment the key map was built
//	   from are unchanged — not deleted, truncated or reactivated — then rename
//	   <base>.log.swap over <base>.log: the commit point — and put the new segment in the list
//	5  fsync the folder; link <base>.index.swap and .timeindex.swap to their final names
//	   unless those exist; remove the .swap names
//
// The segment's <base>.txnindex is not part of the swap: it is the same file before and after
// (entries name offsets, which cleaning keeps), so every crash image has it, and the new
// segment takes over the old one's entries in memory at the commit. A segment left without a
// batch is deleted with its .txnindex: it held no abort marker (control batches are kept), so
// it held no entry the broker wrote.
//
// Recovery (finishCleanerFiles, run by every pass and meant to be run by Open): .cleaned files
// are deleted; a <base>.log.swap means the commit did not happen: the swap is rolled back
// (its files are deleted; the old log is intact and its missing indexes are rebuilt from it);
// an index .swap without a log .swap belongs to a committed swap and is completed. At every
// point Open finds a valid log: the old segment, or the cleaned one, each with its own indexes
// or none. Readers holding the old segment keep reading it: it leaves the list at the commit,
// its files are unlinked, and its mapping lives until the last reference is dropped.
//
// The cleaner's checkpoint, <log folder>/cleaner-offset-checkpoint, written atomically after a
// complete pass:
//
//	0                                   format version
//	1234 1200 1233 3735928559 5 -1      first dirty offset; base offset, last offset, CRC and
//	                                    partition leader epoch of the batch just below it; the
//	                                    earliest delete horizon left in the cleaned part (-1: none)
//
// The batch fields let a pass notice that the log below the checkpoint changed since (a
// truncation rewrote it): the checkpoint is then ignored and the whole log counts as dirty.
//
// Passes of one log are serialized; a pass runs beside appends and reads and takes the log's
// locks only to plan and to commit each segment. Appends wait only for a commit (a rename or an
// unlink), never for an fsync. Memory: the key map (at most CleanerBufferBytes, 24 bytes a
// key), one decompressed batch and one re-encoded batch at a time.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spate-broker/spate/internal/mmfile"
)

// CleanerCheckpointFile is the name of a compacted log's cleaner checkpoint, in its folder.
const CleanerCheckpointFile = "cleaner-offset-checkpoint"

// testHookCleaner is called at the steps of a segment swap ("written", "staged",
// "indexes-removed", "committed", "linked", "dropped"); crash tests copy the log folder there.
var testHookCleaner = func(step string) {}

// cleanerBackoff is the most time between two rounds of compaction passes (Kafka's
// log.cleaner.backoff.ms).
const cleanerBackoff = 15 * time.Second

// CompactStats describes a compaction pass.
type CompactStats struct {
	Ran        bool   // a pass ran (false: the log is not compacted or nothing was due)
	Complete   bool   // every segment below EndOffset was cleaned and the checkpoint moved there
	FirstDirty Offset // start of the dirty part the pass mapped
	EndOffset  Offset // end of the mapped part: the next pass's first dirty offset

	SegmentsCleaned   int   // segments replaced by a cleaned copy
	SegmentsDeleted   int   // segments left without a batch and deleted
	BytesRead         int64 // bytes of the segments cleaned
	BytesWritten      int64 // bytes of the cleaned segments written
	RecordsRemoved    int64 // superseded and keyless records removed
	TombstonesRemoved int64 // tombstones removed after their delete horizon
	AbortedRemoved    int64 // records of aborted transactions removed
}

// cleaning serializes the passes of each log (a pass in progress has an entry, closed when
// it ends).
var cleaning = struct {
	sync.Mutex
	busy map[*Log]chan struct{}
}{busy: map[*Log]chan struct{}{}}

func acquireCleaning(ctx context.Context, l *Log) (release func(), err error) {
	for {
		cleaning.Lock()
		ch, busy := cleaning.busy[l]
		if !busy {
			ch = make(chan struct{})
			cleaning.busy[l] = ch
			cleaning.Unlock()
			return func() {
				cleaning.Lock()
				delete(cleaning.busy, l)
				cleaning.Unlock()
				close(ch)
			}, nil
		}
		cleaning.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Compact runs a compaction pass when the log is compacted (Config.Compacted) and cleaning is
// due (see the file comment); force runs it whenever the log is compacted. Passes of one log
// run one at a time; a pass that finds the log changed under it (truncation, retention,
// closing) stops early and leaves the rest to the next pass. It returns ErrClosed for a closed
// log and ctx's error when ctx ends first.
func (l *Log) Compact(ctx context.Context, force bool) (CompactStats, error) {
	var st CompactStats
	release, err := acquireCleaning(ctx, l)
	if err != nil {
		return st, err
	}
	defer release()
	cfg := l.Config()
	if !cfg.Compacted {
		return st, nil
	}
	if err := finishCleanerFiles(l.dir); err != nil {
		return st, fmt.Errorf("compact %s: %w", l.dir, err)
	}
	p, err := l.planCompaction(cfg, readCleanerCheckpoint(l.dir), force)
	if p == nil || err != nil {
		return st, err
	}
	defer p.release()
	err = p.run(ctx)
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	switch {
	case err == nil:
	case closed:
		err = ErrClosed // closed or deleted under the pass: its files may be gone too
	case ctx.Err() == nil:
		err = fmt.Errorf("compact %s: %w", l.dir, err)
	}
	return p.st, err
}

// compaction is one pass over one log.
type compaction struct {
	l   *Log
	cfg Config
	now int64

	segs []*segment // every segment when the pass was planned, referenced; the last was active
	data [][]byte   // segs[i].bytes() at planning time (the active segment's may grow since)
	// mfs holds the mapping of each sealed segment at planning time, and of each segment the
	// pass swapped in: a segment whose mapping changed was reactivated (truncated into).
	mfs map[*segment]*mmfile.File
	// sources are the segments the key map was built from. A truncation into them would leave
	// the map naming records that no longer exist; it deletes or reactivates the last of them,
	// so the pass checks that one (lastSource, or the segment swapped in for it) before each
	// swap, and stops when it changed. (Retention and DeleteRecords remove segments from the
	// front: every record a removed entry of the map supersedes goes with it.)
	sources    map[*segment]bool
	lastSource *segment

	firstDirty       Offset
	firstUncleanable Offset
	mapEnd           Offset // keys of [firstDirty, mapEnd) are in m
	m                *offsetMap
	lastOfProducer   map[int64]Offset // producer id -> last offset of its last data batch
	horizon          int64            // delete horizon of batches whose tombstones are first cleaned now
	nextHorizon      int64            // earliest delete horizon left in the cleaned part, -1 if none

	aborted map[int64]*producerAborts // producer id -> its aborted transactions; nil if none

	plain, enc, out []byte // scratch: decompressed records, re-encoded records, output batch
	recs            []cleanerRecord
	ts              []int64
	kept            []int

	st CompactStats
}

func (p *compaction) release() { unrefAll(p.segs) }

// SetCleanableLimit bounds compaction (Kafka cleans only below the last stable offset): fn
// returns the first offset the cleaner must leave alone, and a pass cleans no segment holding
// that offset or following it. fn is called once at the start of each pass, without the log's
// locks held. nil removes the bound (every sealed segment may be cleaned).
func (l *Log) SetCleanableLimit(fn func() Offset) {
	if fn == nil {
		l.cleanableLimit.Store(nil)
		return
	}
	l.cleanableLimit.Store(&fn)
}

// planCompaction references the log's segments, works out the dirty part and returns nil when
// no pass is due.
func (l *Log) planCompaction(cfg Config, cp cleanerCheckpoint, force bool) (*compaction, error) {
	p := &compaction{l: l, cfg: cfg, now: cfg.now(), mfs: map[*segment]*mmfile.File{},
		sources: map[*segment]bool{}, nextHorizon: -1}
	p.horizon = p.now + cfg.DeleteRetentionMs
	if p.horizon < p.now {
		p.horizon = math.MaxInt64
	}
	limit := Offset(math.MaxInt64)
	if fn := l.cleanableLimit.Load(); fn != nil {
		limit = (*fn)() // the owner's code: called before taking the log's locks
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	p.segs = append([]*segment(nil), l.segments...)
	for _, s := range p.segs {
		s.ref()
	}
	for _, s := range p.segs {
		if err := s.load(); err != nil {
			p.release()
			return nil, err
		}
		p.data = append(p.data, s.bytes())
		if !s.active {
			p.mfs[s] = s.mf
		}
	}
	logStart, leo := l.logStartOffset.Load(), l.logEndOffset.Load()
	p.firstDirty = cp.firstDirtyLocked(l, logStart, leo)
	p.firstUncleanable = p.segs[len(p.segs)-1].base
	if limit < p.firstUncleanable {
		j := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > limit })
		p.firstUncleanable = p.segs[max(j-1, 0)].base // the base of the segment holding limit
	}
	p.aborted = collectProducerAborts(p.segs)
	sealed := p.segs[:len(p.segs)-1]
	if lag := cfg.MinCompactionLagMs; lag > 0 {
		for _, s := range sealed {
			if s.next.Load() > p.firstDirty && s.largestTimestamp() > p.now-lag {
				p.firstUncleanable = min(p.firstUncleanable, s.base)
				break
			}
		}
	}
	// A checkpoint past the first uncleanable offset (its segment became active again after a
	// truncation, or is held back by min.compaction.lag.ms or the cleanable limit) is lowered to
	// it: a pass never ends past what it may clean (Kafka's end offset is the last offset mapped
	// + 1), so every segment below a pass's end was cleaned by it, and the checkpoint's delete
	// horizon covers every tombstone of the part it calls clean.
	p.firstDirty = min(p.firstDirty, p.firstUncleanable)
	var clean, dirty int64
	for _, s := range sealed {
		if s.base >= p.firstUncleanable {
			break
		}
		if s.next.Load() <= p.firstDirty {
			clean += s.size.Load()
		} else {
			dirty += s.size.Load()
			p.sources[s] = true
			p.lastSource = s
		}
	}
	due := force ||
		(dirty > 0 && float64(dirty) >= cfg.MinCleanableDirtyRatio*float64(clean+dirty)) ||
		(dirty > 0 && p.maxLagExceededLocked()) ||
		(clean > 0 && cp.NextHorizon >= 0 && p.now >= cp.NextHorizon)
	if !due {
		p.release()
		return nil, nil
	}
	p.st = CompactStats{Ran: true, FirstDirty: p.firstDirty}
	return p, nil
}

// maxLagExceededLocked reports whether the oldest dirty record is older than
// max.compaction.lag.ms (judged by its batch's max timestamp, as Kafka does).
func (p *compaction) maxLagExceededLocked() bool {
	if p.cfg.MaxCompactionLagMs == math.MaxInt64 {
		return false
	}
	var h BatchHeader
	for _, s := range p.segs[:len(p.segs)-1] {
		if s.base >= p.firstUncleanable {
			break
		}
		if s.next.Load() <= p.firstDirty {
			continue
		}
		if _, ok := s.find(s.bytes(), p.firstDirty, &h); ok && h.MaxTimestamp >= 0 {
			return p.now-h.MaxTimestamp > p.cfg.MaxCompactionLagMs
		}
	}
	return false
}

// run builds the key map and cleans the segments below its end, in order. It stops at the
// first segment it cannot swap in; only a complete pass moves the checkpoint.
func (p *compaction) run(ctx context.Context) error {
	// The records that supersede others must be on disk before the others are removed: a
	// crash must not take a key's new value after the pass took its old one.
	if err := p.l.Sync(); err != nil {
		return err
	}
	if err := p.buildOffsetMap(ctx); err != nil {
		return err
	}
	p.st.EndOffset = p.mapEnd
	p.scanProducers()
	for i, s := range p.segs[:len(p.segs)-1] {
		if s.base >= p.mapEnd || s.base >= p.firstUncleanable {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := p.cleanSegment(i)
		if err != nil || !ok {
			return err
		}
	}
	p.st.Complete = true
	return p.writeCheckpoint()
}

// forEachDirtyBatch calls fn with each batch of the dirty part, in order, until it returns
// false or an error. Batches are checked (CheckBatch) as they are read.
func (p *compaction) forEachDirtyBatch(fn func(batch []byte, h *BatchHeader) (bool, error)) error {
	var h BatchHeader
	for i, s := range p.segs[:len(p.segs)-1] {
		if s.base >= p.firstUncleanable {
			break
		}
		if !p.sources[s] {
			continue
		}
		b := p.data[i]
		for pos := int64(0); pos < int64(len(b)); pos += int64(h.Size()) {
			if err := CheckBatch(b[pos:], 0, &h); err != nil {
				return fmt.Errorf("segment %d at position %d: %w", s.base, pos, err)
			}
			if h.LastOffset() < p.firstDirty {
				continue
			}
			if more, err := fn(b[pos:pos+int64(h.Size())], &h); !more || err != nil {
				return err
			}
		}
	}
	return nil
}

// buildOffsetMap maps every key of the dirty part to its latest offset, until the map fills.
func (p *compaction) buildOffsetMap(ctx context.Context) error {
	records := 0
	err := p.forEachDirtyBatch(func(_ []byte, h *BatchHeader) (bool, error) {
		records = min(records+int(h.RecordCount), math.MaxInt32)
		return true, nil
	})
	if err != nil {
		return err
	}
	p.m = newOffsetMap(p.cfg.CleanerBufferBytes, records)
	p.mapEnd = p.firstUncleanable // >= p.firstDirty (planCompaction)
	n := 0
	return p.forEachDirtyBatch(func(batch []byte, h *BatchHeader) (bool, error) {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return false, ctx.Err()
		}
		if h.IsControl() || p.abortedBatch(h) || !p.decode(batch, h) {
			return true, nil // no keys to map
		}
		for i := range p.recs {
			r := &p.recs[i]
			off := h.BaseOffset + r.offsetDelta
			if off < p.firstDirty || r.keyNull {
				continue
			}
			if p.m.free() == 0 {
				p.mapEnd = off
				return false, nil
			}
			d := digestKey(r.key)
			p.m.put(&d, off)
		}
		return true, nil
	})
}

// scanProducers finds the last data batch of every idempotent producer in the whole log (as it
// was when the pass was planned; later batches only make the kept ones unnecessary).
func (p *compaction) scanProducers() {
	p.lastOfProducer = map[int64]Offset{}
	var h BatchHeader
	for _, b := range p.data {
		for pos := int64(0); headerAt(b, pos, &h); pos += int64(h.Size()) {
			if h.ProducerID >= 0 && !h.IsControl() {
				p.lastOfProducer[h.ProducerID] = max(p.lastOfProducer[h.ProducerID], h.LastOffset())
			}
		}
	}
}

// decode decodes the records of a data batch into p.recs, and their timestamps into p.ts. It
// returns false when the batch cannot be decoded (no codec, or malformed records); such a batch
// is kept as it is.
func (p *compaction) decode(batch []byte, h *BatchHeader) bool {
	recs, scratch, ok := plainRecords(batch, h, p.plain)
	p.plain = scratch
	if !ok {
		return false
	}
	p.recs, p.ts = p.recs[:0], p.ts[:0]
	prev := int64(-1)
	for i := int32(0); i < h.RecordCount; i++ {
		var r cleanerRecord
		if recs, ok = decodeRecord(recs, &r); !ok || r.offsetDelta <= prev || r.offsetDelta > int64(h.LastOffsetDelta) {
			return false
		}
		prev = r.offsetDelta
		ts := h.BaseTimestamp + r.tsDelta
		if h.Attributes&AttrLogAppendTime != 0 {
			ts = h.MaxTimestamp
		}
		p.recs = append(p.recs, r)
		p.ts = append(p.ts, ts)
	}
	return len(recs) == 0
}

type batchVerdict int

const (
	keepBatch    batchVerdict = iota // copy the batch as it is
	dropBatch                        // leave it out
	replaceBatch                     // write p.out instead
)

// filterBatch decides the fate of one batch. placeholder is set for the last batch of the log's
// first segment, or of the last key source, when nothing of the segment was kept before it: the
// segment must not be left empty.
func (p *compaction) filterBatch(batch []byte, h *BatchHeader, placeholder bool) batchVerdict {
	if h.IsControl() {
		return keepBatch
	}
	if p.abortedBatch(h) {
		p.st.AbortedRemoved += int64(h.RecordCount)
		switch {
		case !placeholder && !p.producerLast(h):
			return dropBatch
		case h.RecordCount == 0:
			return keepBatch
		}
		p.out = appendEmptyBatch(p.out[:0], h)
		return replaceBatch
	}
	if h.RecordCount == 0 {
		if placeholder || p.producerLast(h) {
			return keepBatch
		}
		return dropBatch
	}
	if !p.decode(batch, h) {
		return keepBatch
	}
	hasHorizon := h.Attributes&AttrDeleteHorizon != 0
	p.kept = p.kept[:0]
	tombstones := false
	for i := range p.recs {
		r := &p.recs[i]
		if off := h.BaseOffset + r.offsetDelta; off < p.mapEnd {
			if r.keyNull {
				p.st.RecordsRemoved++
				continue
			}
			if d := digestKey(r.key); p.m.get(&d) > off {
				p.st.RecordsRemoved++
				continue
			}
			if r.valueNull && hasHorizon && p.now >= h.BaseTimestamp {
				p.st.TombstonesRemoved++
				continue
			}
		}
		tombstones = tombstones || r.valueNull
		p.kept = append(p.kept, i)
	}
	horizon := p.horizon // a batch whose tombstones are cleaned for the first time gets one
	if hasHorizon {
		horizon = h.BaseTimestamp
	}
	if tombstones && (p.nextHorizon < 0 || horizon < p.nextHorizon) {
		p.nextHorizon = horizon
	}
	switch {
	case len(p.kept) == len(p.recs) && (hasHorizon || !tombstones):
		return keepBatch
	case len(p.kept) == 0:
		if placeholder || p.producerLast(h) {
			p.out = appendEmptyBatch(p.out[:0], h)
			return replaceBatch
		}
		return dropBatch
	case !tombstones:
		horizon = -1 // no tombstone left: no horizon
	}
	p.out, p.enc = appendFilteredBatch(p.out[:0], h, p.recs, p.kept, p.ts, horizon, p.enc)
	return replaceBatch
}

// producerLast reports whether h is the last data batch of an idempotent producer.
func (p *compaction) producerLast(h *BatchHeader) bool {
	last, ok := p.lastOfProducer[h.ProducerID]
	return h.ProducerID >= 0 && ok && last == h.LastOffset()
}

// producerAborts is one producer's aborted transactions, ordered by LastOffset, for the
// cleaner's lookups: minFirst[i] is the lowest FirstOffset of entries i and after.
type producerAborts struct {
	last, minFirst []Offset
}

// collectProducerAborts groups the aborted transactions of segs by producer (nil when there are
// none). The caller holds the log's mu.
func collectProducerAborts(segs []*segment) map[int64]*producerAborts {
	var m map[int64]*producerAborts
	for _, s := range segs {
		for _, e := range s.txn.list() {
			if m == nil {
				m = map[int64]*producerAborts{}
			}
			a := m[e.ProducerID]
			if a == nil {
				a = &producerAborts{}
				m[e.ProducerID] = a
			}
			a.last = append(a.last, e.LastOffset)
			a.minFirst = append(a.minFirst, e.FirstOffset)
		}
	}
	for _, a := range m {
		for i := len(a.minFirst) - 2; i >= 0; i-- {
			a.minFirst[i] = min(a.minFirst[i], a.minFirst[i+1])
		}
	}
	return m
}

// abortedBatch reports whether h is a data batch of an aborted transaction: transactional, not
// a control batch, and its base offset within [FirstOffset, LastOffset] of an aborted
// transaction of its producer.
func (p *compaction) abortedBatch(h *BatchHeader) bool {
	if p.aborted == nil || !h.IsTransactional() || h.IsControl() {
		return false
	}
	a := p.aborted[h.ProducerID]
	if a == nil {
		return false
	}
	i := sort.Search(len(a.last), func(i int) bool { return a.last[i] >= h.BaseOffset })
	return i < len(a.last) && a.minFirst[i] <= h.BaseOffset
}

// cleanSegment cleans p.segs[i] and swaps the result in. It returns false when the pass must
// stop (the log changed under it).
func (p *compaction) cleanSegment(i int) (bool, error) {
	s := p.segs[i]
	w, changed, err := p.filterSegment(i)
	switch {
	case err != nil:
		return false, err
	case !changed:
		return true, nil
	case w == nil:
		return p.dropSegment(s)
	}
	return p.replaceSegment(s, w)
}

// filterSegment writes the cleaned copy of p.segs[i] to .cleaned files. changed is false when
// every batch was kept as it is (nothing is written); w is nil when no batch was kept.
func (p *compaction) filterSegment(i int) (w *segmentWriter, changed bool, err error) {
	s, b := p.segs[i], p.data[i]
	var h, oh BatchHeader
	emitted, prefix := 0, int64(0) // batches kept; bytes of the unchanged prefix not yet written
	defer func() {
		if err != nil && w != nil {
			w.abort()
			w = nil
		}
	}()
	for pos := int64(0); pos < int64(len(b)); pos += int64(h.Size()) {
		if err := CheckBatch(b[pos:], 0, &h); err != nil {
			return w, changed, fmt.Errorf("segment %d at position %d: %w", s.base, pos, err)
		}
		end := pos + int64(h.Size())
		p.st.BytesRead += int64(h.Size())
		last := emitted == 0 && end == int64(len(b)) && (i == 0 || s == p.lastSource)
		v := p.filterBatch(b[pos:end], &h, last)
		if v == keepBatch && !changed {
			emitted, prefix = emitted+1, end
			continue
		}
		changed = true
		if v == dropBatch {
			continue
		}
		if w == nil {
			if w, err = p.newWriter(s, b, prefix); err != nil {
				return nil, changed, err
			}
		}
		if v == keepBatch {
			err = w.add(b[pos:end], &h)
		} else {
			if CheckBatch(p.out, 0, &oh) != nil || oh.Size() != len(p.out) {
				panic(fmt.Sprintf("BUG: cleaner wrote an invalid batch at offset %d", h.BaseOffset))
			}
			err = w.add(p.out, &oh)
		}
		if err != nil {
			return w, changed, err
		}
		emitted++
	}
	if changed && emitted > 0 && w == nil {
		w, err = p.newWriter(s, b, prefix) // only batches were dropped after the unchanged prefix
	}
	return w, changed, err
}

// newWriter starts the cleaned copy of s (whose bytes are b) with the unchanged prefix b[:prefix].
func (p *compaction) newWriter(s *segment, b []byte, prefix int64) (*segmentWriter, error) {
	w, err := newSegmentWriter(s.dir, s.base, &p.cfg, int64(len(b)))
	if err != nil {
		return nil, err
	}
	var h BatchHeader
	for pos := int64(0); pos < prefix; pos += int64(h.Size()) {
		ParseBatchHeader(b[pos:], &h)
		if err := w.add(b[pos:pos+int64(h.Size())], &h); err != nil {
			w.abort()
			return nil, err
		}
	}
	return w, nil
}

// verifyLocked checks, under the log's lock, that s and the last key source are still in the
// log as planned (not deleted, truncated or reactivated), and returns s's index in the segment
// list.
func (p *compaction) verifyLocked(s *segment) (int, bool) {
	l := p.l
	if l.closed {
		return 0, false
	}
	unchanged := func(t *segment) (int, bool) {
		i := l.segmentIndexLocked(t.base)
		return i, i < len(l.segments) && l.segments[i] == t && !t.active && !t.deleted.Load() && t.mf == p.mfs[t]
	}
	if t := p.lastSource; t != nil {
		if _, ok := unchanged(t); !ok {
			return 0, false
		}
	}
	return unchanged(s)
}

// replaceSegment swaps the cleaned copy written by w in for s (steps 2-5 of the file comment).
func (p *compaction) replaceSegment(s *segment, w *segmentWriter) (bool, error) {
	l := p.l
	testHookCleaner("written")
	ns, err := w.stage(s)
	if err != nil {
		removeCleanerFiles(l.dir, s.base)
		return false, err
	}
	ok, err := p.commit(s, ns)
	if !ok {
		ns.release()
		removeCleanerFiles(l.dir, s.base)
		return false, err
	}
	p.st.SegmentsCleaned++
	p.st.BytesWritten += ns.size.Load()
	err = finishIndexSwap(l.dir, s.base)
	testHookCleaner("linked")
	return err == nil, err
}

// commit removes s's index files (s is loaded: nothing rebuilds them), then renames the cleaned
// log over s's and puts ns in s's place, if the log is still as planned.
func (p *compaction) commit(s, ns *segment) (bool, error) {
	l := p.l
	l.mu.RLock()
	_, ok := p.verifyLocked(s)
	var err error
	if ok {
		err = removeIndexFiles(l.dir, s.base)
	}
	l.mu.RUnlock()
	if !ok || err != nil {
		return false, err
	}
	if err := syncDir(l.dir); err != nil {
		return false, err
	}
	testHookCleaner("indexes-removed")
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := p.verifyLocked(s)
	if !ok {
		return false, nil
	}
	if err := os.Rename(segmentName(l.dir, s.base, logSuffix)+swapSuffix, segmentName(l.dir, s.base, logSuffix)); err != nil {
		return false, err
	}
	testHookCleaner("committed")
	// The .txnindex file stays as it is: ns takes over s's entries.
	ns.txn.publish(append([]AbortedTxn(nil), s.txn.list()...))
	ns.txn.unsynced.Store(s.txn.unsynced.Load())
	l.segments[i] = ns
	s.deleted.Store(true) // out of the log; its mapping is released at the last unref (ours)
	p.mfs[ns] = ns.mf
	if p.lastSource == s {
		p.lastSource = ns
	}
	return true, nil
}

// dropSegment deletes s, left without a batch. The previous segment's range grows over it.
func (p *compaction) dropSegment(s *segment) (bool, error) {
	l := p.l
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := p.verifyLocked(s)
	if !ok || i == 0 || s == p.lastSource {
		return false, nil // never the first segment (it holds the log start) nor the last source
	}
	prev := l.segments[i-1]
	l.segments = append(l.segments[:i:i], l.segments[i+1:]...)
	s.markDeleted()
	prev.next.Store(s.next.Load())
	p.st.SegmentsDeleted++
	testHookCleaner("dropped")
	return true, nil
}

// writeCheckpoint records the end of the mapped part after a complete pass.
func (p *compaction) writeCheckpoint() error {
	cp := cleanerCheckpoint{FirstDirty: p.mapEnd, NextHorizon: p.nextHorizon}
	cp.BatchBase, cp.BatchLast = -1, -1
	p.l.mu.RLock()
	if p.l.closed {
		p.l.mu.RUnlock()
		return ErrClosed
	}
	if h, ok := p.l.batchBelowLocked(p.mapEnd); ok {
		cp.BatchBase, cp.BatchLast, cp.BatchCRC, cp.BatchEpoch = h.BaseOffset, h.LastOffset(), h.CRC, h.PartitionLeaderEpoch
	}
	p.l.mu.RUnlock()
	return writeCleanerCheckpoint(p.l.dir, cp)
}

// batchBelowLocked returns the header of the last batch whose last offset is below off. The
// caller holds l.mu.
func (l *Log) batchBelowLocked(off Offset) (BatchHeader, bool) {
	var h, cur BatchHeader
	for i := l.segmentIndexLocked(off - 1); i >= 0; i-- {
		s := l.segments[i]
		if s.base >= off {
			continue
		}
		if s.load() != nil {
			return h, false
		}
		b := s.bytes()
		pos := int64(0)
		if e, ok := s.oidx.Lookup(uint32(min(off-1-s.base, math.MaxUint32))); ok && int64(e.Position) < int64(len(b)) {
			pos = int64(e.Position)
		}
		found := false
		for ; headerAt(b, pos, &cur) && cur.LastOffset() < off; pos += int64(cur.Size()) {
			h, found = cur, true
		}
		if found {
			return h, true
		}
	}
	return h, false
}

// cleanerCheckpoint is the content of CleanerCheckpointFile (see the file comment).
type cleanerCheckpoint struct {
	FirstDirty           Offset // -1: none
	BatchBase, BatchLast Offset
	BatchCRC             uint32
	BatchEpoch           int32
	NextHorizon          int64
}

// firstDirtyLocked returns the checkpoint's first dirty offset if it still describes the log,
// else the log start offset (everything is dirty). The caller holds l.mu.
func (cp cleanerCheckpoint) firstDirtyLocked(l *Log, logStart, leo Offset) Offset {
	if cp.FirstDirty <= logStart || cp.FirstDirty > leo {
		return logStart
	}
	h, ok := l.batchBelowLocked(cp.FirstDirty)
	if !ok || h.BaseOffset != cp.BatchBase || h.LastOffset() != cp.BatchLast || h.CRC != cp.BatchCRC ||
		h.PartitionLeaderEpoch != cp.BatchEpoch {
		return logStart
	}
	return cp.FirstDirty
}

// readCleanerCheckpoint reads a log's checkpoint; a missing or malformed one reads as none.
func readCleanerCheckpoint(dir string) cleanerCheckpoint {
	none := cleanerCheckpoint{FirstDirty: -1, NextHorizon: -1}
	raw, err := os.ReadFile(dir + "/" + CleanerCheckpointFile)
	if err != nil {
		return none
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "0" {
		return none
	}
	f := strings.Fields(lines[1])
	if len(f) != 6 {
		return none
	}
	var v [6]int64
	for i := range f {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return none
		}
	}
	if v[3] < 0 || v[3] > math.MaxUint32 || v[4] < math.MinInt32 || v[4] > math.MaxInt32 {
		return none
	}
	return cleanerCheckpoint{FirstDirty: v[0], BatchBase: v[1], BatchLast: v[2], BatchCRC: uint32(v[3]),
		BatchEpoch: int32(v[4]), NextHorizon: v[5]}
}

// writeCleanerCheckpoint writes a log's checkpoint atomically (temporary file, fsync, rename,
// fsync of the folder).
func writeCleanerCheckpoint(dir string, cp cleanerCheckpoint) error {
	path := dir + "/" + CleanerCheckpointFile
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	fmt.Fprintf(bw, "0\n%d %d %d %d %d %d\n", cp.FirstDirty, cp.BatchBase, cp.BatchLast, cp.BatchCRC, cp.BatchEpoch, cp.NextHorizon)
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write cleaner checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync cleaner checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// Compact runs a compaction pass on every compacted log whose cleaning is due (Log.Compact)
// and returns how many ran.
func (s *Store) Compact(ctx context.Context) (int, error) {
	n := 0
	var first error
	for _, tp := range s.Logs() {
		l := s.Log(tp)
		if l == nil {
			continue
		}
		st, err := l.Compact(ctx, false)
		if st.Ran {
			n++
		}
		if ctx.Err() != nil {
			return n, first
		}
		if err != nil && first == nil && !errors.Is(err, ErrClosed) {
			first = err
		}
	}
	return n, first
}

// compactLoop runs Compact every interval until ctx ends (Maintain starts it).
func (s *Store) compactLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Compact(ctx)
		}
	}
}
