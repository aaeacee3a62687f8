package coordinator

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Client describes the connection a request came from.
type Client struct {
	ID   string // client_id of the request header
	Host string // "/" + the peer's IP address, as Kafka reports it
}

// JoinGroup handles JoinGroup v0–v9. reply is called exactly once, now or when the rebalance
// completes (from a timer's goroutine or another member's request).
func (c *Coordinator) JoinGroup(req *kmsg.JoinGroupRequest, cl Client, reply func(*kmsg.JoinGroupResponse)) {
	if req.Group == "" {
		reply(joinError(req.MemberID, errInvalidGroupID))
		return
	}
	if code := c.status(req.Group); code != 0 {
		reply(joinError(req.MemberID, code))
		return
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		reply(joinError(req.MemberID, errInvalidSessionTimeout))
		return
	}
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		rebalance = session // v0 has no rebalance timeout: the session timeout serves
	}
	j := &joinReq{
		version: req.Version, memberID: req.MemberID, instanceID: req.InstanceID,
		protocolType: req.ProtocolType, session: session, rebalance: rebalance, client: cl, reply: reply,
	}
	for _, p := range req.Protocols {
		j.protocols = append(j.protocols, protocol{name: p.Name, metadata: p.Metadata})
	}
	unknown := req.MemberID == ""
	// A group is created only for a member without an id; a known id in an unknown group
	// is UNKNOWN_MEMBER_ID.
	g, code := c.lockGroup(req.Group, unknown)
	if code != 0 {
		reply(joinError(req.MemberID, code))
		return
	}
	if g == nil {
		reply(joinError(req.MemberID, errUnknownMemberID))
		return
	}
	defer g.unlock()
	switch {
	case c.closed.Load():
		// Drain has passed (or is passing) this group: parking now would never be answered.
		j.fail(g, req.MemberID, errNotCoordinator)
		return
	case g.cg != nil && len(g.cg.members) > 0:
		g.cg.classicJoin(j) // a classic member of a consumer group (migration.go)
		return
	case !g.joinAsClassic(j):
		return // an empty consumer group that could not become classic
	case !g.acceptJoining(req.MemberID):
		if m := g.members[req.MemberID]; m != nil {
			g.removeMemberAndUpdate(m, "group max size reached")
		} else {
			g.remove(req.MemberID) // a pending member id (KIP-394) goes too
		}
		j.fail(g, "", errGroupMaxSizeReached)
	case unknown:
		g.newMemberJoin(j)
	default:
		g.currentMemberJoin(j)
	}
	if g.state == PreparingRebalance {
		g.tryCompleteJoin()
	}
}

// joinReq is a JoinGroup request as the group logic needs it.
type joinReq struct {
	version      int16
	memberID     string
	instanceID   *string
	protocolType string
	protocols    []protocol
	session      time.Duration
	rebalance    time.Duration
	client       Client
	reply        func(*kmsg.JoinGroupResponse)
}

func (j *joinReq) fail(g *group, memberID string, code int16) {
	reply := j.reply
	g.out = append(g.out, func() { reply(joinError(memberID, code)) })
}

// acceptJoining applies group.max.size (GroupCoordinator.acceptJoiningMember): an empty group
// takes anyone; during a rebalance an awaiting member is kept and others count against the
// awaiting members; otherwise existing members are kept and new ones count against the size.
func (g *group) acceptJoining(memberID string) bool {
	max := g.c.cfg.MaxSize
	switch g.state {
	case Empty, Dead:
		return true
	case PreparingRebalance:
		m := g.members[memberID]
		return m != nil && m.awaitingJoin() || g.numAwaiting < max
	default:
		return g.members[memberID] != nil || len(g.members) < max
	}
}

// newMemberJoin handles a JoinGroup without a member id (doNewMemberJoinGroup).
func (g *group) newMemberJoin(j *joinReq) {
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		j.fail(g, "", errInconsistentGroupProtocol)
		return
	}
	prefix := j.client.ID
	if j.instanceID != nil {
		prefix = *j.instanceID
	}
	id := newMemberID(prefix)
	switch {
	case j.instanceID != nil:
		g.staticMemberJoin(j, id)
	case j.version >= 4:
		// KIP-394: hand out the id and have the member join again with it, so that a client
		// whose join times out does not leave a ghost member behind.
		g.addPending(id, j.session)
		j.fail(g, id, errMemberIDRequired)
	default:
		g.addMemberAndRebalance(j, id)
	}
}

// currentMemberJoin handles a JoinGroup with a member id (doCurrentMemberJoinGroup).
func (g *group) currentMemberJoin(j *joinReq) {
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		j.fail(g, j.memberID, errInconsistentGroupProtocol)
		return
	}
	if g.pending[j.memberID] != nil {
		g.addMemberAndRebalance(j, j.memberID) // the second join of KIP-394
		return
	}
	if j.instanceID != nil {
		if cur, ok := g.static[*j.instanceID]; ok && cur != j.memberID {
			j.fail(g, j.memberID, errFencedInstanceID)
			return
		} else if !ok {
			j.fail(g, j.memberID, errUnknownMemberID)
			return
		}
	}
	m := g.members[j.memberID]
	if m == nil {
		j.fail(g, j.memberID, errUnknownMemberID)
		return
	}
	switch g.state {
	case PreparingRebalance:
		g.updateMemberAndRebalance(m, j, "member "+m.id+" joined during a rebalance")
	case CompletingRebalance:
		if m.matches(j.protocols) {
			// The member lost the JoinGroup response: answer it again.
			resp := g.joinResult(m, g.leader, g.leader == m.id, false)
			j.answer(g, resp)
			return
		}
		g.updateMemberAndRebalance(m, j, "member "+m.id+" changed its metadata")
	case Stable:
		if g.leader == m.id || !m.matches(j.protocols) {
			// The leader rejoins to rebalance for changes the metadata does not show
			// (topics created, partitions added); anyone else only when its metadata changed.
			g.updateMemberAndRebalance(m, j, "leader or changed member "+m.id+" rejoined")
			return
		}
		j.answer(g, g.joinResult(m, g.leader, false, false))
	default:
		j.fail(g, j.memberID, errUnknownMemberID)
	}
}

// answer queues the response to the request.
func (j *joinReq) answer(g *group, resp *kmsg.JoinGroupResponse) {
	reply := j.reply
	g.out = append(g.out, func() { reply(resp) })
}

// staticMemberJoin handles a static member joining without a member id (KIP-345).
func (g *group) staticMemberJoin(j *joinReq, newID string) {
	oldID, known := g.static[*j.instanceID]
	if !known {
		g.addMemberAndRebalance(j, newID)
		return
	}
	g.c.log.Info("static member rejoined, replacing its member id", "group", g.id, "instance_id", *j.instanceID, "old", oldID, "new", newID, "state", g.state.String())
	oldLeader := g.leader
	m := g.replaceStaticMember(*j.instanceID, oldID, newID)
	m.clientID, m.clientHost = j.client.ID, j.client.Host
	g.scheduleHeartbeat(m, m.sessionTimeout)
	oldProtocols, oldRebalance, oldSession := m.protocols, m.rebalanceTimeout, m.sessionTimeout
	g.updateMember(m, j.protocols, j.rebalance, j.session, j.reply)
	switch g.state {
	case Stable:
		// Without a change of the selected protocol the group keeps its generation and
		// assignment: store the new member id and answer at once (no rebalance).
		if g.selectProtocol() != g.protocolName {
			g.prepareRebalance("static member " + newID + " changed the group's protocol")
			return
		}
		assignment := map[string][]byte{}
		for id, x := range g.members {
			assignment[id] = x.assignment
		}
		if code := g.store(assignment); code != 0 {
			g.c.log.Warn("store static member replacement", "group", g.id, "code", code)
			g.updateMember(m, oldProtocols, oldRebalance, oldSession, nil)
			old := g.replaceStaticMember(*j.instanceID, newID, oldID)
			g.scheduleHeartbeat(old, old.sessionTimeout)
			resp := g.joinResult(old, oldLeader, false, false)
			resp.ErrorCode, resp.MemberID = code, ""
			j.answer(g, resp)
			return
		}
		if j.version >= 9 {
			// KIP-814: a static leader learns it leads, but must not assign.
			isLeader := g.leader == newID
			g.invokeJoin(m, g.joinResult(m, g.leader, isLeader, isLeader))
		} else {
			// Before v9 the old leader id is returned, so a rejoining leader does not
			// compute an assignment a stable group would not send.
			g.invokeJoin(m, g.joinResult(m, oldLeader, false, false))
		}
	case CompletingRebalance:
		// The leader may be assigning to the old member id: rebalance again.
		g.prepareRebalance("static member " + newID + " rejoined during CompletingRebalance")
	case PreparingRebalance:
		// The parked join is answered when the rebalance completes.
	}
}

// addMemberAndRebalance adds a new member with a parked JoinGroup and starts (or joins) a
// rebalance.
func (g *group) addMemberAndRebalance(j *joinReq, id string) {
	m := &member{
		id: id, instanceID: j.instanceID, clientID: j.client.ID, clientHost: j.client.Host,
		rebalanceTimeout: j.rebalance, sessionTimeout: j.session, protocolType: j.protocolType,
		protocols: j.protocols, isNew: true,
	}
	if g.state == PreparingRebalance && g.generation == 0 {
		g.newMemberAdded = true // lets the initial delay extend
	}
	g.add(m, j.reply)
	// A new member cannot heartbeat until it has its generation; its parked join is what
	// expires if the rebalance outlives NewMemberJoinTimeout.
	g.scheduleHeartbeat(m, g.c.cfg.NewMemberJoinTimeout)
	g.maybePrepareRebalance("adding member " + id)
}

func (g *group) updateMemberAndRebalance(m *member, j *joinReq, reason string) {
	m.clientID, m.clientHost = j.client.ID, j.client.Host
	g.updateMember(m, j.protocols, j.rebalance, j.session, j.reply)
	g.maybePrepareRebalance(reason)
}

func (g *group) maybePrepareRebalance(reason string) {
	switch g.state {
	case Stable, CompletingRebalance, Empty:
		g.prepareRebalance(reason)
	}
}

// prepareRebalance moves the group to PreparingRebalance and starts the wait for members to
// join: the initial delay for an Empty group, else the rebalance timeout, ended early once
// every member has joined.
func (g *group) prepareRebalance(reason string) {
	if g.state == CompletingRebalance {
		g.resetAndPropagateAssignmentError(errRebalanceInProgress)
	}
	g.stopSyncTimer()
	wasEmpty := g.state == Empty
	timeout := g.rebalanceTimeout()
	g.transition(PreparingRebalance)
	g.c.log.Info("preparing to rebalance", "group", g.id, "generation", g.generation, "reason", reason)
	g.stopJoinTimer()
	if wasEmpty {
		delay := g.c.cfg.InitialRebalanceDelay
		g.initialJoin = true
		g.startInitialJoin(delay, max(timeout-delay, 0))
		return
	}
	g.initialJoin = false
	g.startJoin(timeout)
	g.tryCompleteJoin()
}

// startInitialJoin waits delay, then again (up to remaining in all) while new members keep
// arriving, then completes the join (InitialDelayedJoin).
func (g *group) startInitialJoin(delay, remaining time.Duration) {
	seq := g.joinSeq
	g.joinTimer = time.AfterFunc(delay, func() {
		g.mu.Lock()
		defer g.unlock()
		if g.stopped() || g.joinSeq != seq || g.state != PreparingRebalance {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			d := min(g.c.cfg.InitialRebalanceDelay, remaining)
			g.joinSeq++
			g.startInitialJoin(d, max(remaining-delay, 0))
			return
		}
		g.completeJoin()
	})
}

// startJoin completes the join after timeout, whoever has joined by then (DelayedJoin).
func (g *group) startJoin(timeout time.Duration) {
	seq := g.joinSeq
	g.joinTimer = time.AfterFunc(timeout, func() {
		g.mu.Lock()
		defer g.unlock()
		if g.stopped() || g.joinSeq != seq || g.state != PreparingRebalance {
			return
		}
		g.completeJoin()
	})
}

func (g *group) stopJoinTimer() {
	g.joinSeq++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
}

// tryCompleteJoin completes a rebalance (not the initial delay) once every member joined.
func (g *group) tryCompleteJoin() {
	if g.state == PreparingRebalance && !g.initialJoin && g.hasAllMembersJoined() {
		g.completeJoin()
	}
}

// completeJoin ends the join phase (onCompleteJoin): dynamic members that did not rejoin are
// dropped, a leader is chosen among those that did, and the next generation starts — Empty,
// or CompletingRebalance with every parked JoinGroup answered.
func (g *group) completeJoin() {
	g.stopJoinTimer()
	for _, m := range g.sortedMembers() {
		if !m.awaitingJoin() && m.instanceID == nil {
			g.c.log.Info("removing member that did not rejoin", "group", g.id, "member", m.id)
			g.invokeSync(m, syncError(errRebalanceInProgress))
			g.remove(m.id)
		}
	}
	if !g.electJoinedLeader() && len(g.members) > 0 {
		// Only static members that did not rejoin are left: wait for them again.
		g.c.log.Warn("no member rejoined; waiting another rebalance timeout", "group", g.id)
		g.initialJoin = false
		g.startJoin(g.rebalanceTimeout())
		return
	}
	g.initNextGeneration()
	if g.state == Empty {
		g.c.log.Info("group is empty", "group", g.id, "generation", g.generation)
		if code := g.store(nil); code != 0 {
			// The previous generation stays in the log; it has no members, so this is safe.
			g.c.log.Warn("store empty group", "group", g.id, "code", code)
		}
		return
	}
	g.c.log.Info("stabilizing group", "group", g.id, "generation", g.generation, "members", len(g.members), "protocol", g.protocolName, "leader", g.leader)
	g.c.metrics.rebalances.Inc()
	for _, m := range g.sortedMembers() {
		isLeader := m.id == g.leader
		g.invokeJoin(m, g.joinResult(m, g.leader, isLeader, false))
		g.scheduleHeartbeat(m, m.sessionTimeout)
		m.isNew = false
		g.pendingSync[m.id] = true
	}
	g.startPendingSync()
}

// electJoinedLeader keeps the leader if it rejoined, else picks the oldest member that did;
// false when no member has rejoined.
func (g *group) electJoinedLeader() bool {
	if l := g.members[g.leader]; l != nil && l.awaitingJoin() {
		return true
	}
	for _, m := range g.sortedMembers() {
		if m.awaitingJoin() {
			g.leader = m.id
			return true
		}
	}
	return false
}

// initNextGeneration starts a generation: protocol chosen, subscriptions noted.
func (g *group) initNextGeneration() {
	g.generation++
	if len(g.members) > 0 {
		g.protocolName = g.selectProtocol()
		g.subscribed = g.computeSubscribed()
		g.transition(CompletingRebalance)
	} else {
		g.protocolName = ""
		g.subscribed = g.computeSubscribed()
		g.transition(Empty)
	}
	clear(g.pendingSync)
}

// startPendingSync removes, after the rebalance timeout, members of the new generation that
// never sent SyncGroup, and rebalances without them (DelayedSync).
func (g *group) startPendingSync() {
	g.stopSyncTimer()
	seq, gen := g.syncSeq, g.generation
	g.syncTimer = time.AfterFunc(g.rebalanceTimeout(), func() {
		g.mu.Lock()
		defer g.unlock()
		if g.stopped() || g.syncSeq != seq || g.generation != gen {
			return
		}
		if g.state != CompletingRebalance && g.state != Stable || len(g.pendingSync) == 0 {
			return
		}
		var ids []string
		for id := range g.pendingSync {
			ids = append(ids, id)
		}
		g.c.log.Info("removing members that did not sync", "group", g.id, "members", ids)
		for _, id := range ids {
			if m := g.members[id]; m != nil {
				g.invokeJoin(m, joinError("", errUnknownMemberID))
				g.remove(id)
			}
		}
		g.maybePrepareRebalance("members did not sync in time")
	})
}

func (g *group) stopSyncTimer() {
	g.syncSeq++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
		g.syncTimer = nil
	}
}
