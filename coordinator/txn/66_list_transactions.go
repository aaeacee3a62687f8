package txn

// ListTransactions v0–v1 (key 66, KIP-664; v1 adds DurationFilterMillis, KIP-994). v2's
// TransactionalIDPattern (KIP-1152) is not applied.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListTransactions lists the transactional ids of this node
// (TransactionStateManager.listTransactionStates), sorted by id: those whose state is one of
// StateFilters (by Kafka's names; unknown names come back in UnknownStateFilters and match
// nothing), whose
// producer id is one of ProducerIDFilters, and (v1+, DurationFilterMillis >= 0) whose
// transaction started more than that long ago — an id with no transaction yet has start -1
// and always passes, as in Kafka. Empty filters match everything. A coordinator that does not
// have the topic lists nothing; one loading it answers COORDINATOR_LOAD_IN_PROGRESS, a stopped
// one COORDINATOR_NOT_AVAILABLE. With Config.PartitionOwnership, the ids of the partitions
// served here, and COORDINATOR_LOAD_IN_PROGRESS while one elected here loads (Kafka's
// listTransactionStates).
func (c *Coordinator) ListTransactions(req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := kmsg.NewPtrListTransactionsResponse()
	resp.Version = req.Version
	switch {
	case c.closed.Load():
		resp.ErrorCode = errCoordinatorNotAvailable
		return resp
	case c.loading.Load():
		resp.ErrorCode = errCoordinatorLoadInProgress
		return resp
	}
	// As Kafka, a non-empty StateFilters filters even when none of its names is known: a
	// filter of unknown names only matches nothing.
	var states [numStates]bool
	anyState := len(req.StateFilters) > 0
	for _, name := range req.StateFilters {
		if s, ok := stateByName(name); ok {
			states[s] = true
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	pids := make(map[int64]bool, len(req.ProducerIDFilters))
	for _, pid := range req.ProducerIDFilters {
		pids[pid] = true
	}
	duration := int64(-1)
	if req.Version >= 1 {
		duration = req.DurationFilterMillis
	}
	now := c.now()
	c.mu.RLock()
	if c.cfg.PartitionOwnership && c.loadingLocked() {
		c.mu.RUnlock()
		resp.ErrorCode, resp.UnknownStateFilters = errCoordinatorLoadInProgress, nil
		return resp
	}
	for _, t := range c.txns {
		switch {
		case t.state == Dead:
		case len(pids) > 0 && !pids[t.producerID]:
		case anyState && !states[t.state]:
		case duration >= 0 && now-t.startMs <= duration:
		default:
			s := kmsg.NewListTransactionsResponseTransactionState()
			s.TransactionalID, s.ProducerID, s.TransactionState = t.id, t.producerID, t.state.String()
			resp.TransactionStates = append(resp.TransactionStates, s)
		}
	}
	c.mu.RUnlock()
	sort.Slice(resp.TransactionStates, func(i, j int) bool {
		return resp.TransactionStates[i].TransactionalID < resp.TransactionStates[j].TransactionalID
	})
	return resp
}
