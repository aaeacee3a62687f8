package coordinator

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a classic group's state (Kafka's GroupState names).
type State int8

// The states of a classic group.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
	numStates
)

func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	case Dead:
		return "Dead"
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

// validPrevious lists the states each state may be entered from (GroupMetadata.scala).
var validPrevious = [numStates][]State{
	Empty:               {PreparingRebalance},
	PreparingRebalance:  {Stable, CompletingRebalance, Empty},
	CompletingRebalance: {PreparingRebalance},
	Stable:              {CompletingRebalance},
	Dead:                {Stable, PreparingRebalance, CompletingRebalance, Empty, Dead},
}

type protocol struct {
	name     string
	metadata []byte
}

// member is one member of a group. Every field is guarded by the group's mu.
type member struct {
	id               string
	instanceID       *string // group.instance.id of a static member (KIP-345)
	clientID         string
	clientHost       string
	rebalanceTimeout time.Duration
	sessionTimeout   time.Duration
	protocolType     string
	protocols        []protocol // in the member's order of preference
	assignment       []byte
	seq              uint64 // order of joining: a new leader is the oldest member

	joinReply func(*kmsg.JoinGroupResponse) // set while a JoinGroup waits for the rebalance
	syncReply func(*kmsg.SyncGroupResponse) // set while a SyncGroup waits for the leader
	isNew     bool                          // joined in this rebalance: no generation yet
	hbTimer   *time.Timer                   // session (or new-member join) expiry
	hbSeq     uint64                        // invalidates a stale hbTimer firing
}

func (m *member) awaitingJoin() bool { return m.joinReply != nil }
func (m *member) awaitingSync() bool { return m.syncReply != nil }

// metadata returns the member's metadata for a protocol.
func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// matches reports whether protocols are the member's, in the same order with the same bytes.
func (m *member) matches(ps []protocol) bool {
	if len(ps) != len(m.protocols) {
		return false
	}
	for i := range ps {
		if ps[i].name != m.protocols[i].name || !bytes.Equal(ps[i].metadata, m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// vote is the member's most preferred protocol among the candidates.
func (m *member) vote(candidates map[string]bool) string {
	for _, p := range m.protocols {
		if candidates[p.name] {
			return p.name
		}
	}
	return ""
}

// hasSatisfiedHeartbeat is Kafka's rule for a session that expired: a new member must have
// completed its join; a member waiting for a rebalance is alive by definition.
func (m *member) hasSatisfiedHeartbeat() bool {
	if m.isNew {
		return false
	}
	return m.awaitingJoin() || m.awaitingSync()
}

// topicPartition names a committed offset.
type topicPartition struct {
	topic     string
	partition int32
}

// offset is a committed offset (OffsetAndMetadata).
type offset struct {
	offset      int64
	leaderEpoch int32 // -1: none
	metadata    string
	commitMs    int64
	expireMs    int64 // -1: none (set only by OffsetCommit v2-v4 retention_time_ms)
}

// group is one group's state. Every field below mu is guarded by it.
type group struct {
	c         *Coordinator
	id        string
	partition int32 // of __consumer_offsets

	// gone is set (with Coordinator.mu held) when the group leaves the map because its
	// partition is no longer served here (OnResignation): lockGroup skips it and its timers do
	// nothing. Its parked requests are answered, and its timers stopped, under mu afterwards.
	gone atomic.Bool

	mu             sync.Mutex
	state          State
	stateMs        int64  // when the group entered its state
	protocolType   string // "" when none (a group used only for offsets)
	protocolName   string // the selected protocol; "" outside a generation
	generation     int32
	leader         string
	members        map[string]*member
	memberSeq      uint64
	static         map[string]string                    // group.instance.id → member id
	pending        map[string]*time.Timer               // KIP-394: ids given out, awaiting their join
	pendingSync    map[string]bool                      // members of this generation that have not synced
	supported      map[string]int                       // protocol → members supporting it
	numAwaiting    int                                  // members with a parked JoinGroup
	newMemberAdded bool                                 // a new member came during the initial delay
	subscribed     map[string]bool                      // topics the members consume; nil when unknown
	offsets        map[topicPartition]*offset           // committed offsets
	pendingTxn     map[int64]map[topicPartition]*offset // transactional commits awaiting their marker, by producer id
	joinTimer      *time.Timer                          // rebalance (or initial delay) expiry
	joinSeq        uint64                               // invalidates a stale joinTimer firing
	initialJoin    bool                                 // joinTimer is the initial delay: it never completes early
	syncTimer      *time.Timer                          // pending-sync expiry
	syncSeq        uint64                               // invalidates a stale syncTimer firing
	out            []func()                             // replies to send once mu is released
	cg             *consumerGroup                       // set for a consumer (KIP-848) group
}

func newGroup(c *Coordinator, id string, partition int32) *group {
	g := &group{
		c: c, id: id, partition: partition, state: Empty, stateMs: nowMs(),
		members: map[string]*member{}, static: map[string]string{}, pending: map[string]*time.Timer{},
		pendingSync: map[string]bool{}, supported: map[string]int{}, offsets: map[topicPartition]*offset{},
		pendingTxn: map[int64]map[topicPartition]*offset{},
	}
	c.metrics.byState[Empty].Add(1)
	return g
}

// stopped reports whether the group's timers must do nothing: the coordinator is draining, or
// the group was unloaded.
func (g *group) stopped() bool { return g.c.closed.Load() || g.gone.Load() }

// unlock releases mu, then sends the replies queued while it was held.
func (g *group) unlock() {
	out := g.out
	g.out = nil
	g.mu.Unlock()
	for _, f := range out {
		f()
	}
}

func (g *group) transition(to State) {
	ok := false
	for _, from := range validPrevious[to] {
		ok = ok || from == g.state
	}
	if !ok {
		panic(fmt.Sprintf("BUG: group %q: transition from %s to %s", g.id, g.state, to))
	}
	g.c.metrics.byState[g.state].Add(-1)
	if to != Dead {
		g.c.metrics.byState[to].Add(1)
	}
	g.state = to
	g.stateMs = nowMs()
}

// sortedMembers returns the members oldest first.
func (g *group) sortedMembers() []*member {
	out := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

func (g *group) hasAllMembersJoined() bool {
	return len(g.members) == g.numAwaiting && len(g.pending) == 0
}

// supportsProtocols reports whether a member with these protocols may join: the first member
// needs a protocol type and protocols, later ones the group's type and a protocol that every
// member supports.
func (g *group) supportsProtocols(protocolType string, ps []protocol) bool {
	if g.state == Empty {
		return protocolType != "" && len(ps) > 0
	}
	if g.protocolType != protocolType {
		return false
	}
	for _, p := range ps {
		if g.supported[p.name] == len(g.members) {
			return true
		}
	}
	return false
}

// add makes m a member; reply, when set, parks its JoinGroup.
func (g *group) add(m *member, reply func(*kmsg.JoinGroupResponse)) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.memberSeq++
	m.seq = g.memberSeq
	g.members[m.id] = m
	for _, p := range m.protocols {
		g.supported[p.name]++
	}
	if reply != nil {
		m.joinReply = reply
		g.numAwaiting++
	}
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if t := g.pending[m.id]; t != nil {
		t.Stop()
		delete(g.pending, m.id)
	}
	g.c.metrics.members.Add(1)
}

// remove drops a member (or a pending member id). Its parked requests must have been answered.
func (g *group) remove(id string) {
	if m := g.members[id]; m != nil {
		for _, p := range m.protocols {
			g.supported[p.name]--
		}
		if m.awaitingJoin() {
			g.numAwaiting--
		}
		if m.instanceID != nil && g.static[*m.instanceID] == id {
			delete(g.static, *m.instanceID)
		}
		g.stopHeartbeat(m)
		delete(g.members, id)
		g.c.metrics.members.Add(-1)
	}
	if g.leader == id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
	if t := g.pending[id]; t != nil {
		t.Stop()
		delete(g.pending, id)
	}
	delete(g.pendingSync, id)
}

// updateMember replaces a member's protocols and timeouts and parks (or not) its JoinGroup. A
// JoinGroup already parked for the member is answered REBALANCE_IN_PROGRESS: its client has
// given up on it and sent this one.
func (g *group) updateMember(m *member, ps []protocol, rebalance, session time.Duration, reply func(*kmsg.JoinGroupResponse)) {
	for _, p := range m.protocols {
		g.supported[p.name]--
	}
	m.protocols = ps
	for _, p := range m.protocols {
		g.supported[p.name]++
	}
	m.rebalanceTimeout, m.sessionTimeout = rebalance, session
	if m.awaitingJoin() && reply != nil {
		g.invokeJoin(m, joinError(m.id, errRebalanceInProgress))
	}
	if reply != nil && !m.awaitingJoin() {
		g.numAwaiting++
	} else if reply == nil && m.awaitingJoin() {
		g.numAwaiting--
	}
	m.joinReply = reply
}

// invokeJoin answers a member's parked JoinGroup, if any.
func (g *group) invokeJoin(m *member, resp *kmsg.JoinGroupResponse) bool {
	reply := m.joinReply
	if reply == nil {
		return false
	}
	m.joinReply = nil
	g.numAwaiting--
	g.out = append(g.out, func() { reply(resp) })
	return true
}

// invokeSync answers a member's parked SyncGroup, if any.
func (g *group) invokeSync(m *member, resp *kmsg.SyncGroupResponse) bool {
	reply := m.syncReply
	if reply == nil {
		return false
	}
	m.syncReply = nil
	g.out = append(g.out, func() { reply(resp) })
	return true
}

// replaceStaticMember gives a static member a new member id, fencing whoever still waits
// with the old one.
func (g *group) replaceStaticMember(instanceID, oldID, newID string) *member {
	m := g.members[oldID]
	if m == nil {
		panic(fmt.Sprintf("BUG: group %q: static member %q maps to unknown member %q", g.id, instanceID, oldID))
	}
	g.invokeJoin(m, joinError(oldID, errFencedInstanceID))
	g.invokeSync(m, syncError(errFencedInstanceID))
	delete(g.members, oldID)
	m.id = newID
	g.members[newID] = m
	if g.leader == oldID {
		g.leader = newID
	}
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = true
	}
	g.static[instanceID] = newID
	return m
}

// validateMember checks a request's member id and group instance id against the group:
// FENCED_INSTANCE_ID when the instance id maps to another member id, UNKNOWN_MEMBER_ID when
// either is unknown.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		cur, ok := g.static[*instanceID]
		switch {
		case !ok:
			return errUnknownMemberID
		case cur != memberID:
			return errFencedInstanceID
		}
		return 0
	}
	if g.members[memberID] == nil {
		return errUnknownMemberID
	}
	return 0
}

// selectProtocol picks the protocol of the next generation: among those every member
// supports, the one most members prefer (Kafka's vote); ties go to the leader's preference.
func (g *group) selectProtocol() string {
	candidates := map[string]bool{}
	for name, n := range g.supported {
		if n == len(g.members) && n > 0 {
			candidates[name] = true
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		if v := m.vote(candidates); v != "" {
			votes[v]++
		}
	}
	best, bestVotes := "", 0
	rank := func(name string) int { // position in the leader's preference
		if l := g.members[g.leader]; l != nil {
			for i, p := range l.protocols {
				if p.name == name {
					return i
				}
			}
		}
		return 1 << 30
	}
	for name, n := range votes {
		if n > bestVotes || n == bestVotes && (rank(name) < rank(best) || rank(name) == rank(best) && name < best) {
			best, bestVotes = name, n
		}
	}
	if best == "" {
		if l := g.members[g.leader]; l != nil && len(l.protocols) > 0 {
			best = l.protocols[0].name
		}
	}
	return best
}

// computeSubscribed returns the topics the members of a consumer group subscribe to in the
// selected protocol, or nil when unknown (another protocol type, or metadata we cannot read).
func (g *group) computeSubscribed() map[string]bool {
	if g.protocolType != "consumer" {
		return nil
	}
	out := map[string]bool{}
	if len(g.members) == 0 || g.protocolName == "" {
		return out
	}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadata(g.protocolName)); err != nil {
			g.c.log.Warn("unreadable consumer subscription", "group", g.id, "member", m.id, "err", err)
			return nil
		}
		for _, t := range md.Topics {
			out[t] = true
		}
	}
	return out
}

// isSubscribedTo reports whether members consume topic (true when unknown).
func (g *group) isSubscribedTo(topic string) bool {
	return g.subscribed == nil || g.subscribed[topic]
}

// currentMemberMetadata is the member list a leader gets in its JoinGroup response.
func (g *group) currentMemberMetadata() []kmsg.JoinGroupResponseMember {
	ms := g.sortedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, m := range ms {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = m.id, m.instanceID, m.metadata(g.protocolName)
		out = append(out, jm)
	}
	return out
}

func strPtrOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// joinResult builds a successful JoinGroup response for m in the current generation.
func (g *group) joinResult(m *member, leader string, withMembers, skipAssignment bool) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = g.generation
	resp.ProtocolType = strPtrOrNil(g.protocolType)
	resp.Protocol = strPtrOrNil(g.protocolName)
	resp.LeaderID = leader
	resp.MemberID = m.id
	resp.SkipAssignment = skipAssignment
	if withMembers {
		resp.Members = g.currentMemberMetadata()
	}
	return resp
}

func joinError(memberID string, code int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode = code
	resp.Generation = -1
	resp.MemberID = memberID
	return resp
}

func syncError(code int16) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.ErrorCode = code
	resp.MemberAssignment = []byte{}
	return resp
}

// scheduleHeartbeat restarts m's session expiry (Kafka's completeAndScheduleNextExpiration).
// A member waiting for a rebalance needs no heartbeat, so no timer runs for it.
func (g *group) scheduleHeartbeat(m *member, timeout time.Duration) {
	g.stopHeartbeat(m)
	if !m.isNew && (m.awaitingJoin() || m.awaitingSync()) {
		return
	}
	seq := m.hbSeq
	m.hbTimer = time.AfterFunc(timeout, func() { g.expireHeartbeat(m, seq) })
}

func (g *group) stopHeartbeat(m *member) {
	m.hbSeq++
	if m.hbTimer != nil {
		m.hbTimer.Stop()
		m.hbTimer = nil
	}
}

// expireHeartbeat removes a member whose session expired (onExpireHeartbeat).
func (g *group) expireHeartbeat(m *member, seq uint64) {
	g.mu.Lock()
	defer g.unlock()
	if g.stopped() || m.hbSeq != seq || g.state == Dead || g.members[m.id] != m {
		return
	}
	m.hbTimer = nil
	if m.hasSatisfiedHeartbeat() {
		return
	}
	g.c.log.Info("member failed its session, removing it", "group", g.id, "member", m.id, "session_timeout", m.sessionTimeout)
	g.removeMemberAndUpdate(m, "removing member "+m.id+" on heartbeat expiration")
}

// removeMemberAndUpdate removes a member and moves the group on: a rebalance when it was
// stable, an earlier end to a rebalance in progress.
func (g *group) removeMemberAndUpdate(m *member, reason string) {
	g.invokeJoin(m, joinError("", errUnknownMemberID))
	g.invokeSync(m, syncError(errUnknownMemberID))
	g.remove(m.id)
	switch g.state {
	case Stable, CompletingRebalance:
		g.maybePrepareRebalance(reason)
	case PreparingRebalance:
		g.tryCompleteJoin()
	}
}

// addPending records a member id given out with MEMBER_ID_REQUIRED (KIP-394); it expires
// after the session timeout unless the member joins with it.
func (g *group) addPending(id string, session time.Duration) {
	g.pending[id] = time.AfterFunc(session, func() {
		g.mu.Lock()
		defer g.unlock()
		if g.stopped() || g.pending[id] == nil {
			return
		}
		g.c.log.Info("pending member expired", "group", g.id, "member", id)
		delete(g.pending, id)
		if g.state == PreparingRebalance {
			g.tryCompleteJoin()
		}
	})
}

// unloadLocked answers parked requests with NOT_COORDINATOR and stops every timer (the
// broker is stopping).
func (g *group) unloadLocked() {
	g.stopClassicLocked(errNotCoordinator)
	g.unloadConsumer()
}

// stopClassicLocked answers the classic members' parked JoinGroup and SyncGroup with code and
// stops every classic timer (heartbeats, pending members, join and sync): the group is
// unloaded, or becomes a consumer group. Caller holds g.mu.
func (g *group) stopClassicLocked(code int16) {
	for _, m := range g.sortedMembers() {
		g.invokeJoin(m, joinError(m.id, code))
		g.invokeSync(m, syncError(code))
		g.stopHeartbeat(m)
	}
	for id, t := range g.pending {
		t.Stop()
		delete(g.pending, id)
	}
	g.stopJoinTimer()
	g.stopSyncTimer()
}
