package txn

// DescribeTransactions v0 (key 65, KIP-664).

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeTransactions describes each transactional id asked for
// (TransactionCoordinator.handleDescribeTransactions): its state by Kafka's name, producer id
// and epoch, timeout, the start of its running (or last) transaction (-1 before the first) and
// its partitions. An unknown id is TRANSACTIONAL_ID_NOT_FOUND, an empty one INVALID_REQUEST;
// a stopped coordinator answers COORDINATOR_NOT_AVAILABLE. With Config.PartitionOwnership, an
// id whose partition is not elected here is NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS while
// it loads).
func (c *Coordinator) DescribeTransactions(req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := kmsg.NewPtrDescribeTransactionsResponse()
	resp.Version = req.Version
	for _, id := range req.TransactionalIDs {
		resp.TransactionStates = append(resp.TransactionStates, c.describe(id))
	}
	return resp
}

func (c *Coordinator) describe(id string) kmsg.DescribeTransactionsResponseTransactionState {
	out := kmsg.NewDescribeTransactionsResponseTransactionState()
	out.TransactionalID = id
	switch {
	case c.closed.Load():
		out.ErrorCode = errCoordinatorNotAvailable
		return out
	case id == "":
		out.ErrorCode = errInvalidRequest
		return out
	}
	c.mu.RLock()
	out.ErrorCode = c.statusLocked(id)
	t := c.txns[id]
	var m meta
	if t != nil {
		m = t.meta
	}
	c.mu.RUnlock()
	if out.ErrorCode != 0 {
		return out
	}
	if t == nil {
		out.ErrorCode = errTransactionalIDNotFound
		return out
	}
	out.State = m.state.String()
	out.ProducerID, out.ProducerEpoch = m.producerID, m.producerEpoch
	out.TimeoutMillis, out.StartTimestamp = m.timeoutMs, m.startMs
	for _, tp := range sortedPartitions(m.partitions) {
		if n := len(out.Topics); n == 0 || out.Topics[n-1].Topic != tp.Topic {
			rt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			rt.Topic = tp.Topic
			out.Topics = append(out.Topics, rt)
		}
		rt := &out.Topics[len(out.Topics)-1]
		rt.Partitions = append(rt.Partitions, tp.Partition)
	}
	return out
}
