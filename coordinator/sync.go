package coordinator

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup handles SyncGroup v0–v5. reply is called exactly once: at once, or when the
// leader's assignment is stored.
func (c *Coordinator) SyncGroup(req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
	if req.Group == "" {
		reply(syncError(errInvalidGroupID))
		return
	}
	if code := c.status(req.Group); code != 0 {
		reply(syncError(code))
		return
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		reply(syncError(code))
		return
	}
	if g == nil {
		reply(syncError(errUnknownMemberID))
		return
	}
	defer g.unlock()
	fail := func(code int16) { g.out = append(g.out, func() { reply(syncError(code)) }) }
	if c.closed.Load() {
		fail(errNotCoordinator) // Drain has passed this group: a parked sync would be lost
		return
	}
	if g.cg != nil {
		g.cg.classicSync(req, reply) // a classic member of a consumer group (migration.go)
		return
	}
	if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
		fail(code)
		return
	}
	switch {
	case req.Generation != g.generation:
		fail(errIllegalGeneration)
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocolName:
		fail(errInconsistentGroupProtocol)
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case Empty:
		fail(errUnknownMemberID)
	case PreparingRebalance:
		fail(errRebalanceInProgress)
	case CompletingRebalance:
		if m.awaitingSync() {
			g.invokeSync(m, syncError(errRebalanceInProgress)) // superseded by this one
		}
		m.syncReply = reply
		delete(g.pendingSync, m.id)
		g.stopHeartbeat(m) // waiting for the leader counts as alive
		if g.leader != m.id {
			return
		}
		g.c.log.Info("assignment received from the leader", "group", g.id, "generation", g.generation, "members", len(g.members))
		assignment := make(map[string][]byte, len(g.members))
		for _, a := range req.GroupAssignment {
			assignment[a.MemberID] = a.MemberAssignment
		}
		for id := range g.members {
			if _, ok := assignment[id]; !ok {
				g.c.log.Warn("leader gave no assignment to a member; it gets an empty one", "group", g.id, "member", id)
				assignment[id] = []byte{}
			}
		}
		if code := g.store(assignment); code != 0 {
			g.resetAndPropagateAssignmentError(code)
			g.maybePrepareRebalance("storing the group assignment failed")
			return
		}
		g.setAndPropagateAssignment(assignment)
		g.transition(Stable)
	case Stable:
		delete(g.pendingSync, m.id)
		resp := g.syncResult(m.assignment)
		g.out = append(g.out, func() { reply(resp) })
		g.scheduleHeartbeat(m, m.sessionTimeout)
	}
}

func (g *group) syncResult(assignment []byte) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ProtocolType = strPtrOrNil(g.protocolType)
	resp.Protocol = strPtrOrNil(g.protocolName)
	if assignment == nil {
		assignment = []byte{}
	}
	resp.MemberAssignment = assignment
	return resp
}

// setAndPropagateAssignment hands every member its assignment and answers parked syncs.
func (g *group) setAndPropagateAssignment(assignment map[string][]byte) {
	for _, m := range g.sortedMembers() {
		m.assignment = assignment[m.id]
		if g.invokeSync(m, g.syncResult(m.assignment)) {
			g.scheduleHeartbeat(m, m.sessionTimeout)
		}
	}
}

// resetAndPropagateAssignmentError fails parked syncs with code. Unlike Kafka, which clears
// them, the members keep their assignments of the last generation: they are read only in
// Stable (DescribeGroups, a static member's replacement, both after the next sync) and by an
// upgrade to a consumer group (migration.go), where they are what cooperative members still
// hold.
func (g *group) resetAndPropagateAssignmentError(code int16) {
	for _, m := range g.sortedMembers() {
		if g.invokeSync(m, syncError(code)) {
			g.scheduleHeartbeat(m, m.sessionTimeout)
		}
	}
}

// Heartbeat handles Heartbeat v0–v4.
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.ErrorCode = c.heartbeat(req)
	return resp
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
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
		return errUnknownMemberID
	}
	defer g.unlock()
	if g.cg != nil {
		return g.cg.classicHeartbeat(req) // a classic member of a consumer group (migration.go)
	}
	if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return errIllegalGeneration
	}
	m := g.members[req.MemberID]
	switch g.state {
	case Empty:
		return errUnknownMemberID
	case PreparingRebalance:
		g.scheduleHeartbeat(m, m.sessionTimeout)
		return errRebalanceInProgress
	default: // CompletingRebalance (a member may heartbeat before it syncs), Stable
		g.scheduleHeartbeat(m, m.sessionTimeout)
		return 0
	}
}

// LeaveGroup handles LeaveGroup v0–v5 (v3+ batches members, KIP-345; a member given only by
// its group instance id is removed by an administrator).
func (c *Coordinator) LeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := kmsg.NewPtrLeaveGroupResponse()
	leaving := req.Members
	if req.Version < 3 {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = req.MemberID
		leaving = []kmsg.LeaveGroupRequestMember{m}
	}
	top, results := c.leaveGroup(req.Group, leaving)
	if req.Version < 3 {
		// One member: its error is the response's.
		resp.ErrorCode = top
		if top == 0 && len(results) > 0 {
			resp.ErrorCode = results[0].ErrorCode
		}
		return resp
	}
	resp.ErrorCode, resp.Members = top, results
	return resp
}

func (c *Coordinator) leaveGroup(id string, leaving []kmsg.LeaveGroupRequestMember) (int16, []kmsg.LeaveGroupResponseMember) {
	if id == "" {
		return errInvalidGroupID, nil
	}
	if code := c.status(id); code != 0 {
		return code, nil
	}
	result := func(l kmsg.LeaveGroupRequestMember, code int16) kmsg.LeaveGroupResponseMember {
		r := kmsg.NewLeaveGroupResponseMember()
		r.MemberID, r.InstanceID, r.ErrorCode = l.MemberID, l.InstanceID, code
		return r
	}
	out := make([]kmsg.LeaveGroupResponseMember, 0, len(leaving))
	g, code := c.lockGroup(id, false)
	if code != 0 {
		return code, nil
	}
	if g == nil {
		for _, l := range leaving {
			out = append(out, result(l, errUnknownMemberID))
		}
		return 0, out
	}
	defer g.unlock()
	if g.cg != nil {
		return g.cg.classicLeave(leaving) // classic members of a consumer group (migration.go)
	}
	for _, l := range leaving {
		reason := "member left the group"
		if l.Reason != nil {
			reason += ": " + *l.Reason
		}
		switch {
		case l.MemberID == "":
			cur, ok := "", false
			if l.InstanceID != nil {
				cur, ok = g.static[*l.InstanceID]
			}
			if !ok {
				out = append(out, result(l, errUnknownMemberID))
				continue
			}
			g.removeMemberAndUpdate(g.members[cur], reason)
			out = append(out, result(l, 0))
		case g.pending[l.MemberID] != nil:
			g.remove(l.MemberID)
			if g.state == PreparingRebalance {
				g.tryCompleteJoin()
			}
			out = append(out, result(l, 0))
		default:
			if code := g.validateMember(l.MemberID, l.InstanceID); code != 0 {
				out = append(out, result(l, code))
				continue
			}
			g.c.log.Info("member left", "group", g.id, "member", l.MemberID, "reason", reason)
			g.removeMemberAndUpdate(g.members[l.MemberID], reason)
			out = append(out, result(l, 0))
		}
	}
	return 0, out
}
