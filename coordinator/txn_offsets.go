package coordinator

// Transactional offset commits (KIP-98, KIP-447): TxnOffsetCommit writes offsets into
// __consumer_offsets as part of a producer's transaction — a transactional batch under the
// producer's id and epoch. They stay pending, invisible to OffsetFetch, until the
// transaction's marker reaches the group's partition (CompleteTxn): a commit installs them, an
// abort drops them. Loading replays the same rule from the log (storage.go).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// TxnOffsetCommit handles TxnOffsetCommit v0–v4. The broker has already checked, with the
// transaction coordinator, that the group's offsets partition is in the producer's ongoing
// transaction. It returns once the offsets are in the log.
//
// Rules (Kafka's validateOffsetCommit with isTransactional): an unknown topic or partition is
// UNKNOWN_TOPIC_OR_PARTITION; a commit without generation, member and instance (v0–v2
// producers, or a producer outside the group) is accepted in any state; otherwise the member
// must be the group's (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) in its generation
// (ILLEGAL_GENERATION). A group completing a rebalance does not refuse a transactional commit.
func (c *Coordinator) TxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	codes := make([][]int16, len(req.Topics))
	valid := 0
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
		n := c.host.PartitionCount(t.Topic)
		for j, p := range t.Partitions {
			if p.Partition < 0 || p.Partition >= n {
				codes[i][j] = errUnknownTopicOrPartition
			} else {
				valid++
			}
		}
	}
	if code := c.commitTxnOffsets(req, codes, valid); code != 0 {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	for i, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *Coordinator) commitTxnOffsets(req *kmsg.TxnOffsetCommitRequest, codes [][]int16, valid int) int16 {
	if code := c.status(req.Group); code != 0 {
		return code
	}
	g, code := c.lockGroup(req.Group, true)
	if code != 0 {
		return code
	}
	defer g.unlock()
	if code := g.validateTxnOffsetCommit(req); code != 0 {
		return code
	}
	if valid == 0 {
		return 0
	}
	now := nowMs()
	pending := map[topicPartition]*offset{}
	var recs []logstore.Record
	for i, t := range req.Topics {
		for j, p := range t.Partitions {
			if codes[i][j] != 0 {
				continue
			}
			md := ""
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if len(md) > g.c.cfg.OffsetMetadataMaxBytes {
				codes[i][j] = errOffsetMetadataTooLarge
				continue
			}
			o := &offset{offset: p.Offset, leaderEpoch: -1, metadata: md, commitMs: now, expireMs: -1}
			if req.Version >= 2 {
				o.leaderEpoch = p.LeaderEpoch
			}
			tp := topicPartition{t.Topic, p.Partition}
			pending[tp] = o
			recs = append(recs, logstore.Record{Key: offsetKey(g.id, tp), Value: offsetValue(o)})
		}
	}
	if len(recs) == 0 {
		return 0
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{
		Attributes:    logstore.AttrTransactional,
		BaseTimestamp: now, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, BaseSequence: -1, Records: recs,
	})
	if err := c.host.AppendOffsets(g.partition, batch); err != nil {
		c.log.Warn("store transactional offsets", "group", g.id, "err", err)
		return appendErrorCode(err)
	}
	m := g.pendingTxn[req.ProducerID]
	if m == nil {
		m = map[topicPartition]*offset{}
		g.pendingTxn[req.ProducerID] = m
	}
	for tp, o := range pending {
		m[tp] = o
	}
	c.mu.Lock()
	if !g.gone.Load() { // an unloaded group's entries were dropped with it
		c.addTxnGroupLocked(req.ProducerID, g.id)
	}
	c.mu.Unlock()
	return 0
}

// validateTxnOffsetCommit checks the committing member (v3+ carries generation, member and
// instance ids). Caller holds g.mu.
func (g *group) validateTxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest) int16 {
	generation, memberID, instanceID := req.Generation, req.MemberID, req.InstanceID
	if req.Version < 3 {
		generation, memberID, instanceID = -1, "", nil
	}
	if generation < 0 && memberID == "" && instanceID == nil {
		return 0
	}
	if g.cg != nil {
		code := g.validateConsumerCommit(9, generation, memberID)
		if code == errStaleMemberEpoch {
			code = errIllegalGeneration // TxnOffsetCommit has no STALE_MEMBER_EPOCH
		}
		return code
	}
	if code := g.validateMember(memberID, instanceID); code != 0 {
		return code
	}
	if generation != g.generation {
		return errIllegalGeneration
	}
	return 0
}

// addTxnGroup notes that group id holds pending offsets of producer pid.
func (c *Coordinator) addTxnGroup(pid int64, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addTxnGroupLocked(pid, id)
}

func (c *Coordinator) addTxnGroupLocked(pid int64, id string) {
	if c.txnGroups[pid] == nil {
		c.txnGroups[pid] = map[string]bool{}
	}
	c.txnGroups[pid][id] = true
}

// CompleteTxn applies a marker the broker has just written to partition of __consumer_offsets
// for producer pid: the pending offsets of that producer in the partition's groups are
// installed (commit) or dropped (abort). Any goroutine may call it; it must be called after
// the marker is in the log. With Config.PartitionOwnership, it does nothing for a partition
// not elected here, and one still loading applies it before its groups are served.
func (c *Coordinator) CompleteTxn(partition int32, pid int64, commit bool) {
	c.mu.Lock()
	if c.cfg.PartitionOwnership {
		st := c.elections.ElectionLocked(partition)
		switch {
		case st == nil:
			c.mu.Unlock()
			return
		case !st.LoadedLocked():
			st.Data = append(st.Data, txnCompletion{pid, commit})
			c.mu.Unlock()
			return
		}
	}
	var ids []string
	for id := range c.txnGroups[pid] {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		g, code := c.lockGroup(id, false)
		if g == nil {
			if code == 0 {
				c.dropTxnGroup(pid, id)
			}
			continue
		}
		if g.partition != partition {
			g.unlock()
			continue
		}
		g.completeTxnLocked(pid, commit)
		g.unlock()
		c.dropTxnGroup(pid, id)
	}
}

// completeTxnLocked installs (commit) or drops (abort) the pending offsets of producer pid.
// Caller holds g.mu.
func (g *group) completeTxnLocked(pid int64, commit bool) {
	if commit {
		for tp, o := range g.pendingTxn[pid] {
			if g.offsets[tp] == nil {
				g.c.metrics.offsets.Add(1)
			}
			g.offsets[tp] = o
		}
		g.c.metrics.commits.Add(len(g.pendingTxn[pid]))
	}
	delete(g.pendingTxn, pid)
}

func (c *Coordinator) dropTxnGroup(pid int64, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.txnGroups[pid], id)
	if len(c.txnGroups[pid]) == 0 {
		delete(c.txnGroups, pid)
	}
}

// pendingTxnPartitions returns the partitions with a transactional commit pending. Caller
// holds g.mu.
func (g *group) pendingTxnPartitions() map[topicPartition]bool {
	if len(g.pendingTxn) == 0 {
		return nil
	}
	out := map[topicPartition]bool{}
	for _, m := range g.pendingTxn {
		for tp := range m {
			out[tp] = true
		}
	}
	return out
}
