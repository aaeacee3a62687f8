package coordinator

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// ConsumerGroupHeartbeat handles ConsumerGroupHeartbeat v0–v1 (KIP-848): joining (member epoch
// 0), heartbeating and reconciling (the member's epoch), leaving (-1) and a static member's
// temporary leave (-2). v0 joins without a member id and gets one; v1 members bring their own.
// It may append to __consumer_offsets and returns once the records are in the log.
func (c *Coordinator) ConsumerGroupHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, cl Client) *kmsg.ConsumerGroupHeartbeatResponse {
	resp, code, msg := c.consumerHeartbeat(req, cl)
	if code != 0 {
		resp = kmsg.NewPtrConsumerGroupHeartbeatResponse()
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
	}
	return resp
}

func (c *Coordinator) consumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, cl Client) (*kmsg.ConsumerGroupHeartbeatResponse, int16, string) {
	if code, msg := validateHeartbeat(req); code != 0 {
		return nil, code, msg
	}
	if code := c.status(req.Group); code != 0 {
		return nil, code, ""
	}
	th, ok := c.host.(TopicsHost)
	if !ok {
		return nil, errUnsupportedVersion, "consumer groups are not served here"
	}
	joining := req.MemberEpoch == 0
	g, gcode := c.lockGroup(req.Group, joining)
	if gcode != 0 {
		return nil, gcode, ""
	}
	if g == nil {
		return nil, errGroupIDNotFound, fmt.Sprintf("Group %s not found.", req.Group)
	}
	defer g.unlock()
	if c.closed.Load() {
		return nil, errNotCoordinator, ""
	}
	cg := g.cg
	if cg == nil {
		// Only a join (epoch 0) makes a classic group a consumer group: an empty one is
		// replaced (offsets kept), one with members is upgraded if the migration policy
		// allows (migration.go).
		switch {
		case !joining:
			return nil, errGroupIDNotFound, fmt.Sprintf("Group %s is not a consumer group.", req.Group)
		case len(g.members) == 0 && g.state == Empty:
			cg = g.becomeConsumer()
		default:
			var code int16
			var msg string
			if cg, code, msg = g.upgrade(th); code != 0 {
				return nil, code, msg
			}
		}
	}
	var resp *kmsg.ConsumerGroupHeartbeatResponse
	var code int16
	var msg string
	if req.MemberEpoch < 0 {
		resp, code, msg = cg.leave(req)
	} else {
		resp, code, msg = cg.heartbeat(req, cl, th)
	}
	// The records of whatever changed are written even when the request failed.
	if fc := cg.flush(); fc != 0 && code == 0 {
		return nil, fc, ""
	}
	return resp, code, msg
}

// validateHeartbeat is GroupCoordinatorService.throwIfConsumerGroupHeartbeatRequestIsInvalid.
func validateHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (int16, string) {
	switch {
	case req.MemberID == "" && (req.Version >= 1 || req.MemberEpoch > 0 || req.MemberEpoch == leaveEpoch):
		return errInvalidRequest, "MemberId can't be empty."
	case req.Group == "":
		return errInvalidRequest, "GroupId can't be empty."
	case req.InstanceID != nil && *req.InstanceID == "":
		return errInvalidRequest, "InstanceId can't be empty."
	case req.RackID != nil && *req.RackID == "":
		return errInvalidRequest, "RackId can't be empty."
	}
	switch {
	case req.MemberEpoch == 0:
		switch {
		case req.RebalanceTimeoutMillis == -1:
			return errInvalidRequest, "RebalanceTimeoutMs must be provided in first request."
		case req.Topics == nil || len(req.Topics) > 0:
			return errInvalidRequest, "TopicPartitions must be empty when (re-)joining."
		case req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
			return errInvalidRequest, "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining."
		}
	case req.MemberEpoch < staticLeaveEpoch:
		return errInvalidRequest, fmt.Sprintf("MemberEpoch is %d, but must be greater than or equal to -2.", req.MemberEpoch)
	}
	if req.SubscribedTopicRegex != nil {
		if _, err := compileSubscriptionRegex(*req.SubscribedTopicRegex); err != nil {
			return errInvalidRegularExpression, fmt.Sprintf("SubscribedTopicRegex `%s` is not a valid regular expression: %v.", *req.SubscribedTopicRegex, err)
		}
	}
	if req.ServerAssignor != nil && !slices.Contains(consumerAssignors, *req.ServerAssignor) {
		return errUnsupportedAssignor, fmt.Sprintf("ServerAssignor %s is not supported. Supported assignors: %s.", *req.ServerAssignor, strings.Join(consumerAssignors, ", "))
	}
	return 0, ""
}

// leave handles member epochs -1 (leave) and -2 (a static member leaves for now)
// (consumerGroupLeave). Kafka requires the instance id with -2; franz-go sends only the member
// id, so -2 without one is accepted: a static leave for a static member, a leave for another.
func (cg *consumerGroup) leave(req *kmsg.ConsumerGroupHeartbeatRequest) (*kmsg.ConsumerGroupHeartbeatResponse, int16, string) {
	g := cg.g
	var m *cmember
	if req.InstanceID == nil {
		if m = cg.members[req.MemberID]; m == nil {
			return nil, errUnknownMemberID, fmt.Sprintf("Member %s is not a member of group %s.", req.MemberID, g.id)
		}
	} else {
		id, ok := cg.static[*req.InstanceID]
		if m = cg.members[id]; !ok || m == nil {
			return nil, errUnknownMemberID, fmt.Sprintf("Instance id %s is unknown.", *req.InstanceID)
		}
		if id != req.MemberID {
			return nil, errFencedInstanceID, fmt.Sprintf("Static member %s with instance id %s is not the member %s.", id, *req.InstanceID, req.MemberID)
		}
	}
	resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	resp.MemberID, resp.MemberEpoch = &req.MemberID, req.MemberEpoch
	if req.MemberEpoch == staticLeaveEpoch && m.instanceID != nil {
		// The member keeps its assignment and its place until its session expires; the
		// partitions it was revoking are free (consumerGroupStaticMemberGroupLeave).
		g.c.log.Info("static member left the consumer group for now", "group", g.id, "member", m.id, "instance_id", *m.instanceID)
		cg.stopRevokeTimer(m)
		cg.setAssignment(m, m.assigned, partSet{})
		m.epoch = staticLeaveEpoch
		cg.recs = append(cg.recs, logstore.Record{Key: cgCurrentAssignmentKey(g.id, m.id), Value: cgCurrentAssignmentValue(m)})
		cg.updateState()
		return resp, 0, ""
	}
	th, _ := g.c.host.(TopicsHost)
	cg.fence([]*cmember{m}, th, "left the group")
	return resp, 0, ""
}

// heartbeat handles member epochs 0 and up (consumerGroupHeartbeat): the member is found or
// made, its subscription updated, the group epoch bumped when something changed, the target
// assignment recomputed when the group epoch is ahead, and the member reconciled.
func (cg *consumerGroup) heartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, cl Client, th TopicsHost) (*kmsg.ConsumerGroupHeartbeatResponse, int16, string) {
	g := cg.g
	joining := req.MemberEpoch == 0
	memberID := req.MemberID
	if memberID == "" {
		memberID = newConsumerMemberID() // v0: the coordinator names the member
	}
	known := cg.members[memberID] != nil
	if req.InstanceID != nil {
		_, static := cg.static[*req.InstanceID]
		known = known || static
	}
	if !known && len(cg.members) >= g.c.cfg.ConsumerMaxSize {
		return nil, errGroupMaxSizeReached, fmt.Sprintf("The consumer group has reached its maximum capacity of %d members.", g.c.cfg.ConsumerMaxSize)
	}

	// The member as it was (old), and the one this request updates (m).
	var m *cmember
	isNew := false
	if req.InstanceID == nil {
		m = cg.members[memberID]
		switch {
		case m == nil && joining:
			m, isNew = &cmember{id: memberID, assigned: partSet{}, pendingRevoke: partSet{}}, true
		case m == nil, !joining && m.classic != nil:
			return nil, errUnknownMemberID, fmt.Sprintf("Member %s is not a member of group %s.", memberID, g.id)
		case !joining:
			if code, msg := m.checkEpoch(req); code != 0 {
				return nil, code, msg
			}
		}
	} else {
		existing := cg.members[cg.static[*req.InstanceID]]
		switch {
		case !joining && (existing == nil || existing.classic != nil):
			return nil, errUnknownMemberID, fmt.Sprintf("Instance id %s is unknown.", *req.InstanceID)
		case !joining && existing.id != memberID:
			return nil, errFencedInstanceID, fmt.Sprintf("Static member %s with instance id %s is not the member %s.", existing.id, *req.InstanceID, memberID)
		case !joining:
			if code, msg := existing.checkEpoch(req); code != 0 {
				return nil, code, msg
			}
			m = existing
		case existing == nil:
			if m = cg.members[memberID]; m == nil {
				m, isNew = &cmember{id: memberID, assigned: partSet{}, pendingRevoke: partSet{}}, true
			}
		case existing.id == memberID:
			m = existing // the member joins again (a lost response)
		case existing.epoch != staticLeaveEpoch:
			return nil, errUnreleasedInstanceID, fmt.Sprintf("Static member %s with instance id %s is still in the group: it must leave first.", existing.id, *req.InstanceID)
		default:
			m = cg.replaceStatic(existing, memberID)
		}
	}

	old := *m
	if isNew {
		old = cmember{}
	}
	if req.InstanceID != nil {
		m.instanceID = req.InstanceID
	}
	if req.RackID != nil {
		m.rackID = req.RackID
	}
	if req.RebalanceTimeoutMillis != -1 {
		m.rebalanceTimeout = req.RebalanceTimeoutMillis
	}
	if req.ServerAssignor != nil {
		m.assignor = req.ServerAssignor
	}
	if req.SubscribedTopicNames != nil {
		names := slices.Clone(req.SubscribedTopicNames)
		sort.Strings(names)
		m.subscribedNames = slices.Compact(names)
	}
	if req.SubscribedTopicRegex != nil && !eqStrPtr(req.SubscribedTopicRegex, m.subscribedRegex) {
		m.subscribedRegex, m.regex = req.SubscribedTopicRegex, nil
		if *req.SubscribedTopicRegex != "" {
			m.regex, _ = compileSubscriptionRegex(*req.SubscribedTopicRegex) // validated
		}
	}
	m.clientID, m.clientHost = cl.ID, cl.Host
	if m.classic != nil {
		// A classic member joins again with the consumer protocol: it is one of those now.
		m.classic = nil
		cg.stopRejoinTimer(m)
	}
	if m.instanceID != nil && !isNew {
		cg.static[*m.instanceID] = m.id
	}
	if isNew {
		cg.addMember(m)
		g.c.log.Info("member joined the consumer group", "group", g.id, "member", m.id, "instance_id", strOrEmpty(m.instanceID), "client", m.clientID)
	}
	cg.updateMember(m, &old, isNew, th)
	cg.reconcile(m, req.Topics)
	cg.scheduleSession(m)
	cg.updateState()

	resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	resp.MemberID, resp.MemberEpoch = &m.id, m.epoch
	resp.HeartbeatIntervalMillis = int32(g.c.cfg.ConsumerHeartbeatInterval.Milliseconds())
	full := joining || req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil
	if full || !m.assigned.equal(old.assigned) {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		for _, t := range m.assigned.byTopic() {
			rt := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
			rt.TopicID, rt.Partitions = t.id, t.parts
			a.Topics = append(a.Topics, rt)
		}
		resp.Assignment = &a
	}
	return resp, 0, ""
}

// updateMember writes a member's record when it changed from old (isNew: it just joined), bumps
// the group epoch when its subscription or the subscribed topics changed, and computes the
// target assignment when the group epoch is ahead of it. Called by ConsumerGroupHeartbeat and
// by a classic member's JoinGroup; the caller reconciles the member next.
func (cg *consumerGroup) updateMember(m, old *cmember, isNew bool, th TopicsHost) {
	bump := cg.epoch == 0 || isNew
	if isNew || !m.sameMetadata(old) {
		cg.recs = append(cg.recs, logstore.Record{Key: cgMemberKey(cg.g.id, m.id), Value: cgMemberValue(m)})
		bump = bump || !m.sameSubscription(old)
	}
	if th != nil && (bump || cg.metaVersion != th.TopicsVersion()) {
		// Subscriptions or topics changed: a change of the subscribed topics' metadata is a
		// new group epoch.
		bump = cg.refreshTopics(th) || bump
	}
	if bump {
		cg.bumpEpoch()
	}
	if cg.epoch > cg.assignmentEpoch {
		cg.updateTarget()
	}
}

func strOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkEpoch is throwIfMemberEpochIsInvalid: a member ahead of its epoch is fenced; one behind
// is accepted only at its previous epoch with owned partitions within its assignment (the
// response that bumped it was lost).
func (m *cmember) checkEpoch(req *kmsg.ConsumerGroupHeartbeatRequest) (int16, string) {
	switch {
	case req.MemberEpoch > m.epoch:
		return errFencedMemberEpoch, fmt.Sprintf("The consumer group member has a greater member epoch (%d) than the one known by the group coordinator (%d). The member must abandon all its partitions and rejoin.", req.MemberEpoch, m.epoch)
	case req.MemberEpoch < m.epoch && (req.MemberEpoch != m.prevEpoch || !ownedWithin(req.Topics, m.assigned)):
		return errFencedMemberEpoch, fmt.Sprintf("The consumer group member has a smaller member epoch (%d) than the one known by the group coordinator (%d). The member must abandon all its partitions and rejoin.", req.MemberEpoch, m.epoch)
	}
	return 0, ""
}

// ownedWithin reports whether owned partitions (nil: not given) are all in s.
func ownedWithin(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, s partSet) bool {
	if owned == nil {
		return false
	}
	for _, t := range owned {
		for _, p := range t.Partitions {
			if !s.has(idPart{t.TopicID, p}) {
				return false
			}
		}
	}
	return true
}

// ownsAny reports whether the member may still own a partition of s: true when it did not say
// what it owns (owned nil).
func ownsAny(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, s partSet) bool {
	if owned == nil {
		return true
	}
	for _, t := range owned {
		for _, p := range t.Partitions {
			if s.has(idPart{t.TopicID, p}) {
				return true
			}
		}
	}
	return false
}

// replaceStatic gives a static member that left for now (epoch -2) to the member id that joins
// with its instance id: the new member takes its subscription and target assignment, and the
// partitions it held are free for the new member to take at once (replaceStaticMember).
func (cg *consumerGroup) replaceStatic(old *cmember, newID string) *cmember {
	g := cg.g
	g.c.log.Info("static member joined again; it replaces its previous member id", "group", g.id, "instance_id", *old.instanceID, "old", old.id, "new", newID)
	m := &cmember{
		id: newID, instanceID: old.instanceID, rackID: old.rackID, rebalanceTimeout: old.rebalanceTimeout,
		subscribedNames: old.subscribedNames, subscribedRegex: old.subscribedRegex, regex: old.regex, assignor: old.assignor,
		clientID: old.clientID, clientHost: old.clientHost, assigned: partSet{}, pendingRevoke: partSet{},
	}
	target, hasTarget := cg.target[old.id]
	cg.removeMember(old)
	cg.addMember(m)
	cg.recs = append(cg.recs, logstore.Record{Key: cgMemberKey(g.id, m.id), Value: cgMemberValue(m)})
	if hasTarget {
		cg.target[m.id] = target
		cg.recs = append(cg.recs, logstore.Record{Key: cgTargetMemberKey(g.id, m.id), Value: cgTargetMemberValue(target)})
	}
	cg.recs = append(cg.recs, logstore.Record{Key: cgCurrentAssignmentKey(g.id, m.id), Value: cgCurrentAssignmentValue(m)})
	return m
}

// reconcile moves a member towards its target assignment (CurrentAssignmentBuilder) and writes
// its current assignment when it changed. owned is what the member says it owns (nil: not
// said).
func (cg *consumerGroup) reconcile(m *cmember, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) {
	if m.reconciledTo(cg.assignmentEpoch) {
		return
	}
	switch m.state {
	case memberUnrevokedPartitions:
		if ownsAny(owned, m.pendingRevoke) {
			return // still revoking
		}
	}
	before := *m
	epoch, state, assigned, pending := cg.nextAssignment(m, owned)
	m.prevEpoch, m.epoch, m.state = m.epoch, epoch, state
	cg.setAssignment(m, assigned, pending)
	if m.epoch == before.epoch && m.prevEpoch == before.prevEpoch && m.state == before.state &&
		m.assigned.equal(before.assigned) && m.pendingRevoke.equal(before.pendingRevoke) {
		return
	}
	g := cg.g
	cg.recs = append(cg.recs, logstore.Record{Key: cgCurrentAssignmentKey(g.id, m.id), Value: cgCurrentAssignmentValue(m)})
	g.c.log.Debug("member reconciled", "group", g.id, "member", m.id, "epoch", m.epoch, "state", m.state.String(),
		"assigned", len(m.assigned), "revoking", len(m.pendingRevoke))
	if m.state == memberUnrevokedPartitions {
		cg.scheduleRevoke(m)
	} else {
		cg.stopRevokeTimer(m)
	}
}

// nextAssignment is CurrentAssignmentBuilder.computeNextAssignment from the member's epoch and
// assignment:
//
//   - kept = assigned ∩ target; revoke = assigned − kept;
//   - give = target − kept, minus partitions another member holds (unreleased);
//   - partitions to revoke that the member may still own: it stays at its epoch, with kept
//     only (unrevoked_partitions);
//   - otherwise it takes the target epoch with kept ∪ give (unreleased_partitions while some
//     of its target is held elsewhere, else stable).
func (cg *consumerGroup) nextAssignment(m *cmember, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) (int32, memberState, partSet, partSet) {
	target := cg.target[m.id]
	kept, revoke, give := partSet{}, partSet{}, partSet{}
	for ip := range m.assigned {
		if target.has(ip) {
			kept[ip] = struct{}{}
		} else {
			revoke[ip] = struct{}{}
		}
	}
	unreleased := false
	for ip := range target {
		if kept.has(ip) {
			continue
		}
		if o, held := cg.owners[ip]; held && o != m.id {
			unreleased = true
			continue
		}
		give[ip] = struct{}{}
	}
	if len(revoke) > 0 && ownsAny(owned, revoke) {
		return m.epoch, memberUnrevokedPartitions, kept, revoke
	}
	for ip := range give {
		kept[ip] = struct{}{}
	}
	state := memberStable
	if unreleased {
		state = memberUnreleasedPartitions
	}
	return cg.assignmentEpoch, state, kept, partSet{}
}

// ConsumerGroupDescribe handles ConsumerGroupDescribe v0–v1: a consumer group's epochs,
// assignor and members with their assignment and target. An unknown group, or a classic one,
// is GROUP_ID_NOT_FOUND. authorized_operations is not computed (INT32_MIN).
func (c *Coordinator) ConsumerGroupDescribe(req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := kmsg.NewPtrConsumerGroupDescribeResponse()
	th, _ := c.host.(TopicsHost)
	for _, id := range req.Groups {
		out := kmsg.NewConsumerGroupDescribeResponseGroup()
		out.Group = id
		c.describeConsumerGroup(id, th, &out)
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

func (c *Coordinator) describeConsumerGroup(id string, th TopicsHost, out *kmsg.ConsumerGroupDescribeResponseGroup) {
	fail := func(code int16, msg string) {
		out.ErrorCode = code
		if msg != "" {
			out.ErrorMessage = &msg
		}
	}
	if id == "" {
		fail(errInvalidGroupID, "")
		return
	}
	if code := c.status(id); code != 0 {
		fail(code, "")
		return
	}
	g, code := c.lockGroup(id, false)
	if code != 0 {
		fail(code, "")
		return
	}
	if g == nil {
		fail(errGroupIDNotFound, fmt.Sprintf("Group %s not found.", id))
		return
	}
	defer g.unlock()
	cg := g.cg
	if cg == nil {
		fail(errGroupIDNotFound, fmt.Sprintf("Group %s is not a consumer group.", id))
		return
	}
	out.State, out.Epoch, out.AssignmentEpoch = cg.state.String(), cg.epoch, cg.assignmentEpoch
	out.AssignorName = cg.preferredAssignor()
	names := map[[16]byte]string{}
	for n, t := range cg.topics {
		names[t.id] = n
	}
	nameOf := func(tid [16]byte) (string, bool) {
		if n, ok := names[tid]; ok {
			return n, true
		}
		if th != nil {
			if n, _, ok := th.TopicByID(tid); ok {
				return n, true
			}
		}
		return "", false
	}
	assignment := func(s partSet) kmsg.Assignment {
		a := kmsg.NewAssignment()
		for _, t := range s.byTopic() {
			n, ok := nameOf(t.id)
			if !ok {
				continue // a deleted topic
			}
			tp := kmsg.NewAssignmentTopicPartition()
			tp.TopicID, tp.Topic, tp.Partitions = t.id, n, t.parts
			a.TopicPartitions = append(a.TopicPartitions, tp)
		}
		return a
	}
	for _, m := range cg.sortedMembers() {
		dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.RackID, dm.MemberEpoch = m.id, m.instanceID, m.rackID, m.epoch
		dm.ClientID, dm.ClientHost = m.clientID, m.clientHost
		dm.SubscribedTopics = m.subscribedNames
		if dm.SubscribedTopics == nil {
			dm.SubscribedTopics = []string{}
		}
		dm.SubscribedTopicRegex = m.subscribedRegex
		dm.Assignment, dm.TargetAssignment = assignment(m.assigned), assignment(cg.target[m.id])
		dm.MemberType = 1 // a consumer-protocol member
		if m.classic != nil {
			dm.MemberType = 0
		}
		out.Members = append(out.Members, dm)
	}
}

// describeNotClassic is DescribeGroups' answer for a consumer group: Dead, with
// GROUP_ID_NOT_FOUND from v6 (GroupMetadataManager.describeGroups).
func describeNotClassic(out *kmsg.DescribeGroupsResponseGroup, version int16) {
	out.State = Dead.String()
	if version >= 6 {
		out.ErrorCode = errGroupIDNotFound
		msg := "Group " + out.Group + " is not a classic group."
		out.ErrorMessage = &msg
	}
}
