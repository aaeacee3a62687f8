package controller

import (
	"context"
	"slices"
)

// Partition leadership and ISR changes on the leader: AlterPartition from partition
// leaders, leader elections, and the changes that fencing and unfencing imply.
//
// Every change is a PartitionChangeRecord carrying the whole new state: PartitionEpoch + 1
// always, LeaderEpoch + 1 exactly when the leader changes (to NoLeader included).

// ElectionType is Kafka's ElectLeaders election type.
type ElectionType int8

// Election types.
const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ElectionResult is the outcome of ElectLeaders for one partition.
type ElectionResult struct {
	TopicPartition
	ErrorCode    int16
	ErrorMessage string
}

// bestLeader picks a leader as Kafka does: the first replica, in replica order, that is
// acceptable and in the ISR; failing that, when unclean election is allowed, the first
// acceptable replica; else NoLeader.
func bestLeader(replicas, isr []int32, unclean bool, acceptable func(int32) bool) int32 {
	firstUnclean := NoLeader
	for _, r := range replicas {
		if !acceptable(r) {
			continue
		}
		if contains(isr, r) {
			return r
		}
		if firstUnclean == NoLeader {
			firstUnclean = r
		}
	}
	if unclean {
		return firstUnclean
	}
	return NoLeader
}

// changeRecord returns the record moving partition pid of t from p to (leader, isr), or
// nil when neither changes.
func changeRecord(t *TopicInfo, pid int32, p PartitionState, leader int32, isr []int32) Record {
	if leader == p.Leader && slices.Equal(isr, p.ISR) {
		return nil
	}
	rec := &PartitionChangeRecord{TopicID: t.ID, Partition: pid, Leader: leader, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch + 1, ISR: isr, Replicas: p.Replicas}
	if leader != p.Leader {
		rec.LeaderEpoch++
	}
	return rec
}

// removalRecords takes broker id out of every leadership and every ISR it is not the last
// member of (fencing, controlled shutdown, unregistration). A partition it led gets the
// best other eligible leader; with none it goes leaderless unless unclean election is on
// for the topic.
func (c *Controller) removalRecords(img *Image, id int32) []Record {
	acceptable := func(b int32) bool { return b != id && img.brokerEligible(b) }
	var recs []Record
	for _, t := range img.Topics() {
		for pid, p := range t.Partitions {
			inISR := contains(p.ISR, id)
			if !inISR && p.Leader != id {
				continue
			}
			isr, leader := p.ISR, p.Leader
			if inISR && len(isr) > 1 {
				isr = without(isr, id)
			}
			if leader == id {
				leader = bestLeader(p.Replicas, isr, img.uncleanElectionEnabled(t, c.cfg.UncleanLeaderElection), acceptable)
				if leader != NoLeader && !contains(isr, leader) {
					isr = []int32{leader} // unclean: the ISR restarts from the new leader
				}
			}
			if rec := changeRecord(t, int32(pid), p, leader, isr); rec != nil {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// unfenceRecords elects broker id, about to be unfenced, for the leaderless partitions it
// can lead.
func (c *Controller) unfenceRecords(img *Image, id int32) []Record {
	acceptable := func(b int32) bool { return b == id || img.brokerEligible(b) }
	var recs []Record
	for _, t := range img.Topics() {
		for pid, p := range t.Partitions {
			if p.Leader != NoLeader || !contains(p.Replicas, id) {
				continue
			}
			leader := bestLeader(p.Replicas, p.ISR, img.uncleanElectionEnabled(t, c.cfg.UncleanLeaderElection), acceptable)
			if leader == NoLeader {
				continue
			}
			isr := p.ISR
			if !contains(isr, leader) {
				isr = []int32{leader}
			}
			recs = append(recs, changeRecord(t, int32(pid), p, leader, isr))
		}
	}
	return recs
}

// AlterPartition changes a partition's ISR at the request of its leader, validated as
// Kafka's controller validates AlterPartition (v2+). It returns the partition's state after
// the change and a Kafka error code:
//
//   - STALE_BROKER_EPOCH: brokerEpoch is not the broker's current epoch;
//   - UNKNOWN_TOPIC_ID / UNKNOWN_TOPIC_OR_PARTITION: no such partition;
//   - NOT_CONTROLLER: the request's leader or partition epoch is newer than this
//     controller's (it cannot be the leader any more);
//   - FENCED_LEADER_EPOCH: leaderEpoch is older than the partition's;
//   - INVALID_REQUEST: brokerID is not the partition's leader, or newISR is empty, has
//     duplicates or non-replicas, or leaves out the leader;
//   - INVALID_UPDATE_VERSION: partitionEpoch is older than the partition's;
//   - INELIGIBLE_REPLICA: newISR has a fenced or unregistered broker.
//
// An ISR equal to the current one changes nothing and returns the current state. The error
// is non-nil only when the controller could not answer (not the leader, closed).
func (c *Controller) AlterPartition(ctx context.Context, brokerID int32, brokerEpoch int64, topicID [16]byte,
	partition int32, leaderEpoch, partitionEpoch int32, newISR []int32) (PartitionState, int16, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return PartitionState{}, CodeNone, err
	}
	img := c.Image()
	t, p, code := validateAlterPartition(img, brokerID, brokerEpoch, topicID, partition, leaderEpoch, partitionEpoch, newISR)
	if code != CodeNone {
		return p, code, nil
	}
	rec := changeRecord(t, partition, p, p.Leader, slices.Clone(newISR))
	if rec == nil {
		return p, CodeNone, nil
	}
	if _, err := c.propose(ctx, rec); err != nil {
		return PartitionState{}, CodeNone, err
	}
	p, _ = c.Image().Partition(t.Name, partition)
	return p, CodeNone, nil
}

func validateAlterPartition(img *Image, brokerID int32, brokerEpoch int64, topicID [16]byte, partition int32,
	leaderEpoch, partitionEpoch int32, newISR []int32) (*TopicInfo, PartitionState, int16) {
	if _, err := checkBrokerEpoch(img, brokerID, brokerEpoch, CodeStaleBrokerEpoch); err != nil {
		return nil, PartitionState{}, ErrorCode(err)
	}
	t := img.topicsByID[topicID]
	if t == nil {
		return nil, PartitionState{}, CodeUnknownTopicID
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, PartitionState{}, CodeUnknownTopicOrPartition
	}
	p := t.Partitions[partition]
	switch {
	case leaderEpoch > p.LeaderEpoch || partitionEpoch > p.PartitionEpoch:
		return t, p, CodeNotController
	case leaderEpoch < p.LeaderEpoch:
		return t, p, CodeFencedLeaderEpoch
	case brokerID != p.Leader:
		return t, p, CodeInvalidRequest
	case partitionEpoch < p.PartitionEpoch:
		return t, p, CodeInvalidUpdateVersion
	}
	for i, r := range newISR {
		if !contains(p.Replicas, r) || slices.Contains(newISR[:i], r) {
			return t, p, CodeInvalidRequest
		}
	}
	if !contains(newISR, p.Leader) {
		return t, p, CodeInvalidRequest
	}
	for _, r := range newISR {
		if !img.brokerEligible(r) {
			return t, p, CodeIneligibleReplica
		}
	}
	return t, p, CodeNone
}

// ElectLeaders runs preferred or unclean leader elections, as Kafka's ElectLeaders:
//
//   - preferred: the first replica becomes leader if it is in the ISR and unfenced
//     (ELECTION_NOT_NEEDED when it already leads, PREFERRED_LEADER_NOT_AVAILABLE when it
//     cannot);
//   - unclean: a leaderless partition gets the best unfenced replica, from the ISR if
//     possible, else any (its ISR becomes that replica) (ELECTION_NOT_NEEDED when the
//     partition has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is unfenced).
//
// A nil partitions list means every partition, and then ELECTION_NOT_NEEDED results are
// left out. All elections are one Raft entry. Leader only.
func (c *Controller) ElectLeaders(ctx context.Context, typ ElectionType, partitions []TopicPartition) ([]ElectionResult, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return nil, err
	}
	if typ != ElectPreferred && typ != ElectUnclean {
		return nil, kafkaErr(CodeInvalidRequest, "Unknown election type %d", typ)
	}
	img := c.Image()
	all := partitions == nil
	if all {
		for _, t := range img.Topics() {
			for pid := range t.Partitions {
				partitions = append(partitions, TopicPartition{t.Name, int32(pid)})
			}
		}
	}
	var recs []Record
	var results []ElectionResult
	done := map[TopicPartition]int16{}
	for _, tp := range partitions {
		code, ok := done[tp]
		if !ok {
			var rec Record
			code, rec = c.electLeader(img, typ, tp)
			if rec != nil {
				recs = append(recs, rec)
			}
			done[tp] = code
		}
		if all && code == CodeElectionNotNeeded {
			continue
		}
		results = append(results, ElectionResult{TopicPartition: tp, ErrorCode: code})
	}
	if len(recs) > 0 {
		if _, err := c.propose(ctx, recs...); err != nil {
			return nil, err
		}
	}
	return results, nil
}

func (c *Controller) electLeader(img *Image, typ ElectionType, tp TopicPartition) (int16, Record) {
	t := img.topics[tp.Topic]
	if t == nil || tp.Partition < 0 || int(tp.Partition) >= len(t.Partitions) {
		return CodeUnknownTopicOrPartition, nil
	}
	p := t.Partitions[tp.Partition]
	if typ == ElectPreferred {
		preferred := p.Replicas[0]
		if p.Leader == preferred {
			return CodeElectionNotNeeded, nil
		}
		if !contains(p.ISR, preferred) || !img.brokerEligible(preferred) {
			return CodePreferredLeaderNotAvailable, nil
		}
		return CodeNone, changeRecord(t, tp.Partition, p, preferred, p.ISR)
	}
	if p.Leader != NoLeader {
		return CodeElectionNotNeeded, nil
	}
	leader := bestLeader(p.Replicas, p.ISR, true, img.brokerEligible)
	if leader == NoLeader {
		return CodeEligibleLeadersNotAvailable, nil
	}
	isr := p.ISR
	if !contains(isr, leader) {
		isr = []int32{leader}
	}
	return CodeNone, changeRecord(t, tp.Partition, p, leader, isr)
}

// balanceLeaders is the automatic preferred leader election: every partition whose
// preferred replica is in its ISR, unfenced and not leading gets it back as leader.
func (c *Controller) balanceLeaders(s *leaderSession) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if !c.current(s) {
		return
	}
	img := c.Image()
	var recs []Record
	for _, t := range img.Topics() {
		for pid := range t.Partitions {
			if code, rec := c.electLeader(img, ElectPreferred, TopicPartition{t.Name, int32(pid)}); code == CodeNone {
				recs = append(recs, rec)
			}
		}
	}
	if len(recs) == 0 {
		return
	}
	c.log.Info("moving leaders back to preferred replicas", "partitions", len(recs))
	ctx, cancel := context.WithTimeout(s.ctx, proposeTimeout)
	defer cancel()
	if _, err := c.propose(ctx, recs...); err != nil {
		c.log.Warn("preferred leader election failed", "err", err)
	}
}

// AllocateProducerIDs hands the broker the next block of producer ids, [first,
// first+size). Blocks never overlap, across leader changes too: the next id lives in the
// Image, and the FSM applies a block only when it starts there. Leader only.
func (c *Controller) AllocateProducerIDs(ctx context.Context, brokerID int32, brokerEpoch int64) (first, size int64, err error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return -1, 0, err
	}
	img := c.Image()
	if _, err := checkBrokerEpoch(img, brokerID, brokerEpoch, CodeStaleBrokerEpoch); err != nil {
		return -1, 0, err
	}
	first = img.nextProducerID
	if first > 1<<63-1-producerIDBlockSize {
		return -1, 0, kafkaErr(CodeUnknownServerError, "Producer ids are exhausted.")
	}
	rec := &AllocateProducerIDsRecord{BrokerID: brokerID, BrokerEpoch: brokerEpoch, FirstID: first, Size: producerIDBlockSize}
	if _, err := c.propose(ctx, rec); err != nil {
		return -1, 0, err
	}
	return first, producerIDBlockSize, nil
}
