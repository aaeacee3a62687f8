package coordinator

// Online migration between the classic and the consumer group protocols (KIP-848 "online
// upgrade/downgrade", group.consumer.migration.policy = Config.MigrationPolicy). Kafka 4's
// GroupMetadataManager (convertToConsumerGroup, convertToClassicGroup,
// classicGroupJoinToConsumerGroup, classicGroupSyncToConsumerGroup,
// classicGroupHeartbeatToConsumerGroup, classicGroupLeaveToConsumerGroup) and
// ConsumerGroup.fromClassicGroup / ClassicGroup.fromConsumerGroup are the reference.
//
// # Upgrade: a classic group becomes a consumer group
//
// consumerHeartbeat calls upgrade when a ConsumerGroupHeartbeat joins (epoch 0) a classic group
// with members. It is refused with GROUP_ID_NOT_FOUND when the policy is disabled or
// downgrade, when the group's protocol type is not "consumer", when it has more members than
// group.consumer.max.size, or when a member's subscription (its metadata of the selected
// protocol) or assignment does not decode as ConsumerProtocolSubscription /
// ConsumerProtocolAssignment, or the assignment carries user data (a custom assignor's, which
// the coordinator could not keep). Kafka does not refuse a group that is rebalancing: its
// parked JoinGroup and SyncGroup requests are answered REBALANCE_IN_PROGRESS and the members
// join the consumer group instead.
//
// Every classic member becomes a member of the consumer group that keeps using the classic
// protocol (a "classic member": cmember.classic set, with its session timeout and supported
// protocols), at member epoch = the classic generation, stable, with the partitions of its
// last assignment as both its assignment and its target (a partition two members claim stays
// with the first). That is the assignment of the last generation that completed, kept through
// a rebalance that restarted (resetAndPropagateAssignmentError): what a cooperative member
// still holds, and more than an eager one does, never less. The group epoch and the target
// assignment epoch are the generation; the joining member then bumps the group epoch like any
// new member, and the server-side assignor decides from there. The classic group's record is deleted and the consumer group's records
// written, in the batch of the heartbeat.
//
// # Classic members in a consumer group
//
// JoinGroup, SyncGroup, Heartbeat and LeaveGroup of a consumer group with members are served
// here (the coordinator's handlers dispatch on group.cg):
//
//   - JoinGroup (classicJoin) updates the member from its subscription (topics, rack) and
//     reconciles it at once with the partitions its subscription says it owns (revocation
//     first, as for a heartbeat); it is answered at once with the member's epoch as the
//     generation, its first protocol, and no leader: the coordinator assigns. A new member of
//     JoinGroup v4+ without an id first gets MEMBER_ID_REQUIRED. With the policy disabled a new
//     classic member is refused INCONSISTENT_GROUP_PROTOCOL (KAFKA-20640), as is one whose
//     protocols the other classic members do not all support.
//   - SyncGroup (classicSync) returns the member's assignment (not the partitions it still
//     has to revoke) as a ConsumerProtocolAssignment of the version of its subscription;
//     REBALANCE_IN_PROGRESS when the group epoch moved past the member's (unless it is
//     revoking: it must finish that first).
//   - Heartbeat (classicHeartbeat) keeps the session and answers REBALANCE_IN_PROGRESS when
//     the member must rejoin: the group epoch moved past its epoch, it has partitions to
//     revoke, or the partitions it waited for were released.
//   - LeaveGroup (classicLeave) fences the member like a consumer-protocol leave.
//
// A classic member's session is its JoinGroup's session timeout, renewed by its JoinGroup,
// SyncGroup and Heartbeat; it must rejoin within its rebalance timeout once told to, and sync
// within it once joined (rejoinTimer), else it is fenced. OffsetCommit and OffsetFetch check
// its generation against its member epoch (ILLEGAL_GENERATION), any OffsetCommit version.
//
// # Downgrade: a consumer group becomes a classic group
//
// When members leave or are fenced (consumerGroup.fence) and only classic members would be
// left, tryDowngrade makes the group a classic group if the policy is downgrade or
// bidirectional and the members fit group.max.size: generation = the group epoch, the members
// with their protocols, timeouts and current assignment (encoded for the selected protocol),
// then a rebalance, so that they rejoin and a leader assigns. The consumer group's records are
// deleted and the classic group's record written in one batch, before the state changes: if
// that append fails the members are fenced as usual and the group stays a consumer group.
// (Kafka also downgrades when a classic static member replaces the last consumer-protocol
// member; that case is not handled here: the group stays a consumer group until a member
// leaves.)

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

var (
	errMalformedConsumerProtocol = errors.New("the embedded consumer protocol is malformed")
	errCustomAssignor            = errors.New("an unsupported custom assignor is in use")
)

// maxAssignmentVersion is the highest ConsumerProtocolAssignment version.
const maxAssignmentVersion = 3

// upgrade makes the classic group g, which has members, a consumer group whose members are
// classic members (convertToConsumerGroup), or says why it cannot (GROUP_ID_NOT_FOUND with
// Kafka's message; GROUP_MAX_SIZE_REACHED when the joining member would not fit). Called by
// consumerHeartbeat for a joining member; the caller then handles the heartbeat, and its
// flush writes the conversion's records with the heartbeat's. Caller holds g.mu.
func (g *group) upgrade(th TopicsHost) (*consumerGroup, int16, string) {
	c := g.c
	refuse := func(why string) (*consumerGroup, int16, string) {
		c.log.Info("classic group not upgraded to a consumer group", "group", g.id, "why", why)
		return nil, errGroupIDNotFound, fmt.Sprintf("Cannot upgrade classic group %s to consumer group because %s.", g.id, why)
	}
	switch {
	case !c.cfg.MigrationPolicy.upgradeEnabled():
		return refuse("online upgrade is disabled")
	case g.protocolType != "consumer":
		return refuse("the group does not use the consumer embedded protocol")
	case len(g.members) > c.cfg.ConsumerMaxSize:
		return refuse("the group size exceeds the consumer group maximum size")
	case len(g.members) >= c.cfg.ConsumerMaxSize:
		return nil, errGroupMaxSizeReached, fmt.Sprintf("The consumer group has reached its maximum capacity of %d members.", c.cfg.ConsumerMaxSize)
	}
	proto := g.protocolName
	if proto == "" {
		proto = g.selectProtocol() // the first generation is still being formed
	}
	ms := g.sortedMembers()
	converted := make([]*cmember, 0, len(ms))
	for _, m := range ms {
		cm, err := consumerMemberOf(m, proto, th)
		switch {
		case errors.Is(err, errCustomAssignor):
			return refuse("an unsupported custom assignor is in use. Please refer to the documentation or switch to a default assignor before re-attempting the upgrade")
		case err != nil:
			c.log.Warn("classic member's consumer protocol does not decode", "group", g.id, "member", m.id, "err", err)
			return refuse(errMalformedConsumerProtocol.Error())
		}
		cm.epoch, cm.prevEpoch = g.generation, g.generation
		converted = append(converted, cm)
	}
	return g.convertToConsumer(converted, th), 0, ""
}

// convertToConsumer ends the classic group (parked requests answered REBALANCE_IN_PROGRESS,
// timers stopped, its record deleted) and makes g the consumer group of the converted
// members, writing its records into cg.recs. Called by upgrade once nothing can fail; caller
// holds g.mu.
func (g *group) convertToConsumer(converted []*cmember, th TopicsHost) *consumerGroup {
	c := g.c
	g.stopClassicLocked(errRebalanceInProgress)
	c.metrics.members.Add(-int64(len(g.members)))
	gen := g.generation
	var recs []logstore.Record
	if gen > 0 {
		recs = append(recs, logstore.Record{Key: groupKey(g.id)})
	}
	g.members, g.static, g.pendingSync, g.supported = map[string]*member{}, map[string]string{}, map[string]bool{}, map[string]int{}
	g.numAwaiting, g.newMemberAdded, g.initialJoin = 0, false, false
	g.protocolType, g.protocolName, g.leader, g.generation = "consumer", "", "", 0

	cg := newConsumerGroup(g)
	g.cg = cg
	c.metrics.consumer.byState[ConsumerEmpty].Add(1)
	cg.epoch, cg.assignmentEpoch = gen, gen
	for _, m := range converted {
		for ip := range m.assigned {
			if o, held := cg.owners[ip]; held {
				c.log.Warn("two classic members claim a partition; the first keeps it", "group", g.id, "partition", ip.p, "owner", o, "member", m.id)
				delete(m.assigned, ip)
			}
		}
		cg.addMember(m)
		cg.target[m.id] = clonePartSet(m.assigned)
	}
	if th != nil {
		cg.refreshTopics(th)
	}
	ids := cg.sortedMembers()
	for _, m := range ids {
		recs = append(recs, logstore.Record{Key: cgMemberKey(g.id, m.id), Value: cgMemberValue(m)})
	}
	recs = append(recs, logstore.Record{Key: cgMetadataKey(g.id), Value: cgMetadataValue(cg.epoch, cg.metaHash)})
	for _, m := range ids {
		recs = append(recs, logstore.Record{Key: cgTargetMemberKey(g.id, m.id), Value: cgTargetMemberValue(cg.target[m.id])})
	}
	recs = append(recs, logstore.Record{Key: cgTargetMetadataKey(g.id), Value: cgTargetMetadataValue(cg.assignmentEpoch)})
	for _, m := range ids {
		recs = append(recs, logstore.Record{Key: cgCurrentAssignmentKey(g.id, m.id), Value: cgCurrentAssignmentValue(m)})
		cg.scheduleSession(m)
	}
	cg.recs = append(cg.recs, recs...)
	cg.updateState()
	c.log.Info("classic group upgraded to a consumer group", "group", g.id, "generation", gen, "members", len(ids))
	return cg
}

// consumerMemberOf is the classic member m as a member of a consumer group: its subscription
// and assignment decoded from its metadata of protocol proto and its last assignment
// (partitions of topics that no longer exist are dropped).
func consumerMemberOf(m *member, proto string, th TopicsHost) (*cmember, error) {
	md := m.metadata(proto)
	if md == nil && len(m.protocols) > 0 {
		md = m.protocols[0].metadata // it rejoined without the selected protocol
	}
	var sub kmsg.ConsumerMemberMetadata
	if err := sub.ReadFrom(md); err != nil {
		return nil, fmt.Errorf("subscription: %w", err)
	}
	assigned := partSet{}
	if len(m.assignment) > 0 {
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(m.assignment); err != nil {
			return nil, fmt.Errorf("assignment: %w", err)
		}
		if len(a.UserData) > 0 {
			return nil, errCustomAssignor
		}
		for _, t := range a.Topics {
			if th == nil {
				break
			}
			id, n, ok := th.TopicByName(t.Topic)
			if !ok {
				continue
			}
			for _, p := range t.Partitions {
				if p >= 0 && p < n {
					assigned[idPart{id, p}] = struct{}{}
				}
			}
		}
	}
	cm := &cmember{
		id: m.id, instanceID: m.instanceID, clientID: m.clientID, clientHost: m.clientHost,
		rebalanceTimeout: int32(m.rebalanceTimeout / time.Millisecond), subscribedNames: sortedTopics(sub.Topics),
		state: memberStable, assigned: assigned, pendingRevoke: partSet{},
		classic: &classicMeta{sessionTimeout: int32(m.sessionTimeout / time.Millisecond), protocols: slices.Clone(m.protocols)},
	}
	if sub.Rack != nil && *sub.Rack != "" {
		cm.rackID = sub.Rack
	}
	return cm, nil
}

func sortedTopics(ts []string) []string {
	names := slices.Clone(ts)
	sort.Strings(names)
	return slices.Compact(names)
}

func clonePartSet(s partSet) partSet {
	out := make(partSet, len(s))
	for ip := range s {
		out[ip] = struct{}{}
	}
	return out
}

// tryDowngrade makes the consumer group a classic group when the members leaving are the last
// ones of the consumer protocol (convertToClassicGroup), and reports whether it did. It writes
// the consumer group's pending records, its tombstones and the classic group's record as one
// batch first; the state changes only once that is in the log. Then the classic group
// rebalances, so that every member rejoins. Called by fence; caller holds g.mu.
func (cg *consumerGroup) tryDowngrade(leaving []*cmember, reason string) bool {
	g, c := cg.g, cg.g.c
	gone := make(map[string]bool, len(leaving))
	for _, m := range leaving {
		gone[m.id] = true
	}
	var rest []*cmember
	for _, m := range cg.sortedMembers() {
		if gone[m.id] {
			continue
		}
		if m.classic == nil {
			return false
		}
		rest = append(rest, m)
	}
	switch {
	case len(rest) == 0:
		return false
	case !c.cfg.MigrationPolicy.downgradeEnabled():
		c.log.Info("consumer group not downgraded to a classic group: online downgrade is disabled", "group", g.id)
		return false
	case len(rest) > c.cfg.MaxSize:
		c.log.Info("consumer group not downgraded to a classic group: its size is greater than the classic group max size", "group", g.id)
		return false
	}
	view, assignment := cg.classicView(rest)
	recs := append(append([]logstore.Record(nil), cg.unsaved...), cg.recs...)
	for _, m := range cg.sortedMembers() {
		recs = append(recs,
			logstore.Record{Key: cgCurrentAssignmentKey(g.id, m.id)},
			logstore.Record{Key: cgTargetMemberKey(g.id, m.id)},
			logstore.Record{Key: cgMemberKey(g.id, m.id)})
	}
	recs = append(recs, logstore.Record{Key: cgTargetMetadataKey(g.id)}, logstore.Record{Key: cgMetadataKey(g.id)})
	recs = append(recs, logstore.Record{Key: groupKey(g.id), Value: view.groupValue(assignment)})
	if err := c.appendRecords(g.partition, recs); err != nil {
		c.log.Warn("downgrade consumer group to a classic group: its members are fenced instead", "group", g.id, "err", err)
		return false
	}

	// The consumer group ends.
	cg.recs, cg.unsaved = nil, nil
	for _, m := range cg.members {
		cg.stopTimers(m)
	}
	c.metrics.members.Add(-int64(len(cg.members)))
	if !cg.dead {
		cg.dead = true
		c.metrics.consumer.byState[cg.state].Add(-1)
	}
	g.cg = nil
	if g.state != Stable {
		panic(fmt.Sprintf("BUG: group %q: a consumer group with members is %s", g.id, g.state))
	}
	g.protocolType, g.protocolName, g.generation, g.leader = "consumer", view.protocolName, view.generation, ""
	for _, m := range view.sortedMembers() {
		m.assignment = assignment[m.id]
		g.add(m, nil)
		g.scheduleHeartbeat(m, m.sessionTimeout)
	}
	g.subscribed = g.computeSubscribed()
	c.log.Info("consumer group downgraded to a classic group", "group", g.id, "generation", g.generation, "members", len(rest), "reason", reason)
	g.prepareRebalance("downgrade from a consumer group: " + reason)
	return true
}

// classicView builds, without touching g, the classic group the classic members ms make:
// generation = the group epoch, the protocol they vote for, the first as leader, and each
// one's current assignment encoded for that protocol (ClassicGroup.fromConsumerGroup, which
// takes the targets; the current assignment is what the members hold until they rejoin).
func (cg *consumerGroup) classicView(ms []*cmember) (*group, map[string][]byte) {
	g := cg.g
	view := &group{
		c: g.c, id: g.id, partition: g.partition, state: Stable, stateMs: nowMs(), protocolType: "consumer",
		generation: cg.epoch, members: map[string]*member{}, supported: map[string]int{},
	}
	for i, m := range ms {
		cm := &member{
			id: m.id, instanceID: m.instanceID, clientID: m.clientID, clientHost: m.clientHost,
			rebalanceTimeout: time.Duration(m.rebalanceTimeout) * time.Millisecond,
			sessionTimeout:   time.Duration(m.classic.sessionTimeout) * time.Millisecond,
			protocolType:     "consumer", protocols: slices.Clone(m.classic.protocols), seq: uint64(i + 1),
		}
		view.members[m.id] = cm
		for _, p := range cm.protocols {
			view.supported[p.name]++
		}
		if view.leader == "" {
			view.leader = m.id
		}
	}
	view.protocolName = view.selectProtocol()
	assignment := make(map[string][]byte, len(ms))
	for _, m := range ms {
		assignment[m.id] = cg.encodeAssignment(m.assigned, assignmentVersion(view.members[m.id].metadata(view.protocolName)))
	}
	return view, assignment
}

// assignmentVersion is the ConsumerProtocolAssignment version that answers a subscription:
// the subscription's version, at most the highest known.
func assignmentVersion(subscription []byte) int16 {
	if len(subscription) < 2 {
		return 0
	}
	v := int16(subscription[0])<<8 | int16(subscription[1])
	return min(max(v, 0), maxAssignmentVersion)
}

// encodeAssignment encodes partitions as a ConsumerProtocolAssignment (topics by name, sorted;
// partitions of topics that no longer exist left out).
func (cg *consumerGroup) encodeAssignment(s partSet, version int16) []byte {
	names := make(map[[16]byte]string, len(cg.topics))
	for n, t := range cg.topics {
		names[t.id] = n
	}
	th, _ := cg.g.c.host.(TopicsHost)
	a := kmsg.ConsumerMemberAssignment{Version: version}
	for _, t := range s.byTopic() {
		name, ok := names[t.id]
		if !ok && th != nil {
			name, _, ok = th.TopicByID(t.id)
		}
		if !ok {
			continue
		}
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic, at.Partitions = name, t.parts
		a.Topics = append(a.Topics, at)
	}
	sort.Slice(a.Topics, func(i, j int) bool { return a.Topics[i].Topic < a.Topics[j].Topic })
	return a.AppendTo(nil)
}

// classicMember finds the classic member a SyncGroup, Heartbeat or OffsetCommit names
// (validateConsumerGroupMember, throwIfMemberDoesNotUseClassicProtocol): UNKNOWN_MEMBER_ID for
// an unknown member or one of the consumer protocol, FENCED_INSTANCE_ID when the instance id
// belongs to another member id.
func (cg *consumerGroup) classicMember(memberID string, instanceID *string) (*cmember, int16) {
	var m *cmember
	if instanceID == nil {
		m = cg.members[memberID]
	} else if m = cg.members[cg.static[*instanceID]]; m != nil && m.id != memberID {
		return nil, errFencedInstanceID
	}
	if m == nil || m.classic == nil {
		return nil, errUnknownMemberID
	}
	return m, 0
}

// supportsClassicProtocols reports whether a classic member with these protocols may join:
// the consumer protocol type, and a protocol every classic member supports (any, when the
// group has none).
func (cg *consumerGroup) supportsClassicProtocols(protocolType string, ps []protocol) bool {
	if protocolType != "consumer" || len(ps) == 0 {
		return false
	}
	counts, classic := map[string]int{}, 0
	for _, m := range cg.members {
		if m.classic == nil {
			continue
		}
		classic++
		for _, p := range m.classic.protocols {
			counts[p.name]++
		}
	}
	for _, p := range ps {
		if counts[p.name] == classic {
			return true
		}
	}
	return false
}

// classicJoin handles a JoinGroup into a consumer group with members
// (classicGroupJoinToConsumerGroup): the member is made or updated, the group epoch and target
// move as for a heartbeat, the member reconciles with what its subscription says it owns, and
// the JoinGroup is answered at once (no leader). Called by Coordinator.JoinGroup; caller holds
// g.mu.
func (cg *consumerGroup) classicJoin(j *joinReq) {
	g, c := cg.g, cg.g.c
	th, _ := c.host.(TopicsHost)
	id, unknown := j.memberID, j.memberID == ""
	if unknown {
		id = newConsumerMemberID()
	}
	if code := cg.classicJoinRefusal(j, id); code != 0 {
		j.fail(g, j.memberID, code)
		return
	}
	if unknown && j.instanceID == nil && j.version >= 4 {
		j.fail(g, id, errMemberIDRequired) // KIP-394: join again with this id
		return
	}
	var sub kmsg.ConsumerMemberMetadata
	if err := sub.ReadFrom(j.protocols[0].metadata); err != nil {
		c.log.Warn("classic member's subscription does not decode", "group", g.id, "member", id, "err", err)
		j.fail(g, j.memberID, errUnknownServerError) // Kafka's IllegalStateException
		return
	}
	m, isNew, code := cg.classicJoinMember(j, id, unknown)
	if code != 0 {
		j.fail(g, j.memberID, code)
		return
	}
	old := *m
	if isNew {
		old = cmember{}
	}
	if j.instanceID != nil {
		m.instanceID = j.instanceID
	}
	if sub.Rack != nil && *sub.Rack != "" {
		m.rackID = sub.Rack
	}
	m.rebalanceTimeout = int32(j.rebalance / time.Millisecond)
	m.subscribedNames = sortedTopics(sub.Topics)
	m.clientID, m.clientHost = j.client.ID, j.client.Host
	m.classic = &classicMeta{sessionTimeout: int32(j.session / time.Millisecond), protocols: j.protocols}
	if m.instanceID != nil && !isNew {
		cg.static[*m.instanceID] = m.id
	}
	if isNew {
		cg.addMember(m)
		c.log.Info("classic member joined the consumer group", "group", g.id, "member", m.id, "instance_id", strOrEmpty(m.instanceID), "client", m.clientID)
	}
	cg.updateMember(m, &old, isNew, th)
	cg.reconcile(m, cg.ownedOf(&sub, th))
	cg.scheduleSession(m)
	cg.scheduleRejoin(m, "did not send SyncGroup within its rebalance timeout")
	cg.updateState()
	if code := cg.flush(); code != 0 {
		j.fail(g, j.memberID, code)
		return
	}
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.MemberID, resp.Generation = m.id, m.epoch
	resp.ProtocolType, resp.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr(m.classic.protocols[0].name)
	j.answer(g, resp)
}

// classicJoinRefusal is the error a classic JoinGroup for member id gets before anything
// changes: GROUP_MAX_SIZE_REACHED for a new member of a full group, INCONSISTENT_GROUP_PROTOCOL
// for protocols the classic members do not all support, or for a new classic member while
// migration is disabled (KAFKA-20640: without migration a consumer group takes none).
func (cg *consumerGroup) classicJoinRefusal(j *joinReq, id string) int16 {
	existing := cg.members[id]
	if j.instanceID != nil && existing == nil {
		if s := cg.members[cg.static[*j.instanceID]]; s != nil && s.classic != nil {
			existing = s // a static member rejoining (perhaps with a new member id)
		}
	}
	switch {
	case len(cg.members) >= cg.g.c.cfg.ConsumerMaxSize && cg.members[id] == nil:
		return errGroupMaxSizeReached
	case !cg.supportsClassicProtocols(j.protocolType, j.protocols):
		return errInconsistentGroupProtocol
	case cg.g.c.cfg.MigrationPolicy == MigrationDisabled && (existing == nil || existing.classic == nil):
		return errInconsistentGroupProtocol
	}
	return 0
}

// classicJoinMember finds or makes the member a classic JoinGroup is for. A static member
// joining without a member id replaces the one with its instance id (whose later requests are
// FENCED_INSTANCE_ID); with another known member id it is FENCED_INSTANCE_ID. A member of the
// consumer protocol is UNKNOWN_MEMBER_ID here.
func (cg *consumerGroup) classicJoinMember(j *joinReq, id string, unknown bool) (m *cmember, isNew bool, code int16) {
	fresh := func() *cmember { return &cmember{id: id, assigned: partSet{}, pendingRevoke: partSet{}} }
	if j.instanceID != nil {
		if existing := cg.members[cg.static[*j.instanceID]]; existing != nil {
			switch {
			case existing.id == id && existing.classic != nil:
				return existing, false, 0
			case existing.id == id:
				return nil, false, errUnknownMemberID
			case unknown:
				return cg.replaceStatic(existing, id), false, 0
			default:
				return nil, false, errFencedInstanceID
			}
		}
	}
	switch m = cg.members[id]; {
	case m == nil:
		return fresh(), true, 0
	case m.classic == nil:
		return nil, false, errUnknownMemberID
	}
	return m, false, 0
}

// ownedOf is the partitions a classic member's subscription says it owns, by topic id (an
// empty list, not nil, when it says none: the member owns nothing, as an eager member that
// revoked everything before joining).
func (cg *consumerGroup) ownedOf(sub *kmsg.ConsumerMemberMetadata, th TopicsHost) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, t := range sub.OwnedPartitions {
		ti, ok := cg.topics[t.Topic]
		if !ok && th != nil {
			ti.id, ti.partitions, ok = th.TopicByName(t.Topic)
		}
		if ok {
			out = append(out, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: ti.id, Partitions: t.Partitions})
		}
	}
	return out
}

// classicSync handles a SyncGroup of a classic member of a consumer group
// (classicGroupSyncToConsumerGroup): its assignment, once its generation and protocol match and
// no newer group epoch waits for its JoinGroup. Called by Coordinator.SyncGroup; caller holds
// g.mu.
func (cg *consumerGroup) classicSync(req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
	g := cg.g
	fail := func(code int16) { g.out = append(g.out, func() { reply(syncError(code)) }) }
	m, code := cg.classicMember(req.MemberID, req.InstanceID)
	switch {
	case code != 0:
		fail(code)
		return
	case req.Generation != m.epoch:
		fail(errIllegalGeneration)
		return
	case req.ProtocolType != nil && *req.ProtocolType != "consumer",
		req.Protocol != nil && *req.Protocol != m.classic.protocols[0].name:
		fail(errInconsistentGroupProtocol)
		return
	case cg.epoch > m.epoch && m.state != memberUnrevokedPartitions:
		fail(errRebalanceInProgress) // rejoin first; a revoking member syncs to learn what to revoke
		return
	}
	cg.stopRejoinTimer(m)
	cg.scheduleSession(m)
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
	resp.MemberAssignment = cg.encodeAssignment(m.assigned, assignmentVersion(m.classic.protocols[0].metadata))
	g.out = append(g.out, func() { reply(resp) })
}

// classicHeartbeat handles a Heartbeat of a classic member of a consumer group
// (classicGroupHeartbeatToConsumerGroup): REBALANCE_IN_PROGRESS tells it to rejoin (and starts
// its join timeout) when the group epoch moved past its epoch, it must revoke partitions, or
// the partitions it waits for are free. Called by Coordinator.Heartbeat; caller holds g.mu.
func (cg *consumerGroup) classicHeartbeat(req *kmsg.HeartbeatRequest) int16 {
	m, code := cg.classicMember(req.MemberID, req.InstanceID)
	switch {
	case code != 0:
		return code
	case req.Generation != m.epoch:
		return errIllegalGeneration
	}
	cg.scheduleSession(m)
	if m.epoch < cg.epoch || m.state == memberUnrevokedPartitions ||
		m.state == memberUnreleasedPartitions && !cg.waitingOnUnreleased(m) {
		if m.rejoinTimer == nil {
			cg.scheduleRejoin(m, "did not rejoin within its rebalance timeout")
		}
		return errRebalanceInProgress
	}
	return 0
}

// waitingOnUnreleased reports whether a partition of m's target that m does not have yet is
// still held by another member.
func (cg *consumerGroup) waitingOnUnreleased(m *cmember) bool {
	for ip := range cg.target[m.id] {
		if m.assigned.has(ip) {
			continue
		}
		if o, held := cg.owners[ip]; held && o != m.id {
			return true
		}
	}
	return false
}

// classicLeave handles a LeaveGroup of a consumer group (classicGroupLeaveToConsumerGroup):
// each member is named by member id (a classic member), or by instance id (an administrator
// may remove any static member that way); those found are fenced together, which may
// downgrade the group. It returns the per-member results and an error for the whole request
// (the records could not be written). Called by Coordinator.LeaveGroup; caller holds g.mu.
func (cg *consumerGroup) classicLeave(leaving []kmsg.LeaveGroupRequestMember) (int16, []kmsg.LeaveGroupResponseMember) {
	out := make([]kmsg.LeaveGroupResponseMember, 0, len(leaving))
	var valid []*cmember
	seen := map[string]bool{}
	reason := "member left the group"
	for _, l := range leaving {
		var m *cmember
		var code int16
		if l.InstanceID == nil {
			if m = cg.members[l.MemberID]; m == nil || m.classic == nil {
				code = errUnknownMemberID
			}
		} else {
			m = cg.members[cg.static[*l.InstanceID]]
			switch {
			case m == nil:
				code = errUnknownMemberID
			case l.MemberID != "" && m.id != l.MemberID:
				code = errFencedInstanceID
			case l.MemberID != "" && m.classic == nil:
				code = errUnknownMemberID
			}
		}
		r := kmsg.NewLeaveGroupResponseMember()
		r.MemberID, r.InstanceID, r.ErrorCode = l.MemberID, l.InstanceID, code
		out = append(out, r)
		if code == 0 && !seen[m.id] {
			seen[m.id] = true
			valid = append(valid, m)
			if l.Reason != nil {
				reason += ": " + *l.Reason
			}
		}
	}
	if len(valid) == 0 {
		return 0, out
	}
	th, _ := cg.g.c.host.(TopicsHost)
	cg.fence(valid, th, reason)
	return cg.flush(), out
}

// scheduleRejoin starts a classic member's join (or sync) timeout: its rebalance timeout,
// after which it is fenced unless a JoinGroup (or SyncGroup) stopped the timer.
func (cg *consumerGroup) scheduleRejoin(m *cmember, reason string) {
	cg.stopRejoinTimer(m)
	seq := m.rejoinSeq
	d := time.Duration(m.rebalanceTimeout) * time.Millisecond
	m.rejoinTimer = time.AfterFunc(d, func() {
		cg.expire(m, func() bool { return m.rejoinSeq == seq }, fmt.Sprintf("%s (%v)", reason, d))
	})
}

func (cg *consumerGroup) stopRejoinTimer(m *cmember) {
	m.rejoinSeq++
	if m.rejoinTimer != nil {
		m.rejoinTimer.Stop()
		m.rejoinTimer = nil
	}
}
