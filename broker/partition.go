package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spate-broker/spate/logstore"
)

// partition is one partition this node leads (a single node leads all of them).
type partition struct {
	b       *Broker
	tp      logstore.TopicPartition
	topicID [16]byte
	log     *logstore.Log

	// mu serializes produce appends with the idempotent producer checks, so the sequence
	// check and the append are one step.
	mu            sync.Mutex
	producers     map[int64]*producerState // guarded by mu
	minISR        int                      // min.insync.replicas; guarded by mu
	logAppendTime bool                     // message.timestamp.type=LogAppendTime; guarded by mu
	leaderEpoch   atomic.Int32             // the current leader epoch (changes in cluster mode)

	// txns maps each producer with an ongoing transaction on this partition to the offset of
	// its first batch in it; guarded by mu. firstUnstable is the least of those offsets, -1
	// when none: the last stable offset is bounded by it.
	// Invariant: firstUnstable is set before a transaction's first batch becomes readable
	// (it is stored before the append), so read_committed readers never pass it.
	txns          map[int64]int64
	firstUnstable atomic.Int64
	markerBuf     []byte // a control batch being built; guarded by mu
	// markers counts the transaction markers appended here; guarded by mu. A batch
	// verified by a remote coordinator is appended only if no marker came between its
	// deferral and its append (txn_verify.go: the verification may be stale otherwise).
	markers uint64

	snapMu      sync.Mutex   // serializes producer snapshots
	snapshotLEO atomic.Int64 // log end offset of the last snapshot written or loaded

	waitMu  sync.Mutex
	waiters []*delayedFetch // fetches parked on this partition; guarded by waitMu

	repl replicaState // cluster mode: role, high watermark, leader-side state (replica.go)
}

func newPartition(b *Broker, tp logstore.TopicPartition, id [16]byte, l *logstore.Log) *partition {
	p := &partition{b: b, tp: tp, topicID: id, log: l, producers: map[int64]*producerState{}, txns: map[int64]int64{}, minISR: 1}
	p.firstUnstable.Store(-1)
	// The cleaner stays below the last stable offset: an open transaction's records are not
	// yet known to be committed or aborted.
	l.SetCleanableLimit(p.lastStableOffset)
	return p
}

// highWatermark is the log end offset for a single node (the whole ISR); in cluster mode the
// leader's replication state computes it, and a follower has the leader's (replica.go).
func (p *partition) highWatermark() int64 {
	if ls := p.repl.leader.Load(); ls != nil {
		return ls.HighWatermark()
	}
	if p.b.cluster != nil {
		return min(p.repl.hw.Load(), p.log.LogEndOffset())
	}
	return p.log.LogEndOffset()
}

// lastStableOffset is the first offset of the earliest ongoing transaction, or the high
// watermark when none is ongoing: read_committed consumers read below it.
func (p *partition) lastStableOffset() int64 {
	hw := p.highWatermark()
	if f := p.firstUnstable.Load(); f >= 0 && f < hw {
		return f
	}
	return hw
}

// deleted wakes parked fetches of a deleted partition.
func (p *partition) deleted() { p.wake() }

// wake completes the fetches parked on this partition (new data, or deletion). After an
// append on a cluster leader it first moves the leader's own log end offset, which may
// move the high watermark (an ISR of one) and complete acks=all produces.
func (p *partition) wake() {
	if ls := p.repl.leader.Load(); ls != nil {
		if ls.SetLocalLEO(p.log.LogEndOffset()) {
			p.completeAcks(false)
		}
	}
	p.waitMu.Lock()
	ws := p.waiters
	p.waiters = nil
	p.waitMu.Unlock()
	for _, w := range ws {
		w.notify()
	}
}

// unpark removes w (a fetch that stopped waiting) from the partition's waiters.
func (p *partition) unpark(w *delayedFetch) {
	p.waitMu.Lock()
	defer p.waitMu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			last := len(p.waiters) - 1
			p.waiters[i] = p.waiters[last]
			p.waiters[last] = nil
			p.waiters = p.waiters[:last]
			return
		}
	}
}

func (p *partition) park(w *delayedFetch) {
	p.waitMu.Lock()
	p.waiters = append(p.waiters, w)
	p.waitMu.Unlock()
}

// Idempotent producer state, as Kafka keeps it: per producer id, the epoch and the metadata of
// the last five batches, so a retried batch is answered with its original offset.
const producerBatchCache = 5

type batchMeta struct {
	FirstSeq    int32 `json:"fs"`
	LastSeq     int32 `json:"ls"`
	FirstOffset int64 `json:"fo"`
	LastOffset  int64 `json:"lo"`
	Timestamp   int64 `json:"ts"`
}

type producerState struct {
	Epoch   int16       `json:"epoch"`
	Batches []batchMeta `json:"batches"` // oldest first, at most producerBatchCache
	// InTxn is set while the producer has a transaction ongoing on this partition, whose first
	// batch is at TxnFirst. CoordinatorEpoch is the epoch of the last marker's coordinator.
	InTxn            bool  `json:"in_txn,omitempty"`
	TxnFirst         int64 `json:"txn_first,omitempty"`
	CoordinatorEpoch int32 `json:"coordinator_epoch,omitempty"`
}

func (s *producerState) last() *batchMeta {
	if len(s.Batches) == 0 {
		return nil
	}
	return &s.Batches[len(s.Batches)-1]
}

func (s *producerState) add(m batchMeta) {
	if len(s.Batches) == producerBatchCache {
		copy(s.Batches, s.Batches[1:])
		s.Batches = s.Batches[:producerBatchCache-1]
	}
	s.Batches = append(s.Batches, m)
}

// nextSeq is the sequence after last, wrapping at int32 max as Kafka does.
func nextSeq(last int32) int32 {
	if last == math.MaxInt32 {
		return 0
	}
	return last + 1
}

func lastSeqOf(h *logstore.BatchHeader) int32 {
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

// checkSequenceLocked applies Kafka's idempotence rules to a batch. It returns a duplicate's
// cached metadata (dup != nil: answer with it, append nothing) or an error code.
func (p *partition) checkSequenceLocked(h *logstore.BatchHeader) (dup *batchMeta, code int16) {
	if h.ProducerID < 0 {
		return nil, 0
	}
	st := p.producers[h.ProducerID]
	if st == nil {
		return nil, 0 // unknown producer: any sequence starts it (Kafka 2.5+, KIP-360)
	}
	if h.ProducerEpoch < st.Epoch {
		return nil, errInvalidProducerEpoch
	}
	if h.ProducerEpoch > st.Epoch {
		if h.BaseSequence != 0 {
			return nil, errOutOfOrderSequenceNumber // a new epoch starts at sequence 0
		}
		return nil, 0
	}
	last := lastSeqOf(h)
	for i := range st.Batches {
		m := &st.Batches[i]
		if m.FirstSeq == h.BaseSequence && m.LastSeq == last {
			return m, 0
		}
	}
	if l := st.last(); l != nil && h.BaseSequence != nextSeq(l.LastSeq) {
		return nil, errOutOfOrderSequenceNumber
	}
	return nil, 0
}

// recordBatchLocked updates the producer state after an append.
func (p *partition) recordBatchLocked(h *logstore.BatchHeader, first, last int64, ts int64) {
	if h.ProducerID < 0 {
		return
	}
	st := p.producers[h.ProducerID]
	if st == nil || h.ProducerEpoch > st.Epoch {
		ns := &producerState{Epoch: h.ProducerEpoch}
		if st != nil {
			// A bumped epoch keeps an open transaction (its marker carries the new epoch).
			ns.InTxn, ns.TxnFirst, ns.CoordinatorEpoch = st.InTxn, st.TxnFirst, st.CoordinatorEpoch
		}
		st = ns
		p.producers[h.ProducerID] = st
	}
	st.add(batchMeta{FirstSeq: h.BaseSequence, LastSeq: lastSeqOf(h), FirstOffset: first, LastOffset: last, Timestamp: ts})
	if h.IsTransactional() && !st.InTxn {
		st.InTxn, st.TxnFirst = true, first
		p.beginTxnLocked(h.ProducerID, first)
	}
}

// Producer state snapshots: <partition dir>/<20-digit offset>.snapshot holds the state of every
// producer as of that offset (JSON). Loading takes the newest snapshot not past the log end and
// replays batch headers from its offset; without one the whole log is replayed.
//
// A snapshot also names the batch that ended at its offset (base offset, partition leader
// epoch, CRC). A replica's log can lose that batch and grow past the offset again — a leader
// that became a follower truncates to the new leader's log and appends the new leader's
// batches — and the snapshot then describes producers of a log that no longer exists: loading
// it would miss the new tail's transactions below the offset (the aborted-transaction index
// is only re-derived from the snapshot's offset) or keep a phantom open transaction that
// holds the last stable offset. Such a snapshot no longer matches the log's batch at its
// offset (batches appended after a truncation carry a newer leader epoch) and is ignored.
const snapshotSuffix = ".snapshot"

type producerSnapshot struct {
	Producers map[string]*producerState `json:"producers"`
	LastBatch *snapshotBatch            `json:"last_batch,omitempty"` // nil: empty log, or a snapshot from before this field
}

// snapshotBatch identifies the batch that ended at a snapshot's offset.
type snapshotBatch struct {
	BaseOffset  int64  `json:"base_offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	CRC         uint32 `json:"crc"`
}

// batchEndingAt returns the identity of the log's batch whose last offset is end-1, if the log
// has one. Callers hold mu, or own the log alone.
func (p *partition) batchEndingAt(end int64) (*snapshotBatch, bool) {
	if end <= p.log.LogStartOffset() {
		return nil, false
	}
	var res logstore.ReadResult
	defer res.Release()
	if err := p.log.Read(end-1, 1, end, true, &res); err != nil || len(res.Regions) == 0 {
		return nil, false
	}
	b := res.Regions[0].Data
	var h logstore.BatchHeader
	if len(b) < logstore.BatchHeaderSize {
		return nil, false
	}
	logstore.ParseBatchHeader(b, &h)
	if h.LastOffset() != end-1 {
		return nil, false
	}
	return &snapshotBatch{BaseOffset: h.BaseOffset, LeaderEpoch: h.PartitionLeaderEpoch, CRC: h.CRC}, true
}

func (p *partition) saveProducerSnapshot() error {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	p.mu.Lock()
	leo := p.log.LogEndOffset()
	snap := producerSnapshot{Producers: make(map[string]*producerState, len(p.producers))}
	for id, st := range p.producers {
		snap.Producers[strconv.FormatInt(id, 10)] = st
	}
	snap.LastBatch, _ = p.batchEndingAt(leo)
	raw, err := json.Marshal(snap) // a deep copy, taken under mu
	p.mu.Unlock()
	if err != nil {
		return err
	}
	// The log (with its aborted-transaction index) is synced up to at least leo first: a
	// restart replays from the snapshot's offset and re-derives only the index entries from
	// there on.
	if err := p.log.Sync(); err != nil {
		return err
	}
	path := filepath.Join(p.log.Dir(), fmt.Sprintf("%020d%s", leo, snapshotSuffix))
	if err := writeFileAtomic(path, raw); err != nil {
		return err
	}
	p.snapshotLEO.Store(leo)
	// Older snapshots are superseded.
	ents, _ := os.ReadDir(p.log.Dir())
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), snapshotSuffix) && filepath.Join(p.log.Dir(), e.Name()) != path {
			os.Remove(filepath.Join(p.log.Dir(), e.Name()))
		}
	}
	return nil
}

// loadProducerState rebuilds the idempotent producer state after a restart.
func (p *partition) loadProducerState() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	leo := p.log.LogEndOffset()
	from := p.log.LogStartOffset()
	ents, err := os.ReadDir(p.log.Dir())
	if err != nil {
		return err
	}
	best := int64(-1)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, snapshotSuffix) {
			continue
		}
		off, err := strconv.ParseInt(strings.TrimSuffix(name, snapshotSuffix), 10, 64)
		if err != nil || off > leo {
			os.Remove(filepath.Join(p.log.Dir(), name)) // past the log end (truncated): stale
			continue
		}
		best = max(best, off)
	}
	if best >= 0 {
		raw, err := os.ReadFile(filepath.Join(p.log.Dir(), fmt.Sprintf("%020d%s", best, snapshotSuffix)))
		var snap producerSnapshot
		if err == nil && json.Unmarshal(raw, &snap) == nil && p.snapshotMatchesLog(best, snap.LastBatch) {
			for k, st := range snap.Producers {
				id, err := strconv.ParseInt(k, 10, 64)
				if err == nil && st != nil && len(st.Batches) <= producerBatchCache {
					p.producers[id] = st
					if st.InTxn {
						p.beginTxnLocked(id, st.TxnFirst)
					}
				}
			}
			from = max(from, best)
			p.snapshotLEO.Store(best)
		}
	}
	// Aborted-transaction index entries from the replay's start are derived again.
	if err := p.log.TruncateAbortedTxnsFrom(from); err != nil {
		return err
	}
	return p.replayLocked(from, leo)
}

// snapshotMatchesLog reports whether the log still holds the batch a snapshot at offset end
// was taken after. A snapshot written before snapshots named their batch (last nil) is
// trusted when the log has a batch ending there, as is one whose batch retention removed.
func (p *partition) snapshotMatchesLog(end int64, last *snapshotBatch) bool {
	got, ok := p.batchEndingAt(end)
	switch {
	case end <= p.log.LogStartOffset():
		return true // retention removed the batch: nothing left to check against
	case !ok:
		return false // no batch ends at the snapshot's offset: the log changed under it
	case last == nil:
		return true
	}
	return *got == *last
}

// replayLocked feeds the batch headers of [from, to) into the producer state.
func (p *partition) replayLocked(from, to int64) error {
	var res logstore.ReadResult
	defer res.Release()
	var h logstore.BatchHeader
	for from < to {
		if err := p.log.Read(from, 16<<20, to, true, &res); err != nil {
			if errors.Is(err, logstore.ErrOffsetOutOfRange) {
				return nil
			}
			return err
		}
		if len(res.Regions) == 0 {
			return nil
		}
		for _, r := range res.Regions {
			for b := r.Data; len(b) >= logstore.BatchHeaderSize; b = b[h.Size():] {
				logstore.ParseBatchHeader(b, &h)
				if h.Size() > len(b) {
					break
				}
				if h.LastOffset() < from || h.ProducerID < 0 {
					continue
				}
				if h.IsControl() {
					if commit, ok := logstore.ControlMarker(b[:h.Size()]); ok {
						if err := p.completeTxnLocked(&h, commit, h.BaseOffset); err != nil {
							return err
						}
					}
					continue
				}
				p.recordBatchLocked(&h, h.BaseOffset, h.LastOffset(), h.MaxTimestamp)
			}
		}
		from = res.NextOffset
		res.Release()
	}
	return nil
}
