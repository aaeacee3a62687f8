package broker

// A partition's side of transactions (KIP-98): which producers have a transaction ongoing on
// it (their first offset bounds the last stable offset), and the commit/abort markers the
// transaction coordinator writes to end them. An abort is recorded in the log's
// aborted-transaction index so that read_committed fetches can tell consumers which records
// to drop.
//
// A marker is a control batch, as Kafka writes it: attributes control|transactional, the
// producer's id and epoch, base sequence -1, one uncompressed control record
// (logstore/control.go).

import (
	"time"

	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/logstore"
)

// beginTxnLocked records that producer id has a transaction ongoing from offset first.
func (p *partition) beginTxnLocked(id, first int64) {
	p.txns[id] = first
	if f := p.firstUnstable.Load(); f < 0 || first < f {
		p.firstUnstable.Store(first)
	}
}

// maybeBeginTxnLocked marks h's transaction ongoing from the log end offset — where the batch
// is about to be appended — when h is the transaction's first batch here. It reports whether
// it did, so that a failed append can undo it with endTxnLocked.
func (p *partition) maybeBeginTxnLocked(h *logstore.BatchHeader) bool {
	if !h.IsTransactional() || h.IsControl() {
		return false
	}
	if _, ok := p.txns[h.ProducerID]; ok {
		return false
	}
	p.beginTxnLocked(h.ProducerID, p.log.LogEndOffset())
	return true
}

// endTxnLocked forgets producer id's ongoing transaction and recomputes the first unstable
// offset.
func (p *partition) endTxnLocked(id int64) {
	delete(p.txns, id)
	least := int64(-1)
	for _, f := range p.txns {
		if least < 0 || f < least {
			least = f
		}
	}
	p.firstUnstable.Store(least)
}

// completeTxnLocked applies a marker at offset to the producer state (on append and on
// replay): the producer's transaction ends; an abort is added to the aborted-transaction
// index.
func (p *partition) completeTxnLocked(h *logstore.BatchHeader, commit bool, offset int64) error {
	st := p.producers[h.ProducerID]
	if st == nil || h.ProducerEpoch > st.Epoch {
		ns := &producerState{Epoch: h.ProducerEpoch}
		if st != nil {
			ns.InTxn, ns.TxnFirst = st.InTxn, st.TxnFirst
		}
		st = ns
		p.producers[h.ProducerID] = st
	}
	if !st.InTxn {
		if _, ok := p.txns[h.ProducerID]; ok {
			p.endTxnLocked(h.ProducerID)
		}
		return nil
	}
	first := st.TxnFirst
	if !commit {
		// The index entry goes in before the last stable offset moves past the
		// transaction: a read_committed fetch that may read its records also sees the abort.
		lso := offset + 1
		for id, f := range p.txns {
			if id != h.ProducerID && f < lso {
				lso = f
			}
		}
		if err := p.log.AppendAbortedTxn(logstore.AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: offset, LastStableOffset: lso}); err != nil {
			return err
		}
	}
	st.InTxn, st.TxnFirst = false, 0
	p.endTxnLocked(h.ProducerID)
	return nil
}

// writeMarker appends a commit or abort marker for a producer's transaction and returns a
// Kafka error code. Writing a marker for a producer with no transaction ongoing here is
// harmless (Kafka writes it too; readers skip it), so a coordinator may retry.
func (p *partition) writeMarker(producerID int64, epoch int16, commit bool, coordinatorEpoch int32) int16 {
	if !p.isLeader() {
		return errNotLeaderOrFollower
	}
	code, flush, offset := p.appendMarker(producerID, epoch, commit, coordinatorEpoch)
	if code != 0 {
		return code
	}
	if flush {
		if err := p.log.Sync(); err != nil {
			p.b.log.Error("flush", "partition", p.tp.String(), "err", err)
		}
	}
	p.wake()
	if code := p.awaitCommitted(offset + 1); code != 0 {
		return code
	}
	if p.tp.Topic == coordinator.OffsetsTopic && p.b.groups != nil {
		p.b.groups.CompleteTxn(p.tp.Partition, producerID, commit)
	}
	return 0
}

// appendMarker appends the marker and returns its code, whether the log wants a flush, and the
// marker's offset.
func (p *partition) appendMarker(producerID int64, epoch int16, commit bool, coordinatorEpoch int32) (int16, bool, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.producers[producerID]
	if st != nil && epoch < st.Epoch {
		return errInvalidProducerEpoch, false, -1
	}
	if st != nil && coordinatorEpoch < st.CoordinatorEpoch {
		return errTransactionCoordinatorFenced, false, -1
	}
	var rec [10]byte
	key, val := logstore.AppendControlRecord(rec[:0], commit, coordinatorEpoch)
	p.markerBuf = logstore.AppendBatch(p.markerBuf[:0], logstore.BatchSpec{
		PartitionLeaderEpoch: p.leaderEpoch.Load(),
		Attributes:           logstore.AttrControl | logstore.AttrTransactional,
		BaseTimestamp:        time.Now().UnixMilli(),
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		BaseSequence:         -1,
		Records:              []logstore.Record{{Key: key, Value: val}},
	})
	var info logstore.AppendInfo
	if err := p.log.AppendAsLeader(p.markerBuf, p.leaderEpoch.Load(), true, &info); err != nil {
		return logstore.CodeOf(err), false, -1
	}
	p.markers++
	var h logstore.BatchHeader
	logstore.ParseBatchHeader(p.markerBuf, &h)
	if err := p.completeTxnLocked(&h, commit, info.FirstOffset); err != nil {
		p.b.log.Error("aborted transaction index", "partition", p.tp.String(), "err", err)
		return logstore.CodeOf(err), false, -1
	}
	if st = p.producers[producerID]; st != nil {
		st.CoordinatorEpoch = coordinatorEpoch
	}
	return 0, info.FlushNeeded, info.FirstOffset
}
