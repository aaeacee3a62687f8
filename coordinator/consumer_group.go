package coordinator

// Consumer groups of the next-generation protocol (KIP-848): ConsumerGroupHeartbeat and
// ConsumerGroupDescribe, with the assignment computed here (assignor.go) rather than by a
// leader. Kafka's GroupMetadataManager (consumerGroupHeartbeat), ConsumerGroup,
// ConsumerGroupMember and CurrentAssignmentBuilder are the reference.
//
// # Type of a group
//
// A group is classic or consumer. Its first request decides: ConsumerGroupHeartbeat with
// member epoch 0 makes a consumer group (group.cg set, protocol type "consumer"), JoinGroup a
// classic one. An empty group of one type is converted by the other's join (its records of
// the old type are deleted, its offsets kept). A group with members is migrated online as
// group.consumer.migration.policy allows (migration.go): a ConsumerGroupHeartbeat join upgrades
// a classic group (else GROUP_ID_NOT_FOUND), a consumer group serves JoinGroup, SyncGroup,
// Heartbeat and LeaveGroup of classic members (with the policy disabled a new one gets
// INCONSISTENT_GROUP_PROTOCOL), and one left with classic members only is downgraded.
// DescribeGroups describes a consumer group as Dead (GROUP_ID_NOT_FOUND "… is not a classic
// group." from v6) and ConsumerGroupDescribe a classic group likewise (GROUP_ID_NOT_FOUND);
// ConsumerGroupDescribe gives the classic members of a consumer group member type 0, the
// others 1; ListGroups gives both kinds of group, with their type.
//
// While a consumer group has members, the classic state field says Stable (Empty without
// members), so that the offset rules shared with classic groups (DeleteGroups NON_EMPTY_GROUP,
// OffsetDelete GROUP_SUBSCRIBED_TO_TOPIC, retention of subscribed topics' offsets) apply
// unchanged; group.subscribed holds the topics the members subscribe to.
//
// # Epochs and reconciliation
//
// The group epoch is bumped when a member joins or leaves, changes its subscription (names,
// regex, server assignor), or when the topics it subscribes to change (created, deleted,
// partitions added: noticed on the next heartbeat through TopicsHost.TopicsVersion). A
// heartbeat that finds the group epoch above the target assignment epoch computes a new
// target assignment with the group's assignor (the one most members ask for; "uniform" by
// default). Each member then moves towards its target (reconcile, Kafka's
// CurrentAssignmentBuilder), revocation first:
//
//   - partitions it holds that are no longer its target are revoked: its assignment shrinks,
//     its epoch stays, and it waits (unrevoked_partitions) until a heartbeat lists owned
//     partitions without them — or is fenced after its rebalance timeout;
//   - then it takes the target epoch and the target partitions no other member still holds
//     (assigned or pending revocation); those still held are unreleased_partitions, given on a
//     later heartbeat once released.
//
// So no partition is ever in two members' assignments. The heartbeat response carries the
// member's assignment when the request was a full one (epoch 0, or rebalance timeout,
// subscription and owned partitions all given) or when the assignment changed.
//
// A member is fenced (removed, group epoch bumped) when it sends no heartbeat for
// group.consumer.session.timeout.ms, leaves (epoch -1), or fails to revoke in time. A static
// member (instance id) leaving with epoch -2 keeps its partitions, its target and its place
// until its session timeout; joining again with the same instance id and a new member id
// within it takes them over with no new group epoch (Kafka wants the instance id with -2;
// franz-go sends only the member id, which is accepted). A wrong epoch is
// FENCED_MEMBER_EPOCH, except the previous epoch with owned partitions within the assignment
// (the response that bumped it was lost).
//
// A subscription regex is RE2 (Kafka uses RE2/J), matched against whole topic names; internal
// topics never match. OffsetCommit (v9+, else UNSUPPORTED_VERSION) and OffsetFetch v9 of a
// member must give its current epoch (STALE_MEMBER_EPOCH); epoch -1 commits only into an
// empty group. Racks are kept and described, not used by the assignors.
//
// # Records
//
// Kafka's record types for consumer groups (kmsg has no codec for them:
// consumer_records.go encodes them as Kafka's schemas of 4.0 define them): 3
// ConsumerGroupMetadata (group epoch), 5 ConsumerGroupMemberMetadata (subscription; a classic
// member's session timeout and protocols in its tagged ClassicMemberMetadata), 6
// ConsumerGroupTargetAssignmentMetadata (assignment epoch), 7
// ConsumerGroupTargetAssignmentMember, 8 ConsumerGroupCurrentMemberAssignment (member epoch,
// state, assigned and pending-revocation partitions). The records of one heartbeat go in one
// batch, under the group's lock. Type 4 (subscription metadata, deprecated in Kafka 4.1) is
// not written: the group metadata value carries a hash of the subscribed topics' metadata in
// its tagged MetadataHash field, as Kafka 4.1 does (our hash function, not Kafka's). Regex
// resolutions (type 16) are recomputed, not
// stored. Offsets use the same records as classic groups. When an append fails, the request
// gets the error and the in-memory state stays; the records are written before the next ones.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/spate-broker/spate/logstore"
)

// Error codes of KIP-848 (and the others the consumer protocol answers with).
const (
	errUnsupportedVersion       int16 = 35
	errFencedMemberEpoch        int16 = 110
	errUnreleasedInstanceID     int16 = 111
	errUnsupportedAssignor      int16 = 112
	errStaleMemberEpoch         int16 = 113
	errInvalidRegularExpression int16 = 128
)

// Member epochs with a meaning.
const (
	leaveEpoch       int32 = -1 // a member leaves
	staticLeaveEpoch int32 = -2 // a static member leaves for now and keeps its place
)

// The server assignors (group.consumer.assignors); the first is the default.
var consumerAssignors = []string{"uniform", "range"}

// TopicsHost is what consumer groups need from the Host besides PartitionCount: topics by
// name and by id, and a cheap way to notice a change. The broker's Host implements it; with a
// Host that does not, ConsumerGroupHeartbeat answers UNSUPPORTED_VERSION.
type TopicsHost interface {
	// TopicsVersion returns a comparable value that changes whenever a topic is created or
	// deleted or gains partitions (it may change more often).
	TopicsVersion() any
	// TopicByName returns a topic's id and partition count; ok is false when it does not exist.
	TopicByName(name string) (id [16]byte, partitions int32, ok bool)
	// TopicByID returns a topic's name and partition count; ok is false when it does not exist.
	TopicByID(id [16]byte) (name string, partitions int32, ok bool)
	// TopicNames returns the name of every topic.
	TopicNames() []string
}

// ConsumerState is a consumer group's state (Kafka's ConsumerGroupState).
type ConsumerState int8

// The states of a consumer group.
const (
	ConsumerEmpty       ConsumerState = iota // no members
	ConsumerAssigning                        // the group epoch is ahead of the target assignment
	ConsumerReconciling                      // a member has not reached the target assignment
	ConsumerStable                           // every member has its target assignment
	numConsumerStates
)

func (s ConsumerState) String() string {
	switch s {
	case ConsumerEmpty:
		return "Empty"
	case ConsumerAssigning:
		return "Assigning"
	case ConsumerReconciling:
		return "Reconciling"
	case ConsumerStable:
		return "Stable"
	}
	return fmt.Sprintf("ConsumerState(%d)", int8(s))
}

// memberState is a member's reconciliation state (Kafka's MemberState; the values are those
// of the current assignment record).
type memberState int8

const (
	memberStable               memberState = 0 // has its target assignment (at its epoch)
	memberUnrevokedPartitions  memberState = 1 // must revoke partitions first
	memberUnreleasedPartitions memberState = 2 // waits for partitions others still hold
)

func (s memberState) String() string {
	switch s {
	case memberStable:
		return "stable"
	case memberUnrevokedPartitions:
		return "unrevoked_partitions"
	case memberUnreleasedPartitions:
		return "unreleased_partitions"
	}
	return "unknown"
}

// idPart names a partition by topic id.
type idPart struct {
	id [16]byte
	p  int32
}

// partSet is a set of partitions.
type partSet map[idPart]struct{}

func (s partSet) has(ip idPart) bool { _, ok := s[ip]; return ok }

func (s partSet) equal(o partSet) bool {
	if len(s) != len(o) {
		return false
	}
	for ip := range s {
		if !o.has(ip) {
			return false
		}
	}
	return true
}

// byTopic returns the set's partitions grouped by topic id, topics and partitions sorted.
func (s partSet) byTopic() []topicParts {
	m := map[[16]byte][]int32{}
	for ip := range s {
		m[ip.id] = append(m[ip.id], ip.p)
	}
	out := make([]topicParts, 0, len(m))
	for id, ps := range m {
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		out = append(out, topicParts{id, ps})
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].id[:]) < string(out[j].id[:]) })
	return out
}

type topicParts struct {
	id    [16]byte
	parts []int32
}

// cmember is a member of a consumer group. Guarded by the group's mu.
type cmember struct {
	id               string
	instanceID       *string
	rackID           *string
	clientID         string
	clientHost       string
	rebalanceTimeout int32    // ms
	subscribedNames  []string // sorted
	subscribedRegex  *string
	assignor         *string // server assignor asked for; nil: none

	epoch, prevEpoch int32
	state            memberState
	assigned         partSet // the member's assignment: owned, or given to it
	pendingRevoke    partSet // revoked, but the member may still own them

	// classic is set for a member that uses the classic protocol (JoinGroup, SyncGroup,
	// Heartbeat, LeaveGroup; migration.go); nil for a member of the consumer protocol.
	classic *classicMeta

	regex        *regexp.Regexp // subscribedRegex compiled (anchored)
	sessionTimer *time.Timer
	sessionSeq   uint64
	revokeTimer  *time.Timer // rebalance timeout while unrevoked_partitions
	revokeSeq    uint64
	// rejoinTimer bounds, for a classic member, the wait for its JoinGroup once a Heartbeat
	// told it to rejoin, and for its SyncGroup once it joined (Kafka's join and sync
	// timeouts: its rebalance timeout); it is fenced when the timer fires.
	rejoinTimer *time.Timer
	rejoinSeq   uint64
}

// classicMeta is what a classic member of a consumer group has besides a consumer-protocol
// member (Kafka's ClassicMemberMetadata, stored in its member record).
type classicMeta struct {
	sessionTimeout int32      // ms, from its JoinGroup
	protocols      []protocol // supported protocols, in its order of preference; never empty
}

func (a *classicMeta) equal(b *classicMeta) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.sessionTimeout != b.sessionTimeout || len(a.protocols) != len(b.protocols) {
		return false
	}
	for i := range a.protocols {
		if a.protocols[i].name != b.protocols[i].name || !bytes.Equal(a.protocols[i].metadata, b.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// sameMetadata reports whether the subscription record of two members would be the same.
func (m *cmember) sameMetadata(o *cmember) bool {
	return eqStrPtr(m.instanceID, o.instanceID) && eqStrPtr(m.rackID, o.rackID) && m.clientID == o.clientID &&
		m.clientHost == o.clientHost && m.rebalanceTimeout == o.rebalanceTimeout && eqStrings(m.subscribedNames, o.subscribedNames) &&
		eqStrPtr(m.subscribedRegex, o.subscribedRegex) && eqStrPtr(m.assignor, o.assignor) && m.classic.equal(o.classic)
}

// sameSubscription reports whether two members subscribe to the same topics with the same
// assignor (what bumps the group epoch when it changes).
func (m *cmember) sameSubscription(o *cmember) bool {
	return eqStrings(m.subscribedNames, o.subscribedNames) && eqStrPtr(m.subscribedRegex, o.subscribedRegex) && eqStrPtr(m.assignor, o.assignor)
}

func (m *cmember) reconciledTo(epoch int32) bool { return m.state == memberStable && m.epoch == epoch }

func eqStrPtr(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func eqStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// consumerGroup is the KIP-848 state of a group of type consumer. Guarded by the group's mu.
type consumerGroup struct {
	g               *group
	state           ConsumerState
	epoch           int32 // group epoch
	assignmentEpoch int32 // epoch of the target assignment
	members         map[string]*cmember
	static          map[string]string  // instance id → member id
	target          map[string]partSet // target assignment by member id
	owners          map[idPart]string  // partition → member holding it (assigned or pending revocation)

	topics      map[string]topicInfo // subscribed topics that exist, by name
	metaHash    int64                // hash of topics (persisted in the group metadata record)
	metaVersion any                  // TopicsHost.TopicsVersion when topics was computed; nil: stale

	dead    bool              // the group died: out of the state metrics
	recs    []logstore.Record // records of the operation in progress
	unsaved []logstore.Record // records whose append failed: written before the next ones
}

type topicInfo struct {
	id         [16]byte
	partitions int32
}

func newConsumerGroup(g *group) *consumerGroup {
	return &consumerGroup{
		g: g, members: map[string]*cmember{}, static: map[string]string{}, target: map[string]partSet{},
		owners: map[idPart]string{}, topics: map[string]topicInfo{},
	}
}

// consumerMetrics are the consumer groups' series:
//
//	spate_consumer_groups{state="Stable"}   consumer (KIP-848) groups by state
//
// Their members count in spate_group_members, their new target assignments in
// spate_group_rebalances_total; spate_groups counts them as Empty or Stable.
type consumerMetrics struct {
	byState [numConsumerStates]atomic.Int64
}

func (m *groupMetrics) registerConsumer(s *metrics.Set) {
	for st := ConsumerState(0); st < numConsumerStates; st++ {
		st := st
		s.GetOrCreateGauge(fmt.Sprintf(`spate_consumer_groups{state=%q}`, st.String()), func() float64 { return float64(m.consumer.byState[st].Load()) })
	}
}

// becomeConsumer makes an empty classic group a consumer group: its classic metadata record is
// deleted (in the batch of the operation). Caller holds g.mu.
func (g *group) becomeConsumer() *consumerGroup {
	for id, t := range g.pending { // KIP-394 ids given out: they join the consumer group
		t.Stop()
		delete(g.pending, id)
	}
	cg := newConsumerGroup(g)
	if g.generation > 0 {
		cg.recs = append(cg.recs, logstore.Record{Key: groupKey(g.id)})
	}
	g.cg = cg
	g.protocolType, g.protocolName, g.leader, g.generation = "consumer", "", "", 0
	g.subscribed = map[string]bool{}
	g.c.metrics.consumer.byState[ConsumerEmpty].Add(1)
	g.c.log.Info("group is now a consumer group", "group", g.id)
	return cg
}

// joinAsClassic lets a classic JoinGroup into the group: a consumer group with members refuses
// it (INCONSISTENT_GROUP_PROTOCOL); an empty one becomes a classic group, its consumer records
// deleted. It returns false once it failed the request. Caller holds g.mu.
func (g *group) joinAsClassic(j *joinReq) bool {
	cg := g.cg
	if cg == nil {
		return true
	}
	if len(cg.members) > 0 {
		j.fail(g, j.memberID, errInconsistentGroupProtocol)
		return false
	}
	if err := g.c.appendRecords(g.partition, g.consumerTombstones()); err != nil {
		g.c.log.Warn("convert consumer group to classic", "group", g.id, "err", err)
		j.fail(g, j.memberID, appendErrorCode(err))
		return false
	}
	g.c.log.Info("empty consumer group is now a classic group", "group", g.id)
	g.c.metrics.consumer.byState[cg.state].Add(-1)
	g.cg = nil
	g.protocolType, g.subscribed = "", nil
	return true
}

// consumerTombstones returns the records that delete an empty consumer group's own records
// (after those whose append failed, so that nothing they delete comes back); none for a
// classic group. Caller holds g.mu.
func (g *group) consumerTombstones() []logstore.Record {
	if g.cg == nil {
		return nil
	}
	recs := append([]logstore.Record(nil), g.cg.unsaved...)
	return append(recs, logstore.Record{Key: cgTargetMetadataKey(g.id)}, logstore.Record{Key: cgMetadataKey(g.id)})
}

// unloadConsumer stops the consumer group's timers: the broker stops (Drain), or the group
// dies (kill: it is empty, and leaves the state metrics).
func (g *group) unloadConsumer() {
	cg := g.cg
	if cg == nil {
		return
	}
	for _, m := range cg.members {
		cg.stopTimers(m)
	}
	if !g.c.closed.Load() && !cg.dead {
		cg.dead = true
		g.c.metrics.consumer.byState[cg.state].Add(-1)
	}
}

// validateConsumerCommit is ConsumerGroup.validateOffsetCommit (not transactional): epoch -1
// commits into an empty group; otherwise the member must exist (UNKNOWN_MEMBER_ID), use
// OffsetCommit v9+ (UNSUPPORTED_VERSION) and give its current epoch (STALE_MEMBER_EPOCH). A
// classic member (migration.go) commits with any version, its generation being its epoch
// (ILLEGAL_GENERATION).
func (g *group) validateConsumerCommit(version int16, memberEpoch int32, memberID string) int16 {
	cg := g.cg
	if memberEpoch < 0 && len(cg.members) == 0 {
		return 0
	}
	m := cg.members[memberID]
	switch {
	case m == nil:
		return errUnknownMemberID
	case m.classic == nil && version < 9:
		return errUnsupportedVersion
	case memberEpoch != m.epoch && m.classic != nil:
		return errIllegalGeneration
	case memberEpoch != m.epoch:
		return errStaleMemberEpoch
	}
	return 0
}

// validateConsumerOffsetFetch is ConsumerGroup.validateOffsetFetch for OffsetFetch v9: without a
// member id and epoch (an admin) anything goes; otherwise the member must exist
// (UNKNOWN_MEMBER_ID) at that epoch (STALE_MEMBER_EPOCH). Classic and unknown groups are not
// checked.
func (c *Coordinator) validateConsumerOffsetFetch(group string, memberID *string, memberEpoch int32) int16 {
	if memberID == nil && memberEpoch < 0 {
		return 0
	}
	if c.status(group) != 0 {
		return 0 // fetchOffsets answers the coordinator's error
	}
	g, _ := c.lockGroup(group, false)
	if g == nil {
		return 0 // unknown, or fetchOffsets answers the coordinator's error
	}
	defer g.unlock()
	if g.cg == nil {
		return 0
	}
	id := ""
	if memberID != nil {
		id = *memberID
	}
	m := g.cg.members[id]
	switch {
	case m == nil:
		return errUnknownMemberID
	case m.epoch != memberEpoch && m.classic != nil:
		return errIllegalGeneration
	case m.epoch != memberEpoch:
		return errStaleMemberEpoch
	}
	return 0
}

// updateState recomputes the consumer group's state (ConsumerGroup.maybeUpdateGroupState) and
// mirrors it in the classic fields: state Empty or Stable, subscribed topics.
func (cg *consumerGroup) updateState() {
	g := cg.g
	st := ConsumerStable
	switch {
	case len(cg.members) == 0:
		st = ConsumerEmpty
	case cg.epoch > cg.assignmentEpoch:
		st = ConsumerAssigning
	default:
		for _, m := range cg.members {
			if !m.reconciledTo(cg.assignmentEpoch) {
				st = ConsumerReconciling
				break
			}
		}
	}
	if st != cg.state {
		g.c.metrics.consumer.byState[cg.state].Add(-1)
		g.c.metrics.consumer.byState[st].Add(1)
		cg.state = st
	}
	classic := Empty
	if len(cg.members) > 0 {
		classic = Stable
	}
	if g.state != classic && g.state != Dead {
		g.c.metrics.byState[g.state].Add(-1)
		g.c.metrics.byState[classic].Add(1)
		g.state = classic
		g.stateMs = nowMs()
	}
	sub := map[string]bool{}
	for _, m := range cg.members {
		for _, t := range m.subscribedNames {
			sub[t] = true
		}
	}
	for name := range cg.topics {
		sub[name] = true // names and regex matches that exist
	}
	g.subscribed = sub
}

// flush appends the records of the operation as one batch (after any whose append failed) and
// returns a Kafka error code. On failure the in-memory state is kept and the records are
// written before the next ones.
func (cg *consumerGroup) flush() int16 {
	recs := append(cg.unsaved, cg.recs...)
	cg.recs, cg.unsaved = nil, nil
	if len(recs) == 0 {
		return 0
	}
	if err := cg.g.c.appendRecords(cg.g.partition, recs); err != nil {
		cg.g.c.log.Warn("store consumer group records", "group", cg.g.id, "records", len(recs), "err", err)
		cg.unsaved = recs
		return appendErrorCode(err)
	}
	return 0
}

// preferredAssignor is the server assignor most members ask for (ties: the first by name), or
// the default.
func (cg *consumerGroup) preferredAssignor() string {
	counts := map[string]int{}
	for _, m := range cg.members {
		if m.assignor != nil {
			counts[*m.assignor]++
		}
	}
	best, n := "", 0
	for name, k := range counts {
		if k > n || k == n && name < best {
			best, n = name, k
		}
	}
	if best == "" {
		return consumerAssignors[0]
	}
	return best
}

// setAssignment installs m's new assignment, keeping the partition owners in step
// (ConsumerGroup.updateMember / maybeUpdatePartitionEpoch).
func (cg *consumerGroup) setAssignment(m *cmember, assigned, pending partSet) {
	for ip := range m.assigned {
		if cg.owners[ip] == m.id {
			delete(cg.owners, ip)
		}
	}
	for ip := range m.pendingRevoke {
		if cg.owners[ip] == m.id {
			delete(cg.owners, ip)
		}
	}
	m.assigned, m.pendingRevoke = assigned, pending
	for _, s := range []partSet{assigned, pending} {
		for ip := range s {
			if o, ok := cg.owners[ip]; ok && o != m.id {
				// Reconciliation never gives a held partition: a bug, not a client's fault.
				cg.g.c.log.Error("BUG: partition given to two members", "group", cg.g.id, "partition", ip.p, "owner", o, "member", m.id)
			}
			cg.owners[ip] = m.id
		}
	}
}

// addMember makes m a member (its partitions, if any, become held by it).
func (cg *consumerGroup) addMember(m *cmember) {
	cg.members[m.id] = m
	if m.instanceID != nil {
		cg.static[*m.instanceID] = m.id
	}
	assigned, pending := m.assigned, m.pendingRevoke
	m.assigned, m.pendingRevoke = partSet{}, partSet{}
	cg.setAssignment(m, assigned, pending)
	cg.g.c.metrics.members.Add(1)
}

// removeMember drops a member, its target and its partitions, and writes the tombstones of
// its records (GroupMetadataManager.removeMember). The caller bumps the group epoch.
func (cg *consumerGroup) removeMember(m *cmember) {
	cg.stopTimers(m)
	cg.setAssignment(m, partSet{}, partSet{})
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	if m.instanceID != nil && cg.static[*m.instanceID] == m.id {
		delete(cg.static, *m.instanceID)
	}
	id := cg.g.id
	cg.recs = append(cg.recs,
		logstore.Record{Key: cgCurrentAssignmentKey(id, m.id)},
		logstore.Record{Key: cgTargetMemberKey(id, m.id)},
		logstore.Record{Key: cgMemberKey(id, m.id)})
	cg.g.c.metrics.members.Add(-1)
}

// bumpEpoch starts a new group epoch: the target assignment is recomputed by the next heartbeat.
func (cg *consumerGroup) bumpEpoch() {
	cg.epoch++
	cg.recs = append(cg.recs, logstore.Record{Key: cgMetadataKey(cg.g.id), Value: cgMetadataValue(cg.epoch, cg.metaHash)})
}

// fence removes members and bumps the group epoch once (consumerGroupFenceMembers); the
// subscribed topics are recomputed without them. When only classic members would be left and
// the policy allows it, the group becomes a classic group instead (downgrade, migration.go):
// then g.cg is no longer cg, and cg's records are already written. Every way a member leaves
// (ConsumerGroupHeartbeat epoch -1, LeaveGroup, session, rebalance, join and sync timeouts)
// comes here.
func (cg *consumerGroup) fence(ms []*cmember, th TopicsHost, reason string) {
	if cg.tryDowngrade(ms, reason) {
		return
	}
	for _, m := range ms {
		cg.g.c.log.Info("member left the consumer group", "group", cg.g.id, "member", m.id, "epoch", m.epoch, "classic", m.classic != nil, "reason", reason)
		cg.removeMember(m)
	}
	if th != nil {
		cg.refreshTopics(th)
	}
	cg.bumpEpoch()
	cg.updateState()
}

func (cg *consumerGroup) stopTimers(m *cmember) {
	m.sessionSeq++
	if m.sessionTimer != nil {
		m.sessionTimer.Stop()
		m.sessionTimer = nil
	}
	cg.stopRevokeTimer(m)
	cg.stopRejoinTimer(m)
}

func (cg *consumerGroup) stopRevokeTimer(m *cmember) {
	m.revokeSeq++
	if m.revokeTimer != nil {
		m.revokeTimer.Stop()
		m.revokeTimer = nil
	}
}

// scheduleSession (re)starts m's session: without a heartbeat for
// group.consumer.session.timeout.ms (a classic member: the session timeout of its JoinGroup)
// it is fenced.
func (cg *consumerGroup) scheduleSession(m *cmember) {
	m.sessionSeq++
	if m.sessionTimer != nil {
		m.sessionTimer.Stop()
	}
	seq := m.sessionSeq
	d := cg.g.c.cfg.ConsumerSessionTimeout
	if m.classic != nil {
		d = time.Duration(m.classic.sessionTimeout) * time.Millisecond
	}
	m.sessionTimer = time.AfterFunc(d, func() {
		cg.expire(m, func() bool { return m.sessionSeq == seq }, "session timeout expired")
	})
}

// scheduleRevoke starts m's rebalance timeout: if it still has not revoked its partitions at
// this epoch by then, it is fenced.
func (cg *consumerGroup) scheduleRevoke(m *cmember) {
	cg.stopRevokeTimer(m)
	seq, epoch := m.revokeSeq, m.epoch
	d := time.Duration(m.rebalanceTimeout) * time.Millisecond
	m.revokeTimer = time.AfterFunc(d, func() {
		cg.expire(m, func() bool {
			return m.revokeSeq == seq && m.epoch == epoch && m.state == memberUnrevokedPartitions
		}, fmt.Sprintf("did not revoke its partitions within its rebalance timeout (%v)", d))
	})
}

// expire fences m from a timer, if still valid.
func (cg *consumerGroup) expire(m *cmember, valid func() bool, reason string) {
	g := cg.g
	g.mu.Lock()
	defer g.unlock()
	if g.stopped() || g.state == Dead || g.cg != cg || cg.members[m.id] != m || !valid() {
		return
	}
	th, _ := g.c.host.(TopicsHost)
	cg.fence([]*cmember{m}, th, reason)
	if code := cg.flush(); code != 0 {
		g.c.log.Warn("store fenced member", "group", g.id, "member", m.id, "code", code)
	}
}

// newConsumerMemberID is a member id as KIP-848 clients make them: a random UUID, URL-safe
// base64.
func newConsumerMemberID() string {
	var u [16]byte
	rand.Read(u[:])
	return base64.RawURLEncoding.EncodeToString(u[:])
}

// internalTopic reports whether a topic is internal: never matched by a subscription regex.
func internalTopic(name string) bool {
	return name == OffsetsTopic || name == "__transaction_state" || name == "__share_group_state"
}

// compileSubscriptionRegex compiles a subscription regex (RE2 syntax, as Kafka's RE2/J), matched
// against whole topic names.
func compileSubscriptionRegex(re string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + re + ")$")
}

// refreshTopics recomputes the subscribed topics that exist (names and regex matches) and
// their metadata; a change of their hash bumps the group epoch once the caller does (it
// returns true). Called when subscriptions change and when the topics changed.
func (cg *consumerGroup) refreshTopics(th TopicsHost) bool {
	version := th.TopicsVersion()
	topics := map[string]topicInfo{}
	var names []string // every topic, fetched once if a regex needs it
	regexDone := map[string]bool{}
	for _, m := range cg.members {
		for _, t := range m.subscribedNames {
			if _, ok := topics[t]; ok {
				continue
			}
			if id, n, ok := th.TopicByName(t); ok {
				topics[t] = topicInfo{id, n}
			}
		}
		if m.regex == nil || regexDone[*m.subscribedRegex] {
			continue
		}
		regexDone[*m.subscribedRegex] = true
		if names == nil {
			names = th.TopicNames()
		}
		for _, t := range names {
			if _, ok := topics[t]; ok || internalTopic(t) || !m.regex.MatchString(t) {
				continue
			}
			if id, n, ok := th.TopicByName(t); ok {
				topics[t] = topicInfo{id, n}
			}
		}
	}
	cg.topics, cg.metaVersion = topics, version
	h := topicsHash(topics)
	if h == cg.metaHash {
		return false
	}
	cg.metaHash = h
	return true
}

// topicsHash is a hash (FNV-1a, 64 bits) of topic names, ids and partition counts.
func topicsHash(topics map[string]topicInfo) int64 {
	names := make([]string, 0, len(topics))
	for n := range topics {
		names = append(names, n)
	}
	sort.Strings(names)
	var h uint64 = 14695981039346656037
	add := func(b []byte) {
		for _, c := range b {
			h ^= uint64(c)
			h *= 1099511628211
		}
	}
	for _, n := range names {
		t := topics[n]
		add([]byte(n))
		add([]byte{0})
		add(t.id[:])
		add([]byte{byte(t.partitions >> 24), byte(t.partitions >> 16), byte(t.partitions >> 8), byte(t.partitions)})
	}
	if len(topics) == 0 {
		return 0
	}
	return int64(h)
}

// subscribedIDs returns the topics a member subscribes to that exist, by id.
func (cg *consumerGroup) subscribedIDs(m *cmember) map[[16]byte]bool {
	out := map[[16]byte]bool{}
	for _, t := range m.subscribedNames {
		if ti, ok := cg.topics[t]; ok {
			out[ti.id] = true
		}
	}
	if m.regex != nil {
		for name, ti := range cg.topics {
			if m.regex.MatchString(name) {
				out[ti.id] = true
			}
		}
	}
	return out
}

// updateTarget computes the target assignment of the current group epoch with the preferred
// assignor and writes the members' targets that changed, then the assignment epoch.
func (cg *consumerGroup) updateTarget() {
	name := cg.preferredAssignor()
	a := assignorByName(name)
	var ms []assignMember
	for _, m := range cg.sortedMembers() {
		ms = append(ms, assignMember{id: m.id, instanceID: m.instanceID, topics: cg.subscribedIDs(m), current: cg.target[m.id]})
	}
	topics := make(map[[16]byte]assignTopic, len(cg.topics))
	for n, t := range cg.topics {
		topics[t.id] = assignTopic{id: t.id, name: n, partitions: t.partitions}
	}
	target := a.assign(ms, topics)
	id := cg.g.id
	for _, m := range ms {
		t := target[m.id]
		if t == nil {
			t = partSet{}
		}
		if old, ok := cg.target[m.id]; !ok || !old.equal(t) {
			cg.recs = append(cg.recs, logstore.Record{Key: cgTargetMemberKey(id, m.id), Value: cgTargetMemberValue(t)})
		}
		cg.target[m.id] = t
	}
	cg.assignmentEpoch = cg.epoch
	cg.recs = append(cg.recs, logstore.Record{Key: cgTargetMetadataKey(id), Value: cgTargetMetadataValue(cg.assignmentEpoch)})
	cg.g.c.metrics.rebalances.Inc()
	cg.g.c.log.Info("computed target assignment", "group", id, "epoch", cg.epoch, "assignor", name, "members", len(ms), "topics", len(topics))
}

// sortedMembers returns the members by id.
func (cg *consumerGroup) sortedMembers() []*cmember {
	out := make([]*cmember, 0, len(cg.members))
	for _, m := range cg.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// typesWanted reads ListGroups' types filter (v5+): which of classic and consumer groups to
// list.
func typesWanted(filter []string) (classic, consumer bool) {
	if len(filter) == 0 {
		return true, true
	}
	for _, t := range filter {
		classic = classic || strings.EqualFold(t, "classic")
		consumer = consumer || strings.EqualFold(t, "consumer")
	}
	return classic, consumer
}

// listedState returns the state and type ListGroups gives for a group. Caller holds g.mu.
func (g *group) listedState() (state, groupType string) {
	if g.cg != nil {
		return g.cg.state.String(), "consumer"
	}
	return g.state.String(), "classic"
}
