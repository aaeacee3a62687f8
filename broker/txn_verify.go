package broker

// KIP-890 part 1 across nodes: a transactional batch whose transactional id is coordinated by
// another node is verified there before it is appended, as Kafka's AddPartitionsToTxnManager
// does: the partition leader sends AddPartitionsToTxn v4 with verify_only to the
// coordinator (the leader of the id's __transaction_state partition) and appends the batch
// only when the partition is in the producer's ongoing transaction; otherwise the produce
// answers the verification's error (ProduceErrorCode of it).
//
// The round trip must not block the event loop, so produceTo defers such a batch
// (errVerifyRemote): it copies the batch — the one copy that the inline path avoids, paid
// once per partition per transaction, since a later batch finds the transaction ongoing —
// and the request is finished off the loop. Deferred requests of one producer are handled
// in arrival order by one goroutine (verifier), so that its batches to a partition are
// appended in sequence order even when several requests are in flight.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/coordinator/txn"
	"github.com/spate-broker/spate/logstore"
	"github.com/spate-broker/spate/netio"
)

// Internal produce answers that never reach a client: errVerifyRemote, a batch deferred for
// remote verification; errVerifyStale, a verified batch that met a marker appended after
// its verification was asked for (verified again).
const (
	errVerifyRemote int16 = -2
	errVerifyStale  int16 = -3
)

// maxVerifyRounds bounds the verifications of one batch that markers made stale; past it
// the produce answers NOT_ENOUGH_REPLICAS, which producers retry.
const maxVerifyRounds = 3

// remoteVerifyTimeout bounds one verification round trip.
const remoteVerifyTimeout = 10 * time.Second

// deferredBatch is a batch waiting for its remote verification.
type deferredBatch struct {
	p        *partition
	pp       *prodPart
	pid      int64
	epoch    int16
	markers  uint64 // p.markers when deferred
	from, to int    // its bytes in produceState.deferBuf
}

// deferVerify records pp's batch (header h) on p for remote verification; the batch is
// copied, as the frame it lives in is gone once Serve returns.
func (st *produceState) deferVerify(p *partition, pp *prodPart, h *logstore.BatchHeader) {
	from := len(st.deferBuf)
	st.deferBuf = append(st.deferBuf, pp.records...)
	st.deferred = append(st.deferred, deferredBatch{p: p, pp: pp, pid: h.ProducerID, epoch: h.ProducerEpoch,
		markers: p.markers, from: from, to: len(st.deferBuf)})
}

// verifyJob is a produce request with deferred batches.
type verifyJob struct {
	b   *Broker
	c   *netio.Conn
	seq netio.Seq
	h   reqHeader
	st  *produceState
	pid int64
}

// verifier runs the jobs of each producer id in order, one goroutine per producer with
// jobs queued.
type verifier struct {
	mu     sync.Mutex
	queues map[int64][]*verifyJob // guarded by mu; the head is the running job
}

func (v *verifier) enqueue(j *verifyJob) {
	v.mu.Lock()
	if v.queues == nil {
		v.queues = map[int64][]*verifyJob{}
	}
	q := v.queues[j.pid]
	v.queues[j.pid] = append(q, j)
	v.mu.Unlock()
	if len(q) == 0 {
		go v.drain(j.pid)
	}
}

func (v *verifier) drain(pid int64) {
	for {
		v.mu.Lock()
		q := v.queues[pid]
		if len(q) == 0 {
			delete(v.queues, pid)
			v.mu.Unlock()
			return
		}
		j := q[0]
		v.mu.Unlock()
		j.run()
		v.mu.Lock()
		q = v.queues[pid]
		q[0] = nil
		v.queues[pid] = q[1:]
		v.mu.Unlock()
	}
}

// finishDeferred hands a produce with deferred batches to the verifier (event loop; the
// caller made the names st's own).
func (b *Broker) finishDeferred(c *netio.Conn, seq netio.Seq, h *reqHeader, st *produceState) {
	st.txnID = append(st.txnIDBuf[:0], st.txnID...)
	st.txnIDBuf = st.txnID
	b.verifier.enqueue(&verifyJob{b: b, c: c, seq: seq, h: *h, st: st, pid: st.deferred[0].pid})
}

// run verifies the job's batches with the coordinator, appends those in the transaction, and
// answers the request (after the flushes and acks=all waits its batches need).
func (j *verifyJob) run() {
	b, st := j.b, j.st
	pending := make([]int, len(st.deferred))
	for i := range pending {
		pending[i] = i
	}
	for round := 1; len(pending) > 0; round++ {
		codes := b.verifyRemote(st, pending)
		var stale []int
		for k, i := range pending {
			d := &st.deferred[i]
			if codes[k] != 0 {
				d.pp.errCode = codes[k]
				b.metrics.failed(0)
				continue
			}
			d.pp.records = st.deferBuf[d.from:d.to]
			st.verified, st.verifiedMarkers = true, d.markers
			d.pp.errCode = b.produceToPartition(st, d.p, d.pp)
			st.verified = false
			d.pp.records = nil
			switch {
			case d.pp.errCode == errVerifyStale && round < maxVerifyRounds:
				d.p.mu.Lock()
				d.markers = d.p.markers
				d.p.mu.Unlock()
				stale = append(stale, i)
			case d.pp.errCode == errVerifyStale:
				d.pp.errCode = errNotEnoughReplicas
				fallthrough
			case d.pp.errCode != 0:
				b.metrics.failed(0)
			}
		}
		pending = stale
	}
	clear(st.deferred)
	st.deferred = st.deferred[:0]
	st.deferBuf = st.deferBuf[:0]
	b.flushAndAnswer(j.c, j.seq, &j.h, st)
}

// verifyRemote asks the transactional id's coordinator whether the partitions of the
// deferred batches pending (indexes into st.deferred) are in the producer's transaction; one
// produce code per pending batch.
func (b *Broker) verifyRemote(st *produceState, pending []int) []int16 {
	codes := make([]int16, len(pending))
	tps := make([]txn.TopicPartition, len(pending))
	for k, i := range pending {
		tps[k] = txn.TopicPartition{Topic: st.deferred[i].p.tp.Topic, Partition: st.deferred[i].p.tp.Partition}
	}
	d := &st.deferred[pending[0]]
	raw, err := b.verifyWithCoordinator(string(st.txnID), d.pid, d.epoch, tps)
	for k := range codes {
		if err != nil {
			codes[k] = txn.ProduceErrorCode(errNotCoordinator)
			continue
		}
		codes[k] = produceVerifyCode(raw[k])
	}
	return codes
}

// verifyWithCoordinator is KIP-890's check of tps against the producer's ongoing
// transaction, by the transactional id's coordinator wherever it is (cluster mode): locally
// when this node leads the id's __transaction_state partition, else by AddPartitionsToTxn
// v4 with verify_only. It returns the coordinator's code per partition (a top-level error
// for all of them), or an error when the coordinator could not be asked.
func (b *Broker) verifyWithCoordinator(txnID string, pid int64, epoch int16, tps []txn.TopicPartition) ([]int16, error) {
	codes := make([]int16, len(tps))
	set := func(code int16) ([]int16, error) {
		for i := range codes {
			codes[i] = code
		}
		return codes, nil
	}
	c := b.cluster
	ps, ok := c.ctl.Image().Partition(txn.TopicName, b.txn.PartitionFor(txnID))
	if !ok || ps.Leader == controller.NoLeader {
		return set(errCoordinatorNotAvailable)
	}
	if ps.Leader == c.self {
		for i, tp := range tps {
			codes[i] = b.txn.VerifyPartition(txnID, pid, epoch, tp)
		}
		return codes, nil
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(4)
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = txnID, pid, epoch, true
	byTopic := map[string]int{}
	for _, tp := range tps {
		ti, ok := byTopic[tp.Topic]
		if !ok {
			rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			rt.Topic = tp.Topic
			tx.Topics = append(tx.Topics, rt)
			ti = len(tx.Topics) - 1
			byTopic[tp.Topic] = ti
		}
		tx.Topics[ti].Partitions = append(tx.Topics[ti].Partitions, tp.Partition)
	}
	req.Transactions = append(req.Transactions, tx)
	ctx, cancel := context.WithTimeout(c.base, remoteVerifyTimeout)
	defer cancel()
	r, err := c.fwd.request(ctx, ps.Leader, req)
	if err != nil {
		b.log.Debug("transaction verification", "coordinator", ps.Leader, "err", err)
		return nil, err
	}
	resp := r.(*kmsg.AddPartitionsToTxnResponse)
	if resp.ErrorCode != 0 {
		return set(resp.ErrorCode)
	}
	got := map[txn.TopicPartition]int16{}
	for _, tr := range resp.Transactions {
		if tr.TransactionalID != txnID {
			continue
		}
		for _, t := range tr.Topics {
			for _, p := range t.Partitions {
				got[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
			}
		}
	}
	for i, tp := range tps {
		code, ok := got[tp]
		if !ok {
			code = errInvalidTxnState // the coordinator did not say: not verified
		}
		codes[i] = code
	}
	return codes, nil
}

// produceVerifyCode is a produce's code for a coordinator's verification answer: fencing
// as INVALID_PRODUCER_EPOCH (VerifyPartition's translation), then ProduceErrorCode.
func produceVerifyCode(code int16) int16 {
	if code == errProducerFenced {
		code = errInvalidProducerEpoch
	}
	return txn.ProduceErrorCode(code)
}
