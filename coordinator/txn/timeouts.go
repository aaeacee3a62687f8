package txn

import (
	"time"
)

// timerLoop aborts timed-out transactions every
// transaction.abort.timed.out.transaction.cleanup.interval.ms and removes expired
// transactional ids every transaction.remove.expired.transaction.cleanup.interval.ms.
func (c *Coordinator) timerLoop() {
	defer c.wg.Done()
	abort := time.NewTicker(time.Duration(c.cfg.AbortTimedOutTransactionsIntervalMs) * time.Millisecond)
	defer abort.Stop()
	expire := time.NewTicker(time.Duration(c.cfg.RemoveExpiredTransactionalIDsIntervalMs) * time.Millisecond)
	defer expire.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-abort.C:
			c.AbortTimedOutTransactions()
		case <-expire.C:
			c.RemoveExpiredTransactionalIDs()
		}
	}
}

// AbortTimedOutTransactions aborts every Ongoing transaction that began more than its
// timeout ago (TransactionCoordinator.abortTimedOutTransactions): as an InitProducerId would,
// it records PrepareAbort with the epoch bumped, so the producer that ran it is fenced
// (PRODUCER_FENCED on its next request), and writes the abort markers in the background. It
// returns the number of transactions aborted.
func (c *Coordinator) AbortTimedOutTransactions() int {
	if !c.active() {
		return 0
	}
	now := c.now()
	var due []*txn
	c.mu.RLock()
	for _, t := range c.txns {
		if t.timedOutLocked(now) {
			due = append(due, t)
		}
	}
	c.mu.RUnlock()
	aborted := 0
	for _, t := range due {
		if c.abortTimedOut(t, now) {
			aborted++
		}
	}
	return aborted
}

// timedOutLocked is TransactionStateManager.timedOutTransactions' test. Caller holds c.mu or
// t.mu.
func (t *txn) timedOutLocked(now int64) bool {
	return t.state == Ongoing && t.startMs+int64(t.timeoutMs) < now
}

func (c *Coordinator) abortTimedOut(t *txn, now int64) bool {
	if c.enter(t.id) != 0 {
		return false
	}
	defer c.wg.Done()
	t.mu.Lock()
	if t.state == Dead || t.gone.Load() || !t.timedOutLocked(now) {
		t.mu.Unlock() // ended meanwhile
		return false
	}
	next := fenceMeta(t.meta, c.now())
	code := c.persist(t, &next)
	if code == 0 {
		c.install(t, next)
	}
	t.mu.Unlock()
	if code != 0 {
		return false // tried again at the next interval
	}
	c.metrics.timedOut.Inc()
	c.log.Info("aborting timed out transaction", "transactional_id", t.id, "producer_id", next.producerID, "epoch", next.producerEpoch, "timeout_ms", next.timeoutMs)
	c.goFinish(t, next)
	return true
}

// RemoveExpiredTransactionalIDs forgets the transactional ids with no transaction running
// (Empty, CompleteCommit, CompleteAbort) whose last change is at least
// transactional.id.expiration.ms old (TransactionStateManager.removeExpiredTransactionalIds):
// a tombstone for each goes to the log, then the id leaves the coordinator. It returns the
// number of ids removed.
func (c *Coordinator) RemoveExpiredTransactionalIDs() int {
	if !c.active() {
		return 0
	}
	now := c.now()
	var due []*txn
	c.mu.RLock()
	for _, t := range c.txns {
		if t.expiredLocked(now, c.cfg.TransactionalIDExpirationMs) {
			due = append(due, t)
		}
	}
	c.mu.RUnlock()
	removed := 0
	for _, t := range due {
		if c.expire(t, now) {
			removed++
		}
	}
	if removed > 0 {
		c.log.Info("removed expired transactional ids", "removed", removed)
	}
	return removed
}

// expiredLocked is TransactionStateManager.shouldExpire. Caller holds c.mu or t.mu.
func (t *txn) expiredLocked(now, expirationMs int64) bool {
	return t.state.expirable() && t.updateMs <= now-expirationMs
}

func (c *Coordinator) expire(t *txn, now int64) bool {
	if c.enter(t.id) != 0 {
		return false
	}
	defer c.wg.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == Dead || t.gone.Load() || !t.expiredLocked(now, c.cfg.TransactionalIDExpirationMs) {
		return false // used meanwhile
	}
	if code := c.persist(t, nil); code != 0 {
		return false
	}
	c.kill(t)
	c.metrics.expired.Inc()
	return true
}
