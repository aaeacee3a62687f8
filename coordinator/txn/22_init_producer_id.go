package txn

// InitProducerId v0–v5 (key 22). v3+ carries the producer id and epoch the client last had
// (KIP-360), v4+ may answer PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH below).

import (
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerID handles InitProducerId (TransactionCoordinator.handleInitProducerId).
//
// Without a transactional id the answer is a fresh producer id at epoch 0. With one: an empty
// id is INVALID_REQUEST; a timeout <= 0 or above transaction.max.timeout.ms is
// INVALID_TRANSACTION_TIMEOUT; a new id gets a fresh producer id at epoch 0; an existing one
// gets its epoch bumped (a new producer id at epoch 0 once the epoch is exhausted) unless
//   - its transaction is completing (Prepare*): CONCURRENT_TRANSACTIONS;
//   - its transaction is Ongoing: the transaction is aborted with the epoch bumped, fencing
//     the producer that ran it, and the caller gets CONCURRENT_TRANSACTIONS to retry;
//   - the request carries a producer id and epoch (KIP-360) that are neither the current ones
//     nor, right after a bump, the previous ones (then the same answer is given again):
//     PRODUCER_FENCED.
func (c *Coordinator) InitProducerID(req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.Version = req.Version
	resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
	if req.TransactionalID == nil {
		pid, err := c.host.NewProducerID()
		if err != nil {
			c.log.Warn("allocate producer id", "err", err)
			resp.ErrorCode = errCoordinatorNotAvailable
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = pid, 0
		return resp
	}
	var expected *producerIDAndEpoch
	if req.Version >= 3 {
		switch {
		case req.ProducerID == noProducerID && req.ProducerEpoch == noProducerEpoch:
		case req.ProducerID == noProducerID || req.ProducerEpoch == noProducerEpoch:
			resp.ErrorCode = errInvalidRequest // KafkaApis: one without the other
			return resp
		default:
			expected = &producerIDAndEpoch{req.ProducerID, req.ProducerEpoch}
		}
	}
	code, pid, epoch := c.initProducerID(*req.TransactionalID, req.TransactionTimeoutMillis, expected)
	resp.ErrorCode = fencedCode(code, req.Version, 4)
	if code == 0 {
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
	}
	return resp
}

type producerIDAndEpoch struct {
	producerID int64
	epoch      int16
}

func (c *Coordinator) initProducerID(id string, timeoutMs int32, expected *producerIDAndEpoch) (int16, int64, int16) {
	switch {
	case id == "":
		return errInvalidRequest, 0, 0
	case timeoutMs <= 0 || int64(timeoutMs) > c.cfg.TransactionMaxTimeoutMs:
		return errInvalidTransactionTimeout, 0, 0
	}
	if code := c.enter(id); code != 0 {
		return code, 0, 0
	}
	defer c.wg.Done()
	t, code := c.lockOrCreate(id, timeoutMs)
	if code != 0 {
		return code, 0, 0
	}
	if expected != nil && !validProducerID(&t.meta, *expected) {
		t.mu.Unlock()
		return errProducerFenced, 0, 0
	}
	now := c.now()
	var next meta
	switch t.state {
	case PrepareCommit, PrepareAbort:
		t.mu.Unlock()
		return errConcurrentTransactions, 0, 0
	case Ongoing:
		// Fence: abort with the epoch bumped; that epoch is never handed out, the caller
		// retries and bumps again (a new producer id if this exhausted the epochs).
		next = fenceMeta(t.meta, now)
		if code := c.persist(t, &next); code != 0 {
			t.mu.Unlock()
			return code, 0, 0
		}
		c.install(t, next)
		t.mu.Unlock()
		c.log.Info("aborting ongoing transaction to initialize a new producer", "transactional_id", id, "producer_id", next.producerID, "epoch", next.producerEpoch)
		c.finish(t, next)
		return errConcurrentTransactions, 0, 0
	case Empty, CompleteCommit, CompleteAbort:
		var code int16
		if next, code = c.initMeta(t, timeoutMs, expected, now); code != 0 {
			t.mu.Unlock()
			return code, 0, 0
		}
	default:
		panic("BUG: transactional id " + id + " in state " + t.state.String())
	}
	defer t.mu.Unlock()
	if code := c.persist(t, &next); code != 0 {
		return code, 0, 0
	}
	c.install(t, next)
	return 0, next.producerID, next.producerEpoch
}

// initMeta is the state an InitProducerId gives an id with no transaction running: the epoch
// bumped, or a new producer id once the epoch is exhausted (and the request, if it names an
// epoch, names the current one). Caller holds t.mu.
func (c *Coordinator) initMeta(t *txn, timeoutMs int32, expected *producerIDAndEpoch, now int64) (meta, int16) {
	if !epochExhausted(t.producerEpoch) || expected != nil && expected.epoch != t.producerEpoch {
		return bumpMeta(t.meta, timeoutMs, expected, now)
	}
	pid, err := c.host.NewProducerID()
	if err != nil {
		c.log.Warn("allocate producer id", "transactional_id", t.id, "err", err)
		return t.meta, errCoordinatorNotAvailable
	}
	return rotateMeta(t.meta, pid, timeoutMs, now, expected != nil), 0
}

// validProducerID is prepareInitProducerIdTransit.isValidProducerId: a KIP-360 request is
// fenced unless the id was just created, its producer id is the current one (the epoch is
// checked by bumpMeta), or it is the previous one with an exhausted epoch (a retry of a
// rotation whose answer was lost).
func validProducerID(m *meta, expected producerIDAndEpoch) bool {
	return m.producerEpoch == noProducerEpoch ||
		expected.producerID == m.producerID ||
		expected.producerID == m.lastProducerID && epochExhausted(expected.epoch)
}

// bumpMeta is TransactionMetadata.prepareIncrementProducerEpoch.
// An exhausted epoch is never bumped (initMeta rotates instead), but a retry may still meet it.
func bumpMeta(m meta, timeoutMs int32, expected *producerIDAndEpoch, now int64) (meta, int16) {
	epoch, last := m.producerEpoch+1, noProducerEpoch
	switch {
	case expected == nil:
		// A fresh InitProducerId: bump.
	case m.producerEpoch == noProducerEpoch || expected.epoch == m.producerEpoch:
		last = m.producerEpoch // the producer continues after an error: bump, remember
	case expected.epoch == m.lastProducerEpoch:
		epoch, last = m.producerEpoch, m.lastProducerEpoch // a retry of a bump: same answer
	default:
		return m, errProducerFenced
	}
	if epoch != m.producerEpoch && epochExhausted(m.producerEpoch) {
		panic("BUG: bumping an exhausted producer epoch")
	}
	next := m
	next.lastProducerID = m.producerID
	next.producerEpoch, next.lastProducerEpoch = epoch, last
	next.timeoutMs, next.state = timeoutMs, Empty
	next.partitions, next.startMs, next.updateMs = nil, -1, now
	return next, 0
}

// rotateMeta is TransactionMetadata.prepareProducerIdRotation: a new producer id at epoch 0;
// for a KIP-360 request the previous epoch is kept so that a retry gets the same answer.
func rotateMeta(m meta, pid int64, timeoutMs int32, now int64, recordLastEpoch bool) meta {
	next := m
	next.producerID, next.lastProducerID = pid, m.producerID
	next.producerEpoch, next.lastProducerEpoch = 0, noProducerEpoch
	if recordLastEpoch {
		next.lastProducerEpoch = m.producerEpoch
	}
	next.timeoutMs, next.state = timeoutMs, Empty
	next.partitions, next.startMs, next.updateMs = nil, -1, now
	return next
}

// fenceMeta is prepareFenceProducerEpoch followed by the abort endTransaction makes of it:
// PrepareAbort at the next epoch, forgetting the previous epoch so that no retry passes.
// At epoch 32767 (never reached by a client: InitProducerId rotates at 32766) the epoch stays.
func fenceMeta(m meta, now int64) meta {
	next := m
	if next.producerEpoch < math.MaxInt16 {
		next.producerEpoch++
	}
	next.lastProducerEpoch = noProducerEpoch
	next.state, next.updateMs = PrepareAbort, now
	return next
}
