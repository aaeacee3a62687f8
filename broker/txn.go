package broker

// Wiring of the transaction coordinator (package coordinator/txn): the Host through which it
// reaches __transaction_state, allocates producer ids and writes markers, its start and stop,
// and the produce-path check that a transactional batch belongs to an ongoing transaction
// (KIP-890 part 1, Kafka's transaction.partition.verification.enable=true).
//
// __transaction_state is created on the first FindCoordinator for a transactional id, with
// transaction.state.log.num.partitions partitions, cleanup.policy=compact. Clients may read
// it; they may not produce to it.

import (
	"fmt"
	"strconv"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/coordinator/txn"
	"github.com/spate-broker/spate/logstore"
)

// txnHost is the transaction coordinator's view of the broker.
type txnHost struct{ b *Broker }

func (h txnHost) StateTopic(create bool, partitions int32) (int32, error) {
	tm := h.b.topics
	t := tm.get(txn.TopicName)
	if t == nil && create {
		configs := map[string]string{
			"cleanup.policy":      "compact",
			"compression.type":    "uncompressed",
			"min.insync.replicas": "1",
			"segment.bytes":       strconv.FormatInt(h.b.cfg.TxnStateSegmentBytes, 10),
		}
		if h.b.cfg.TxnStateSegmentBytes <= 0 {
			delete(configs, "segment.bytes")
		}
		created, code, msg := tm.create(txn.TopicName, partitions, configs, false)
		switch {
		case code == errTopicAlreadyExists:
			t = tm.get(txn.TopicName)
		case code != 0:
			return 0, fmt.Errorf("create %s: %s (kafka error %d)", txn.TopicName, msg, code)
		default:
			t = created
		}
	}
	if t == nil {
		return 0, nil
	}
	return int32(len(t.partitions)), nil
}

func (h txnHost) StateLog(p int32) *logstore.Log {
	if part := h.b.topics.partition(txn.TopicName, p); part != nil {
		return part.log
	}
	return nil
}

func (h txnHost) AppendState(p int32, batch []byte) error {
	return h.b.appendInternal(txn.TopicName, p, batch)
}

func (h txnHost) NewProducerID() (int64, error) { return h.b.pids.allocate() }

func (h txnHost) WriteMarkers(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, parts []txn.TopicPartition) []int16 {
	codes := make([]int16, len(parts))
	remote := map[int32][]int{} // cluster mode: leader -> indexes of its partitions
	for i, tp := range parts {
		p := h.b.topics.partition(tp.Topic, tp.Partition)
		if c := h.b.cluster; c != nil && (p == nil || !p.isLeader()) {
			ps, ok := c.ctl.Image().Partition(tp.Topic, tp.Partition)
			switch {
			case !ok:
				codes[i] = errUnknownTopicOrPartition
			case ps.Leader == controller.NoLeader || ps.Leader == c.self:
				codes[i] = errNotLeaderOrFollower // retried by the coordinator
			default:
				remote[ps.Leader] = append(remote[ps.Leader], i)
			}
			continue
		}
		if p == nil {
			codes[i] = errUnknownTopicOrPartition
			continue
		}
		codes[i] = p.writeMarker(producerID, epoch, commit, coordinatorEpoch)
	}
	for leader, idx := range remote {
		h.b.cluster.sendMarkers(leader, producerID, epoch, commit, coordinatorEpoch, parts, idx, codes)
	}
	return codes
}

func (h txnHost) PartitionExists(topic string, partition int32) bool {
	return h.b.topics.partition(topic, partition) != nil
}

func (h txnHost) OffsetsPartitionFor(group string) (txn.TopicPartition, bool) {
	if h.b.groups == nil || h.b.groups.Ensure() != 0 {
		return txn.TopicPartition{}, false
	}
	return txn.TopicPartition{Topic: coordinator.OffsetsTopic, Partition: h.b.groups.PartitionFor(group)}, true
}

// appendInternal appends one batch, written by a coordinator, to a partition of an internal
// topic as its leader, keeping the partition's producer state (transactional offset commits
// are transactions on __consumer_offsets) and waking parked fetches.
func (b *Broker) appendInternal(topic string, partition int32, batch []byte) error {
	part := b.topics.partition(topic, partition)
	if part == nil {
		return &logstore.Error{Code: errUnknownTopicOrPartition, Msg: fmt.Sprintf("%s-%d does not exist", topic, partition)}
	}
	if !part.isLeader() {
		return &logstore.Error{Code: errNotLeaderOrFollower, Msg: fmt.Sprintf("%s-%d is not led here", topic, partition)}
	}
	var info logstore.AppendInfo
	var h logstore.BatchHeader
	logstore.ParseBatchHeader(batch, &h)
	part.mu.Lock()
	began := part.maybeBeginTxnLocked(&h)
	err := part.log.AppendAsLeader(batch, part.leaderEpoch.Load(), false, &info)
	if err == nil {
		part.recordBatchLocked(&h, info.FirstOffset, info.LastOffset, info.MaxTimestamp)
	} else if began {
		part.endTxnLocked(h.ProducerID)
	}
	part.mu.Unlock()
	if err != nil {
		return err
	}
	if info.FlushNeeded {
		if err := part.log.Sync(); err != nil {
			return err
		}
	}
	part.wake()
	if code := part.awaitCommitted(info.LastOffset + 1); code != 0 {
		return &logstore.Error{Code: code, Msg: fmt.Sprintf("%s-%d: not replicated", topic, partition)}
	}
	return nil
}

// verifyTxnProduceLocked checks a transactional batch against its transaction (the caller
// holds p.mu, so a marker cannot slip between the check and the append). A transaction
// already ongoing on the partition at this epoch needs no check. In cluster mode, when the
// transactional id's coordinator is on another node, the answer is errVerifyRemote: the
// batch is verified there, off the event loop, before it is appended (txn_verify.go); once
// verified (st.verified) it passes.
func (b *Broker) verifyTxnProduceLocked(st *produceState, p *partition, h *logstore.BatchHeader) int16 {
	if !st.txn || h.ProducerID < 0 {
		return errTransactionalIDAuthFailed
	}
	if b.txn == nil {
		return errNotCoordinator
	}
	if _, ongoing := p.txns[h.ProducerID]; ongoing {
		if st := p.producers[h.ProducerID]; st != nil && st.Epoch == h.ProducerEpoch {
			return 0
		}
	}
	if b.cluster != nil && !b.txn.Owns(b.txn.PartitionFor(string(st.txnID))) {
		switch {
		case !st.verified:
			return errVerifyRemote
		case p.markers != st.verifiedMarkers:
			// A marker came after the verification was asked for: the transaction may
			// have ended since (Kafka's VerificationGuard). Verify again.
			return errVerifyStale
		}
		return 0
	}
	code := b.txn.VerifyPartition(string(st.txnID), h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: p.tp.Topic, Partition: p.tp.Partition})
	return txn.ProduceErrorCode(code)
}

// startTxn starts the transaction coordinator, loading __transaction_state when it exists.
func (b *Broker) startTxn() error {
	c, err := txn.New(b.cfg.Txn, txnHost{b}, b.log.With("component", "txn"), b.metrics.set)
	if err != nil {
		return fmt.Errorf("transaction coordinator: %w", err)
	}
	b.txn = c
	return nil
}
