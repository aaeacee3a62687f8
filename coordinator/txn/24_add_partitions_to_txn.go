package txn

// AddPartitionsToTxn v0–v5 (key 24). v0–v3: one transaction, its fields at the top level and
// its results in Topics; v2+ may answer PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH
// below). v4+ (KIP-890 part 1): a batch of transactions, results in Transactions, each
// possibly VerifyOnly (a broker asking whether partitions are already in the transaction).
// v5 only adds an error code (TRANSACTION_ABORTABLE) that transaction version 1 never uses.

import "github.com/twmb/franz-go/pkg/kmsg"

// AddPartitionsToTxn handles AddPartitionsToTxn (KafkaApis.handleAddPartitionsToTxnRequest).
// If any partition does not exist, nothing is added: those get UNKNOWN_TOPIC_OR_PARTITION,
// the others OPERATION_NOT_ATTEMPTED. Otherwise every partition gets the transaction's code
// (addPartitions), or, for VerifyOnly, 0 when it is in the transaction and INVALID_TXN_STATE
// when not. A transaction's added partitions are in the log before the answer.
func (c *Coordinator) AddPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	resp.Version = req.Version
	if req.Version < 4 {
		var tps []TopicPartition
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{t.Topic, p})
			}
		}
		tps, codes := c.addPartitionsTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, tps, false, req.Version)
		for i, tp := range tps {
			if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != tp.Topic {
				rt := kmsg.NewAddPartitionsToTxnResponseTopic()
				rt.Topic = tp.Topic
				resp.Topics = append(resp.Topics, rt)
			}
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = tp.Partition, codes[i]
			rt := &resp.Topics[len(resp.Topics)-1]
			rt.Partitions = append(rt.Partitions, rp)
		}
		return resp
	}
	for _, tx := range req.Transactions {
		var tps []TopicPartition
		for _, t := range tx.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{t.Topic, p})
			}
		}
		tps, codes := c.addPartitionsTxn(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tps, tx.VerifyOnly, req.Version)
		out := kmsg.NewAddPartitionsToTxnResponseTransaction()
		out.TransactionalID = tx.TransactionalID
		for i, tp := range tps {
			if n := len(out.Topics); n == 0 || out.Topics[n-1].Topic != tp.Topic {
				rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
				rt.Topic = tp.Topic
				out.Topics = append(out.Topics, rt)
			}
			rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
			rp.Partition, rp.ErrorCode = tp.Partition, codes[i]
			rt := &out.Topics[len(out.Topics)-1]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Transactions = append(resp.Transactions, out)
	}
	return resp
}

// addPartitionsTxn answers one transaction of a request: the partitions asked for, without
// duplicates and grouped by topic in request order, and a code for each.
func (c *Coordinator) addPartitionsTxn(id string, pid int64, epoch int16, asked []TopicPartition, verifyOnly bool, version int16) ([]TopicPartition, []int16) {
	tps := groupByTopic(asked)
	codes := make([]int16, len(tps))
	missing := false
	for i, tp := range tps {
		if !c.host.PartitionExists(tp.Topic, tp.Partition) {
			codes[i], missing = errUnknownTopicOrPartition, true
		}
	}
	switch {
	case missing:
		for i := range codes {
			if codes[i] == 0 {
				codes[i] = errOperationNotAttempted
			}
		}
	case verifyOnly:
		c.verifyPartitions(id, pid, epoch, tps, codes)
	default:
		code := fencedCode(c.addPartitions(id, pid, epoch, tps), version, 2)
		for i := range codes {
			codes[i] = code
		}
	}
	return tps, codes
}

// groupByTopic returns tps without duplicates, each topic's partitions together, topics in
// the order they first appear.
func groupByTopic(tps []TopicPartition) []TopicPartition {
	seen := make(map[TopicPartition]bool, len(tps))
	byTopic := map[string][]int32{}
	var topics []string
	for _, tp := range tps {
		if seen[tp] {
			continue
		}
		seen[tp] = true
		if _, ok := byTopic[tp.Topic]; !ok {
			topics = append(topics, tp.Topic)
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	out := make([]TopicPartition, 0, len(seen))
	for _, t := range topics {
		for _, p := range byTopic[t] {
			out = append(out, TopicPartition{t, p})
		}
	}
	return out
}

// addPartitions is TransactionCoordinator.handleAddPartitionsToTransaction: the producer id
// and epoch must be the id's (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED); a transaction
// completing is CONCURRENT_TRANSACTIONS; partitions already in an Ongoing transaction are 0
// at once; otherwise the transaction becomes Ongoing with the partitions added (starting its
// clock when it was not running) and that is in the log before the answer.
func (c *Coordinator) addPartitions(id string, pid int64, epoch int16, tps []TopicPartition) int16 {
	if id == "" {
		return errInvalidRequest
	}
	if code := c.enter(id); code != 0 {
		return code
	}
	defer c.wg.Done()
	t := c.lockTxn(id)
	if t == nil {
		if code := c.statusFor(id); code != 0 {
			return code
		}
		return errInvalidProducerIDMapping
	}
	defer t.mu.Unlock()
	if code := t.verdictLocked(pid, epoch); code != 0 {
		return code
	}
	if t.state == Ongoing && containsAll(t.partitions, tps) {
		return 0
	}
	now := c.now()
	begins := t.state != Ongoing
	next := t.meta
	next.state, next.updateMs = Ongoing, now
	next.partitions = withPartitions(t.partitions, tps)
	if begins {
		next.startMs = now
	}
	if code := c.persist(t, &next); code != 0 {
		return code
	}
	c.install(t, next)
	if begins {
		c.metrics.started.Inc()
	}
	return 0
}
