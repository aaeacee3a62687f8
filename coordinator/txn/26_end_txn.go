package txn

// EndTxn v0–v5 (key 26). v2+ may answer PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH
// below). v5 answers the producer id and epoch (KIP-890 part 2); as transaction version 1
// does not bump the epoch per transaction, they are the current ones.

import "github.com/twmb/franz-go/pkg/kmsg"

// EndTxn handles EndTxn (TransactionCoordinator.endTransaction from a client). An Ongoing
// transaction becomes PrepareCommit or PrepareAbort in the log, its markers are written, and
// CompleteCommit or CompleteAbort is recorded; the answer comes once the markers are written,
// so the producer's next transaction does not meet CONCURRENT_TRANSACTIONS (Kafka answers
// after the Prepare record and writes the markers afterwards). If the coordinator stops
// before the markers are written the answer is still 0: the outcome is in the log and the
// next start writes them.
//
// Otherwise: an unknown id or another producer id is INVALID_PRODUCER_ID_MAPPING, another
// epoch PRODUCER_FENCED; a retry of the EndTxn that completed the transaction (same result)
// is 0, and of one still completing CONCURRENT_TRANSACTIONS; the other result, or any EndTxn
// with no transaction running (Empty), is INVALID_TXN_STATE.
func (c *Coordinator) EndTxn(req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := kmsg.NewPtrEndTxnResponse()
	resp.Version = req.Version
	code, m := c.endTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
	resp.ErrorCode = fencedCode(code, req.Version, 2)
	if code == 0 && req.Version >= 5 {
		resp.ProducerID, resp.ProducerEpoch = m.producerID, m.producerEpoch
	}
	return resp
}

func (c *Coordinator) endTxn(id string, pid int64, epoch int16, commit bool) (int16, meta) {
	if id == "" {
		return errInvalidRequest, meta{}
	}
	if code := c.enter(id); code != 0 {
		return code, meta{}
	}
	defer c.wg.Done()
	t := c.lockTxn(id)
	if t == nil {
		if code := c.statusFor(id); code != 0 {
			return code, meta{}
		}
		return errInvalidProducerIDMapping, meta{}
	}
	if code := t.producerLocked(pid, epoch); code != 0 {
		t.mu.Unlock()
		return code, meta{}
	}
	m := t.meta
	if m.state != Ongoing {
		t.mu.Unlock()
		return endTxnStateCode(m.state, commit), m
	}
	next := m
	next.state, next.updateMs = PrepareAbort, c.now()
	if commit {
		next.state = PrepareCommit
	}
	code := c.persist(t, &next)
	if code == 0 {
		c.install(t, next)
	}
	t.mu.Unlock()
	if code != 0 {
		return code, meta{}
	}
	c.finish(t, next)
	return 0, next
}

// endTxnStateCode is endTransaction's answer for a transaction that is not Ongoing.
func endTxnStateCode(s State, commit bool) int16 {
	switch {
	case s == CompleteCommit && commit, s == CompleteAbort && !commit:
		return 0 // a retry of the EndTxn that completed it
	case s == PrepareCommit && commit, s == PrepareAbort && !commit:
		return errConcurrentTransactions
	}
	return errInvalidTxnState
}
