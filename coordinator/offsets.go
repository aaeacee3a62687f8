package coordinator

import (
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// OffsetCommit handles OffsetCommit v0–v9. It returns once the offsets are in the log.
//
// Rules (ClassicGroup.validateOffsetCommit, KafkaApis): an unknown topic or partition is
// UNKNOWN_TOPIC_OR_PARTITION; metadata over offset.metadata.max.bytes is
// OFFSET_METADATA_TOO_LARGE; generation -1 commits into an Empty (or new) group — simple
// consumers and admin tools; otherwise the member and generation must be the group's
// (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION), and a group completing a
// rebalance answers REBALANCE_IN_PROGRESS. A known generation for a group that does not exist
// is ILLEGAL_GENERATION (GROUP_ID_NOT_FOUND from v9).
func (c *Coordinator) OffsetCommit(req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	codes := make([][]int16, len(req.Topics)) // per partition, as in the request
	valid := 0
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
		n := c.host.PartitionCount(t.Topic)
		for j, p := range t.Partitions {
			if p.Partition < 0 || p.Partition >= n {
				codes[i][j] = errUnknownTopicOrPartition // the rest still go to the group
			} else {
				valid++
			}
		}
	}
	if code := c.commitOffsets(req, codes, valid); code != 0 {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	resp := kmsg.NewPtrOffsetCommitResponse()
	for i, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for j, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// commitOffsets validates a commit against its group and stores the partitions whose code is
// still 0, setting per-partition codes; it returns a code for all of them.
func (c *Coordinator) commitOffsets(req *kmsg.OffsetCommitRequest, codes [][]int16, valid int) int16 {
	if code := c.status(req.Group); code != 0 {
		return code
	}
	generation, memberID := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, memberID = -1, ""
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		return code
	}
	if g == nil {
		switch {
		case generation < 0:
			// A group used only for its offsets.
			if g, code = c.lockGroup(req.Group, true); code != 0 {
				return code
			}
		case req.Version >= 9:
			return errGroupIDNotFound
		default:
			return errIllegalGeneration
		}
	}
	defer g.unlock()
	if g.cg != nil {
		code = g.validateConsumerCommit(req.Version, generation, memberID)
	} else {
		code = g.validateOffsetCommit(generation, memberID, req.InstanceID)
	}
	if code != 0 {
		return code
	}
	if m := g.members[memberID]; m != nil && (g.state == Stable || g.state == PreparingRebalance) {
		g.scheduleHeartbeat(m, m.sessionTimeout) // a commit shows the member is alive
	}
	if valid == 0 {
		return 0
	}
	return g.storeOffsets(req, codes)
}

// storeOffsets appends the offsets of the partitions whose code is 0 as one batch, then
// installs them (GroupMetadataManager.storeOffsets). Caller holds g.mu.
func (g *group) storeOffsets(req *kmsg.OffsetCommitRequest, codes [][]int16) int16 {
	now := nowMs()
	expire := int64(-1)
	if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis != -1 {
		expire = now + req.RetentionTimeMillis
	}
	type commit struct {
		tp topicPartition
		o  *offset
	}
	var commits []commit
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
			o := &offset{offset: p.Offset, leaderEpoch: -1, metadata: md, commitMs: now, expireMs: expire}
			if req.Version >= 6 {
				o.leaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 && p.Timestamp != -1 {
				o.commitMs = p.Timestamp
			}
			tp := topicPartition{t.Topic, p.Partition}
			commits = append(commits, commit{tp, o})
			recs = append(recs, logstore.Record{Key: offsetKey(g.id, tp), Value: offsetValue(o)})
		}
	}
	if err := g.c.appendRecords(g.partition, recs); err != nil {
		g.c.log.Warn("store offsets", "group", g.id, "err", err)
		return appendErrorCode(err)
	}
	for _, x := range commits {
		if g.offsets[x.tp] == nil {
			g.c.metrics.offsets.Add(1)
		}
		g.offsets[x.tp] = x.o
	}
	g.c.metrics.commits.Add(len(commits))
	return 0
}

// validateOffsetCommit is ClassicGroup.validateOffsetCommit for a non-transactional commit.
func (g *group) validateOffsetCommit(generation int32, memberID string, instanceID *string) int16 {
	if generation < 0 && g.state == Empty {
		return 0
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		if code := g.validateMember(memberID, instanceID); code != 0 {
			return code
		}
		if generation != g.generation {
			return errIllegalGeneration
		}
	} else if g.state != Empty {
		return errUnknownMemberID // only members commit into a group with members
	}
	if g.state == CompletingRebalance {
		return errRebalanceInProgress
	}
	return 0
}

// OffsetFetch handles OffsetFetch v0–v9 (v8+: several groups). Unknown groups and partitions
// answer offset -1 with empty metadata; committed metadata comes back unchanged. Topics null
// (v2+) asks for every committed offset of the group.
func (c *Coordinator) OffsetFetch(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := kmsg.NewPtrOffsetFetchResponse()
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			out := kmsg.NewOffsetFetchResponseGroup()
			out.Group = rg.Group
			if code := c.validateConsumerOffsetFetch(rg.Group, rg.MemberID, rg.MemberEpoch); code != 0 {
				out.ErrorCode = code // a consumer group's member at another epoch
				resp.Groups = append(resp.Groups, out)
				continue
			}
			var topics map[string][]int32
			if rg.Topics != nil {
				topics = map[string][]int32{}
				for _, t := range rg.Topics {
					topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
				}
			}
			code, res := c.fetchOffsets(rg.Group, topics, topicOrder(rg.Topics), req.RequireStable)
			out.ErrorCode = code
			for _, t := range res {
				ot := kmsg.NewOffsetFetchResponseGroupTopic()
				ot.Topic = t.topic
				for _, p := range t.parts {
					op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					op.Partition, op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = p.partition, p.offset, p.leaderEpoch, p.metadata, p.code
					ot.Partitions = append(ot.Partitions, op)
				}
				out.Topics = append(out.Topics, ot)
			}
			resp.Groups = append(resp.Groups, out)
		}
		return resp
	}
	var topics map[string][]int32
	var order []string
	if req.Topics != nil || req.Version < 2 {
		topics = map[string][]int32{}
		for _, t := range req.Topics {
			if _, ok := topics[t.Topic]; !ok {
				order = append(order, t.Topic)
			}
			topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
		}
	}
	code, res := c.fetchOffsets(req.Group, topics, order, req.Version >= 7 && req.RequireStable)
	if req.Version >= 2 {
		resp.ErrorCode = code
	}
	for _, t := range res {
		ot := kmsg.NewOffsetFetchResponseTopic()
		ot.Topic = t.topic
		for _, p := range t.parts {
			op := kmsg.NewOffsetFetchResponseTopicPartition()
			op.Partition, op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = p.partition, p.offset, p.leaderEpoch, p.metadata, p.code
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

func topicOrder(ts []kmsg.OffsetFetchRequestGroupTopic) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range ts {
		if !seen[t.Topic] {
			seen[t.Topic] = true
			out = append(out, t.Topic)
		}
	}
	return out
}

type fetchedPartition struct {
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    *string
	code        int16
}

type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

// fetchOffsets returns a group's committed offsets for topics (every one when topics is nil),
// topics in order. A group-level error is returned as its code and, for the partitions asked
// for, on each partition (v0–v1 have no group-level error). With requireStable (v7+, KIP-447),
// a partition with a transactional commit pending answers UNSTABLE_OFFSET_COMMIT.
func (c *Coordinator) fetchOffsets(id string, topics map[string][]int32, order []string, requireStable bool) (int16, []fetchedTopic) {
	code := c.status(id) // an empty group id is valid here, as in Kafka
	var g *group
	if code == 0 {
		g, code = c.lockGroup(id, false)
	}
	var committed map[topicPartition]offset
	var unstable map[topicPartition]bool
	if g != nil {
		committed = make(map[topicPartition]offset, len(g.offsets))
		for tp, o := range g.offsets {
			if topics == nil || topics[tp.topic] != nil {
				committed[tp] = *o
			}
		}
		if requireStable {
			unstable = g.pendingTxnPartitions()
		}
		g.unlock()
	}
	mark := func(tp topicPartition, fp *fetchedPartition) {
		if unstable[tp] {
			*fp = fetched(tp.partition, nil)
			fp.code = errUnstableOffsetCommit
		}
	}
	var out []fetchedTopic
	if topics == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range committed {
			fp := fetched(tp.partition, &o)
			mark(tp, &fp)
			byTopic[tp.topic] = append(byTopic[tp.topic], fp)
		}
		for t, ps := range byTopic {
			sort.Slice(ps, func(i, j int) bool { return ps[i].partition < ps[j].partition })
			out = append(out, fetchedTopic{t, ps})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].topic < out[j].topic })
		return code, out
	}
	for _, t := range order {
		ft := fetchedTopic{topic: t}
		for _, p := range topics[t] {
			fp := fetched(p, nil)
			if o, ok := committed[topicPartition{t, p}]; ok {
				fp = fetched(p, &o)
			}
			fp.code = code
			if code == 0 {
				mark(topicPartition{t, p}, &fp)
			}
			ft.parts = append(ft.parts, fp)
		}
		out = append(out, ft)
	}
	return code, out
}

func fetched(p int32, o *offset) fetchedPartition {
	if o == nil {
		empty := ""
		return fetchedPartition{partition: p, offset: -1, leaderEpoch: -1, metadata: &empty}
	}
	md := o.metadata
	return fetchedPartition{partition: p, offset: o.offset, leaderEpoch: o.leaderEpoch, metadata: &md}
}

// OffsetDelete handles OffsetDelete v0 (KIP-496): offsets of an Empty group go; a group with
// members keeps the offsets of topics it is subscribed to (GROUP_SUBSCRIBED_TO_TOPIC).
func (c *Coordinator) OffsetDelete(req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	resp.ErrorCode = c.offsetDelete(req, resp)
	if resp.ErrorCode != 0 {
		resp.Topics = nil // with a group error, no partition results
	}
	return resp
}

func (c *Coordinator) offsetDelete(req *kmsg.OffsetDeleteRequest, resp *kmsg.OffsetDeleteResponse) int16 {
	if req.Group == "" {
		return errInvalidGroupID
	}
	if code := c.status(req.Group); code != 0 {
		return code
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		return code
	}
	if g == nil {
		return errGroupIDNotFound
	}
	defer g.unlock()
	if g.state != Empty && g.protocolType != "consumer" {
		return errNonEmptyGroup
	}
	var recs []logstore.Record
	var gone []topicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		n := c.host.PartitionCount(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			tp := topicPartition{t.Topic, p.Partition}
			switch {
			case p.Partition < 0 || p.Partition >= n:
				rp.ErrorCode = errUnknownTopicOrPartition
			case g.state != Empty && g.isSubscribedTo(t.Topic):
				rp.ErrorCode = errGroupSubscribedToTopic
			case g.offsets[tp] != nil:
				recs = append(recs, logstore.Record{Key: offsetKey(g.id, tp)})
				gone = append(gone, tp)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if err := g.removeOffsets(recs, gone); err != nil {
		c.log.Warn("delete offsets", "group", g.id, "err", err)
		return appendErrorCode(err)
	}
	return 0
}

// removeOffsets writes the tombstones recs for the offsets gone, forgets them, and lets an
// Empty group with no offsets left die (GroupMetadataManager.cleanupGroupMetadata).
func (g *group) removeOffsets(recs []logstore.Record, gone []topicPartition) error {
	dies := g.state == Empty && len(g.offsets) == len(gone) && len(gone) > 0
	if dies && g.generation > 0 {
		recs = append(recs, logstore.Record{Key: groupKey(g.id)})
	}
	if dies {
		recs = append(recs, g.consumerTombstones()...)
	}
	if err := g.c.appendTombstones(g.partition, recs); err != nil {
		return err
	}
	for _, tp := range gone {
		delete(g.offsets, tp)
	}
	g.c.metrics.offsets.Add(-int64(len(gone)))
	if dies {
		g.c.log.Info("group is dead: empty, no offsets left", "group", g.id, "generation", g.generation)
		g.kill()
	}
	return nil
}

// kill makes the group Dead and takes it out of the coordinator. Caller holds g.mu.
func (g *group) kill() {
	g.unloadLocked()
	g.transition(Dead)
	g.c.removeLocked(g)
}

// expireOffsetsLoop removes expired offsets every offsets.retention.check.interval.ms.
func (c *Coordinator) expireOffsetsLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.OffsetsRetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if c.active() {
				c.ExpireOffsets()
			}
		}
	}
}

// ExpireOffsets removes offsets past offsets.retention.minutes (GroupMetadata.
// removeExpiredOffsets): every offset of an Empty group once it has been empty that long
// (from its last commit for a group that never had members); in a Stable consumer group,
// offsets of topics no member subscribes to, that long after their commit. An offset committed
// with an explicit retention (OffsetCommit v2–v4) expires at its own time. It returns the
// number of offsets removed.
func (c *Coordinator) ExpireOffsets() int {
	now := nowMs()
	retention := c.cfg.OffsetsRetention.Milliseconds()
	removed := 0
	for _, g := range c.snapshot() {
		g.mu.Lock()
		if g.state == Dead || g.stopped() {
			g.unlock()
			continue
		}
		var base func(o *offset) int64
		var subscribed map[string]bool
		switch {
		case g.protocolType != "" && g.state == Empty:
			base = func(*offset) int64 { return g.stateMs }
		case g.protocolType == "consumer" && g.subscribed != nil && g.state == Stable:
			base, subscribed = func(o *offset) int64 { return o.commitMs }, g.subscribed
		case g.protocolType == "":
			base = func(o *offset) int64 { return o.commitMs }
		}
		var recs []logstore.Record
		var gone []topicPartition
		if base != nil {
			for tp, o := range g.offsets {
				if subscribed[tp.topic] {
					continue
				}
				if o.expireMs >= 0 && now >= o.expireMs || o.expireMs < 0 && now-base(o) >= retention {
					recs = append(recs, logstore.Record{Key: offsetKey(g.id, tp)})
					gone = append(gone, tp)
				}
			}
		}
		switch {
		case len(gone) > 0:
			if err := g.removeOffsets(recs, gone); err != nil {
				c.log.Warn("expire offsets", "group", g.id, "err", err)
			} else {
				removed += len(gone)
				c.metrics.expired.Add(len(gone))
			}
		case g.state == Empty && len(g.offsets) == 0 && len(g.pending) == 0:
			// An empty group without offsets is dead; its metadata goes too.
			recs := g.consumerTombstones()
			if g.generation > 0 {
				recs = append(recs, logstore.Record{Key: groupKey(g.id)})
			}
			if err := c.appendRecords(g.partition, recs); err == nil {
				g.kill()
			}
		}
		g.unlock()
	}
	if removed > 0 {
		c.log.Info("expired offsets", "removed", removed)
	}
	return removed
}
