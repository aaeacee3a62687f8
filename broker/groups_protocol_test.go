package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
)

// grpReq sends req at its version on a fresh connection (client id "raw") and decodes the
// answer. It may be called from any goroutine.
func grpReq[Resp kmsg.Response](addr string, req kmsg.Request) (Resp, error) {
	var zero Resp
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	const corr = 11
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, corr)); err != nil {
		return zero, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return zero, fmt.Errorf("%s v%d: read response: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return zero, err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return zero, fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		var ok bool
		if body, ok = skipTags(body); !ok {
			return zero, fmt.Errorf("bad response header tags")
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return zero, fmt.Errorf("%s v%d: decode response: %w", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp.(Resp), nil
}

func grpMust[Resp kmsg.Response](t *testing.T, addr string, req kmsg.Request) Resp {
	t.Helper()
	resp, err := grpReq[Resp](addr, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// grpProtoBroker is a group broker for protocol tests, with the coordinator ready.
func grpProtoBroker(t *testing.T, mod func(*coordinator.Config)) *testBroker {
	t.Helper()
	tb := grpBroker(t, "", mod)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version = 4
	req.CoordinatorKeys = []string{"any"}
	if resp := grpMust[*kmsg.FindCoordinatorResponse](t, tb.addr, req); resp.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("find coordinator: %+v", resp.Coordinators[0])
	}
	return tb
}

// joinSpec is one JoinGroup of the tests: a "consumer" member with the range protocol.
type joinSpec struct {
	group, memberID string
	instanceID      *string
	version         int16
	sessionMs       int32
	rebalanceMs     int32
	protocolType    string
	protocols       []string
	topics          []string
}

func (j joinSpec) request() *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 9
	if j.version != 0 {
		req.Version = j.version
	}
	req.Group, req.MemberID, req.InstanceID = j.group, j.memberID, j.instanceID
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 2000
	if j.sessionMs != 0 {
		req.SessionTimeoutMillis = j.sessionMs
	}
	if j.rebalanceMs != 0 {
		req.RebalanceTimeoutMillis = j.rebalanceMs
	}
	req.ProtocolType = "consumer"
	if j.protocolType != "" {
		req.ProtocolType = j.protocolType
	}
	protos := j.protocols
	if protos == nil {
		protos = []string{"range"}
	}
	topics := j.topics
	if topics == nil {
		topics = []string{"t"}
	}
	md := kmsg.ConsumerMemberMetadata{Version: 0, Topics: topics}
	for _, p := range protos {
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: md.AppendTo(nil)})
	}
	return req
}

// joinAsync sends a JoinGroup that may be parked; the answer arrives on the channel.
func joinAsync(addr string, j joinSpec) chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() {
		resp, err := grpReq[*kmsg.JoinGroupResponse](addr, j.request())
		if err != nil {
			resp = kmsg.NewPtrJoinGroupResponse()
			resp.ErrorCode = -99
			m := err.Error()
			resp.Protocol = &m
		}
		ch <- resp
	}()
	return ch
}

func waitJoin(t *testing.T, ch chan *kmsg.JoinGroupResponse) *kmsg.JoinGroupResponse {
	t.Helper()
	select {
	case r := <-ch:
		if r.ErrorCode == -99 {
			t.Fatalf("join: %s", *r.Protocol)
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("JoinGroup not answered")
	}
	return nil
}

// joinNew joins with KIP-394's two steps and returns the parked second join.
func joinNew(t *testing.T, addr string, j joinSpec) chan *kmsg.JoinGroupResponse {
	t.Helper()
	first := grpMust[*kmsg.JoinGroupResponse](t, addr, j.request())
	if first.ErrorCode != 79 || first.MemberID == "" {
		t.Fatalf("first join: error %d member %q, want MEMBER_ID_REQUIRED with an id", first.ErrorCode, first.MemberID)
	}
	j.memberID = first.MemberID
	return joinAsync(addr, j)
}

func syncGroup(t *testing.T, addr, group, memberID string, instanceID *string, gen int32, assignments map[string][]byte) *kmsg.SyncGroupResponse {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.InstanceID, req.Generation = group, memberID, instanceID, gen
	for id, a := range assignments {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return grpMust[*kmsg.SyncGroupResponse](t, addr, req)
}

func heartbeat(t *testing.T, addr, group, memberID string, instanceID *string, gen int32) int16 {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group, req.MemberID, req.InstanceID, req.Generation = group, memberID, instanceID, gen
	return grpMust[*kmsg.HeartbeatResponse](t, addr, req).ErrorCode
}

// commit commits one offset of topic t partition 0 and returns its error code.
func commit(t *testing.T, addr, group, memberID string, instanceID *string, gen int32, off int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.MemberID, req.InstanceID, req.Generation = group, memberID, instanceID, gen
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: off, LeaderEpoch: -1}}}}
	return grpMust[*kmsg.OffsetCommitResponse](t, addr, req).Topics[0].Partitions[0].ErrorCode
}

func describe(t *testing.T, addr string, version int16, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = version
	req.Groups = []string{group}
	return grpMust[*kmsg.DescribeGroupsResponse](t, addr, req).Groups[0]
}

// stableGroup forms a one-member group (the member leads and syncs) and returns the member
// id and generation.
func stableGroup(t *testing.T, addr string, j joinSpec) (string, int32) {
	t.Helper()
	var r *kmsg.JoinGroupResponse
	if j.instanceID != nil || j.memberID != "" {
		r = waitJoin(t, joinAsync(addr, j))
	} else {
		r = waitJoin(t, joinNew(t, addr, j))
	}
	if r.ErrorCode != 0 || r.LeaderID != r.MemberID {
		t.Fatalf("join: %+v", r)
	}
	if s := syncGroup(t, addr, j.group, r.MemberID, j.instanceID, r.Generation, map[string][]byte{r.MemberID: []byte("assignment")}); s.ErrorCode != 0 || string(s.MemberAssignment) != "assignment" {
		t.Fatalf("sync: %+v", s)
	}
	return r.MemberID, r.Generation
}

func TestFindCoordinatorEveryVersionCreatesOffsetsTopic(t *testing.T) {
	tb := grpBroker(t, "", nil)
	if tb.b.topics.get(coordinator.OffsetsTopic) != nil {
		t.Fatal("offsets topic exists before any group request")
	}
	for v := int16(0); v <= 6; v++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = v
		req.CoordinatorKey = "g"
		req.CoordinatorKeys = []string{"g1", "g2"}
		resp := grpMust[*kmsg.FindCoordinatorResponse](t, tb.addr, req)
		if v < 4 {
			if resp.ErrorCode != 0 || resp.NodeID != 1 || resp.Host != "127.0.0.1" || resp.Port != tb.b.cfg.AdvertisedPort {
				t.Fatalf("v%d: %+v", v, resp)
			}
			continue
		}
		if len(resp.Coordinators) != 2 {
			t.Fatalf("v%d: %d coordinators", v, len(resp.Coordinators))
		}
		for i, c := range resp.Coordinators {
			if c.Key != req.CoordinatorKeys[i] || c.ErrorCode != 0 || c.NodeID != 1 || c.Port != tb.b.cfg.AdvertisedPort {
				t.Fatalf("v%d: %+v", v, c)
			}
		}
	}
	top := tb.b.topics.get(coordinator.OffsetsTopic)
	if top == nil || len(top.partitions) != 50 || top.meta.Configs["cleanup.policy"] != "compact" || top.meta.Configs["segment.bytes"] != "104857600" {
		t.Fatalf("offsets topic: %+v", top)
	}
	// Compact only: delete retention never removes committed offsets.
	if lc := top.partitions[0].log.Config(); lc.RetentionMs != -1 || lc.RetentionBytes != -1 {
		t.Fatalf("offsets topic retention %d ms / %d bytes, want none", lc.RetentionMs, lc.RetentionBytes)
	}
	// Transactions are answered with this node too; another key type is invalid.
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version, req.CoordinatorType, req.CoordinatorKeys = 6, 1, []string{"txn"}
	if c := grpMust[*kmsg.FindCoordinatorResponse](t, tb.addr, req).Coordinators[0]; c.ErrorCode != 0 || c.NodeID != 1 {
		t.Fatalf("transaction coordinator: %+v", c)
	}
	req.CoordinatorType = 5
	if c := grpMust[*kmsg.FindCoordinatorResponse](t, tb.addr, req).Coordinators[0]; c.ErrorCode != 42 || c.NodeID != -1 {
		t.Fatalf("key type 5: %+v", c)
	}
}

// TestJoinGroupMemberIDRequiredKIP394: from v4 a member without id gets MEMBER_ID_REQUIRED and
// an id (client id, dash, uuid); it enters the group only when it joins with that id. Before
// v4 the first join enters at once.
func TestJoinGroupMemberIDRequiredKIP394(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	first := grpMust[*kmsg.JoinGroupResponse](t, tb.addr, joinSpec{group: "kip394"}.request())
	if first.ErrorCode != 79 || !strings.HasPrefix(first.MemberID, "raw-") || len(first.MemberID) != len("raw-")+36 || first.Generation != -1 {
		t.Fatalf("first join: %+v", first)
	}
	if d := describe(t, tb.addr, 5, "kip394"); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("a pending member is no member: %+v", d)
	}
	r := waitJoin(t, joinAsync(tb.addr, joinSpec{group: "kip394", memberID: first.MemberID}))
	if r.ErrorCode != 0 || r.MemberID != first.MemberID || r.LeaderID != first.MemberID || r.Generation != 1 ||
		*r.Protocol != "range" || *r.ProtocolType != "consumer" || len(r.Members) != 1 {
		t.Fatalf("second join: %+v", r)
	}
	// v3: no second step.
	r = waitJoin(t, joinAsync(tb.addr, joinSpec{group: "v3", version: 3}))
	if r.ErrorCode != 0 || r.MemberID == "" || r.Generation != 1 || r.LeaderID != r.MemberID {
		t.Fatalf("v3 join: %+v", r)
	}
	// A known member id in a group that does not exist.
	if r := waitJoin(t, joinAsync(tb.addr, joinSpec{group: "nope", memberID: "raw-x"})); r.ErrorCode != 25 {
		t.Fatalf("unknown member in unknown group: %+v", r)
	}
	// A member joining with a protocol the group does not use.
	r = waitJoin(t, joinAsync(tb.addr, joinSpec{group: "kip394", memberID: first.MemberID, protocols: []string{"roundrobin"}}))
	if r.ErrorCode != 23 {
		t.Fatalf("inconsistent protocol: %+v", r)
	}
}

func TestJoinGroupInvalidSessionTimeout(t *testing.T) {
	tb := grpProtoBroker(t, func(c *coordinator.Config) { c.MinSessionTimeout, c.MaxSessionTimeout = time.Second, time.Minute })
	for _, ms := range []int32{999, 60001} {
		r := grpMust[*kmsg.JoinGroupResponse](t, tb.addr, joinSpec{group: "sessions", sessionMs: ms}.request())
		if r.ErrorCode != 26 {
			t.Fatalf("session %dms: %+v", ms, r)
		}
	}
	if r := grpMust[*kmsg.JoinGroupResponse](t, tb.addr, joinSpec{group: "sessions", sessionMs: 1000}.request()); r.ErrorCode != 79 {
		t.Fatalf("session at the minimum: %+v", r)
	}
	if r := grpMust[*kmsg.JoinGroupResponse](t, tb.addr, joinSpec{group: ""}.request()); r.ErrorCode != 24 {
		t.Fatalf("empty group id: %+v", r)
	}
}

// TestGroupRebalanceHeartbeatAndGenerationFencing walks a group through two generations and
// checks the codes a member gets: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION (heartbeat and
// commit), REBALANCE_IN_PROGRESS (heartbeat while a member joins, commit and sync while the
// group completes the rebalance).
func TestGroupRebalanceHeartbeatAndGenerationFencing(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	const g = "fencing"
	grpCreateTopic(t, addr, "t", 1)
	m1, gen1 := stableGroup(t, addr, joinSpec{group: g})
	if code := heartbeat(t, addr, g, m1, nil, gen1); code != 0 {
		t.Fatalf("heartbeat: %d", code)
	}
	if code := heartbeat(t, addr, g, "raw-unknown", nil, gen1); code != 25 {
		t.Fatalf("unknown member heartbeat: %d", code)
	}
	if code := heartbeat(t, addr, "no-such-group", m1, nil, gen1); code != 25 {
		t.Fatalf("unknown group heartbeat: %d", code)
	}
	if code := heartbeat(t, addr, g, m1, nil, gen1+1); code != 22 {
		t.Fatalf("future generation heartbeat: %d", code)
	}
	if code := commit(t, addr, g, m1, nil, gen1, 5); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	// A second member joins: the first learns of the rebalance from its heartbeat.
	ch2 := joinNew(t, addr, joinSpec{group: g})
	waitState(t, addr, g, "PreparingRebalance")
	if code := heartbeat(t, addr, g, m1, nil, gen1); code != 27 {
		t.Fatalf("heartbeat during rebalance: %d", code)
	}
	if code := commit(t, addr, g, m1, nil, gen1, 6); code != 0 {
		t.Fatalf("commit while preparing a rebalance (allowed): %d", code)
	}
	if d := describe(t, addr, 5, g); d.State != "PreparingRebalance" || len(d.Members) != 2 || d.Protocol != "" {
		t.Fatalf("describe during rebalance: %+v", d)
	}
	ch1 := joinAsync(addr, joinSpec{group: g, memberID: m1})
	r1, r2 := waitJoin(t, ch1), waitJoin(t, ch2)
	gen2 := r1.Generation
	if r1.ErrorCode != 0 || r2.ErrorCode != 0 || gen2 != gen1+1 || r2.Generation != gen2 || r1.LeaderID != m1 || r2.LeaderID != m1 ||
		len(r1.Members) != 2 || len(r2.Members) != 0 {
		t.Fatalf("rejoin: %+v / %+v", r1, r2)
	}
	m2 := r2.MemberID
	// CompletingRebalance: commits wait for the assignment; stale generations are fenced.
	if code := commit(t, addr, g, m2, nil, gen2, 1); code != 27 {
		t.Fatalf("commit while completing the rebalance: %d", code)
	}
	if code := commit(t, addr, g, m1, nil, gen1, 7); code != 22 {
		t.Fatalf("commit with the old generation: %d", code)
	}
	if code := heartbeat(t, addr, g, m2, nil, gen2); code != 0 {
		t.Fatalf("heartbeat while completing: %d", code)
	}
	// The follower syncs first and waits for the leader's assignment.
	sync2 := make(chan *kmsg.SyncGroupResponse, 1)
	go func() {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Version, req.Group, req.MemberID, req.Generation = 5, g, m2, gen2
		resp, err := grpReq[*kmsg.SyncGroupResponse](addr, req)
		if err != nil {
			resp = syncErr(-99)
		}
		sync2 <- resp
	}()
	time.Sleep(100 * time.Millisecond)
	if s := syncGroup(t, addr, g, m1, nil, gen1, nil); s.ErrorCode != 22 {
		t.Fatalf("sync with the old generation: %d", s.ErrorCode)
	}
	s1 := syncGroup(t, addr, g, m1, nil, gen2, map[string][]byte{m1: []byte("one"), m2: []byte("two")})
	if s1.ErrorCode != 0 || string(s1.MemberAssignment) != "one" || *s1.Protocol != "range" || *s1.ProtocolType != "consumer" {
		t.Fatalf("leader sync: %+v", s1)
	}
	if s2 := <-sync2; s2.ErrorCode != 0 || string(s2.MemberAssignment) != "two" {
		t.Fatalf("follower sync: %+v", s2)
	}
	if code := heartbeat(t, addr, g, m1, nil, gen1); code != 22 {
		t.Fatalf("heartbeat with the old generation: %d", code)
	}
	if code := commit(t, addr, g, m2, nil, gen2, 9); code != 0 {
		t.Fatalf("commit in the new generation: %d", code)
	}
	if code := commit(t, addr, g, "", nil, -1, 9); code != 25 {
		t.Fatalf("simple commit into a group with members: %d", code)
	}
	d := describe(t, addr, 5, g)
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 2 {
		t.Fatalf("describe: %+v", d)
	}
	for _, m := range d.Members {
		want := map[string]string{m1: "one", m2: "two"}[m.MemberID]
		if string(m.MemberAssignment) != want || m.ClientID != "raw" || m.ClientHost != "/127.0.0.1" {
			t.Fatalf("member %+v", m)
		}
	}
}

func waitState(t *testing.T, addr, group, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := describe(t, addr, 5, group)
		if d.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s is %s, want %s", group, d.State, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func syncErr(code int16) *kmsg.SyncGroupResponse {
	r := kmsg.NewPtrSyncGroupResponse()
	r.ErrorCode = code
	return r
}

// TestStaticMemberFencedInstanceIDKIP345: a static member that joins again without its member
// id replaces the old id with no rebalance; the old id is then FENCED_INSTANCE_ID everywhere.
func TestStaticMemberFencedInstanceIDKIP345(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	const g = "static"
	grpCreateTopic(t, addr, "t", 1)
	inst := kmsg.StringPtr("instance-1")
	// A static member needs no second join (KIP-394 applies to dynamic members).
	old, gen := stableGroup(t, addr, joinSpec{group: g, instanceID: inst})
	if !strings.HasPrefix(old, "instance-1-") {
		t.Fatalf("static member id %q", old)
	}
	r := waitJoin(t, joinAsync(addr, joinSpec{group: g, instanceID: inst}))
	if r.ErrorCode != 0 || r.MemberID == old || r.Generation != gen || !r.SkipAssignment || r.LeaderID != r.MemberID || len(r.Members) != 1 {
		t.Fatalf("static rejoin of the leader (v9, KIP-814): %+v", r)
	}
	cur := r.MemberID
	if d := describe(t, addr, 5, g); d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != cur {
		t.Fatalf("describe: %+v", d)
	}
	// The restarted member syncs and gets its old assignment back.
	if s := syncGroup(t, addr, g, cur, inst, gen, nil); s.ErrorCode != 0 || string(s.MemberAssignment) != "assignment" {
		t.Fatalf("sync after static rejoin: %+v", s)
	}
	if code := heartbeat(t, addr, g, old, inst, gen); code != 82 {
		t.Fatalf("heartbeat with the fenced id: %d", code)
	}
	if code := commit(t, addr, g, old, inst, gen, 1); code != 82 {
		t.Fatalf("commit with the fenced id: %d", code)
	}
	if s := syncGroup(t, addr, g, old, inst, gen, nil); s.ErrorCode != 82 {
		t.Fatalf("sync with the fenced id: %d", s.ErrorCode)
	}
	if r := waitJoin(t, joinAsync(addr, joinSpec{group: g, memberID: old, instanceID: inst})); r.ErrorCode != 82 {
		t.Fatalf("join with the fenced id: %+v", r)
	}
	if code := heartbeat(t, addr, g, cur, inst, gen); code != 0 {
		t.Fatalf("heartbeat of the current id: %d", code)
	}
	// Before v9 a rejoining static leader is told the old leader id, so it does not assign.
	r = waitJoin(t, joinAsync(addr, joinSpec{group: g, instanceID: inst, version: 8}))
	if r.ErrorCode != 0 || r.Generation != gen || r.LeaderID != cur || r.MemberID == cur || len(r.Members) != 0 {
		t.Fatalf("static rejoin v8: %+v", r)
	}
	// Unknown instance ids.
	if code := heartbeat(t, addr, g, r.MemberID, kmsg.StringPtr("other"), gen); code != 25 {
		t.Fatalf("unknown instance id: %d", code)
	}
}

// TestSessionTimeoutExpiresSilentMember: a member that stops heartbeating is removed after
// its session timeout; the member left heartbeating is told to rejoin and forms the next
// generation alone.
func TestSessionTimeoutExpiresSilentMember(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	const g = "sessions"
	ch1 := joinNew(t, addr, joinSpec{group: g, sessionMs: 400})
	ch2 := joinNew(t, addr, joinSpec{group: g, sessionMs: 10000})
	r1, r2 := waitJoin(t, ch1), waitJoin(t, ch2)
	if r1.ErrorCode != 0 || r2.ErrorCode != 0 || r1.Generation != 1 {
		t.Fatalf("joins: %+v %+v", r1, r2)
	}
	leader, follower := r1, r2
	if r2.LeaderID == r2.MemberID {
		leader, follower = r2, r1
	}
	if s := syncGroup(t, addr, g, leader.MemberID, nil, 1, map[string][]byte{r1.MemberID: {1}, r2.MemberID: {2}}); s.ErrorCode != 0 {
		t.Fatalf("leader sync: %+v", s)
	}
	if s := syncGroup(t, addr, g, follower.MemberID, nil, 1, nil); s.ErrorCode != 0 {
		t.Fatalf("follower sync: %+v", s)
	}
	// Member 2 heartbeats; member 1 stays silent.
	var code int16
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if code = heartbeat(t, addr, g, r2.MemberID, nil, 1); code != 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 27 {
		t.Fatalf("survivor heartbeat: %d, want REBALANCE_IN_PROGRESS after the silent member expired", code)
	}
	if d := describe(t, addr, 5, g); len(d.Members) != 1 || d.Members[0].MemberID != r2.MemberID {
		t.Fatalf("after expiry: %+v", d)
	}
	r := waitJoin(t, joinAsync(addr, joinSpec{group: g, memberID: r2.MemberID, sessionMs: 10000}))
	if r.ErrorCode != 0 || r.Generation != 2 || r.LeaderID != r2.MemberID || len(r.Members) != 1 {
		t.Fatalf("rejoin alone: %+v", r)
	}
	if code := heartbeat(t, addr, g, r1.MemberID, nil, 2); code != 25 {
		t.Fatalf("expired member heartbeat: %d", code)
	}
	// The last member goes silent too: the group empties.
	if s := syncGroup(t, addr, g, r2.MemberID, nil, 2, map[string][]byte{r2.MemberID: {2}}); s.ErrorCode != 0 {
		t.Fatalf("sync: %+v", s)
	}
	ch3 := joinNew(t, addr, joinSpec{group: "alone", sessionMs: 300})
	r3 := waitJoin(t, ch3)
	if s := syncGroup(t, addr, "alone", r3.MemberID, nil, r3.Generation, nil); s.ErrorCode != 0 {
		t.Fatalf("sync alone: %+v", s)
	}
	deadline = time.Now().Add(5 * time.Second)
	for describe(t, addr, 5, "alone").State != "Empty" {
		if time.Now().After(deadline) {
			t.Fatalf("silent only member not expired: %+v", describe(t, addr, 5, "alone"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeleteGroupsNonEmptyGroup: a group with members is NON_EMPTY_GROUP; once its member left
// it is deleted with its offsets, and an unknown group is GROUP_ID_NOT_FOUND.
func TestDeleteGroupsNonEmptyGroup(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "t", 1)
	const g = "deletable"
	m, gen := stableGroup(t, addr, joinSpec{group: g})
	if code := commit(t, addr, g, m, nil, gen, 42); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	del := func(groups ...string) []kmsg.DeleteGroupsResponseGroup {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Version, req.Groups = 2, groups
		return grpMust[*kmsg.DeleteGroupsResponse](t, addr, req).Groups
	}
	if r := del(g, "unknown"); r[0].ErrorCode != 68 || r[1].ErrorCode != 69 {
		t.Fatalf("delete: %+v", r)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group, leave.MemberID = 2, g, m
	if r := grpMust[*kmsg.LeaveGroupResponse](t, addr, leave); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	if d := describe(t, addr, 5, g); d.State != "Empty" {
		t.Fatalf("after leave: %+v", d)
	}
	if r := del(g); r[0].ErrorCode != 0 {
		t.Fatalf("delete empty group: %+v", r)
	}
	if d := describe(t, addr, 5, g); d.State != "Dead" || d.ErrorCode != 0 {
		t.Fatalf("deleted group, v5: %+v", d)
	}
	if d := describe(t, addr, 6, g); d.State != "Dead" || d.ErrorCode != 69 {
		t.Fatalf("deleted group, v6: %+v", d)
	}
	if r := del(g); r[0].ErrorCode != 69 {
		t.Fatalf("delete again: %+v", r)
	}
	f := kmsg.NewPtrOffsetFetchRequest()
	f.Version, f.Group = 7, g
	f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if p := grpMust[*kmsg.OffsetFetchResponse](t, addr, f).Topics[0].Partitions[0]; p.Offset != -1 {
		t.Fatalf("offset of a deleted group: %+v", p)
	}
	// The deletion is durable: the tombstones are replayed after a restart.
	tb.stop()
	tb2 := grpBroker(t, tb.dir, nil)
	if p := grpMust[*kmsg.OffsetFetchResponse](t, tb2.addr, f).Topics[0].Partitions[0]; p.Offset != -1 {
		t.Fatalf("offset of a deleted group after restart: %+v", p)
	}
	if d := describe(t, tb2.addr, 5, g); d.State != "Dead" {
		t.Fatalf("deleted group after restart: %+v", d)
	}
}

// TestOffsetCommitMetadataRoundTrip: what a commit stores (offset, leader epoch, metadata —
// null as "") is what OffsetFetch returns, at every version, across a restart; unknown
// partitions fetch -1; unknown topics and oversized metadata fail per partition.
func TestOffsetCommitMetadataRoundTrip(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "rt", 4)
	type want struct {
		offset int64
		epoch  int32
		md     string
	}
	wants := map[int32]want{}
	for v := int16(0); v <= 9; v++ {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.Generation = v, "simple", -1
		req.RetentionTimeMillis = -1
		p := int32(v % 4)
		md := fmt.Sprintf("v%d: {\"meta\": \"ünïcode\"}", v)
		var mdp *string
		if v != 3 {
			mdp = &md
		} else {
			md = "" // null metadata is stored as ""
		}
		epoch := int32(-1)
		if v >= 6 {
			epoch = int32(v)
		}
		req.Topics = []kmsg.OffsetCommitRequestTopic{
			{Topic: "rt", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: p, Offset: int64(100 + v), LeaderEpoch: epoch, Metadata: mdp, Timestamp: -1}}},
			{Topic: "missing", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}},
		}
		resp := grpMust[*kmsg.OffsetCommitResponse](t, addr, req)
		if c := resp.Topics[0].Partitions[0].ErrorCode; c != 0 {
			t.Fatalf("commit v%d: %d", v, c)
		}
		if c := resp.Topics[1].Partitions[0].ErrorCode; c != 3 {
			t.Fatalf("commit v%d to a missing topic: %d", v, c)
		}
		wants[p] = want{int64(100 + v), epoch, md}
	}
	big := kmsg.NewPtrOffsetCommitRequest()
	big.Version, big.Group, big.Generation = 8, "simple", -1
	huge := strings.Repeat("x", 4097)
	big.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "rt", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, Metadata: &huge}}}}
	if c := grpMust[*kmsg.OffsetCommitResponse](t, addr, big).Topics[0].Partitions[0].ErrorCode; c != 12 {
		t.Fatalf("oversized metadata: %d", c)
	}
	check := func(addr string) {
		for v := int16(1); v <= 9; v++ {
			req := kmsg.NewPtrOffsetFetchRequest()
			req.Version = v
			parts := []int32{0, 1, 2, 3, 9}
			if v >= 8 {
				req.Groups = []kmsg.OffsetFetchRequestGroup{
					{Group: "simple", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "rt", Partitions: parts}}},
					{Group: "nobody", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "rt", Partitions: []int32{0}}}},
				}
			} else {
				req.Group = "simple"
				req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "rt", Partitions: parts}}
			}
			resp := grpMust[*kmsg.OffsetFetchResponse](t, addr, req)
			type got struct {
				p      int32
				offset int64
				epoch  int32
				md     *string
				code   int16
			}
			var gots []got
			if v >= 8 {
				if len(resp.Groups) != 2 || resp.Groups[1].Topics[0].Partitions[0].Offset != -1 {
					t.Fatalf("fetch v%d: %+v", v, resp.Groups)
				}
				for _, p := range resp.Groups[0].Topics[0].Partitions {
					gots = append(gots, got{p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode})
				}
			} else {
				for _, p := range resp.Topics[0].Partitions {
					gots = append(gots, got{p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode})
				}
			}
			if len(gots) != len(parts) {
				t.Fatalf("fetch v%d: %d partitions", v, len(gots))
			}
			for _, g := range gots {
				w, ok := wants[g.p]
				if !ok {
					w = want{-1, -1, ""}
				}
				if v < 5 {
					w.epoch = -1 // not in the response: kmsg's default
				}
				if g.code != 0 || g.offset != w.offset || g.md == nil || *g.md != w.md || (v >= 5 && g.epoch != w.epoch) {
					t.Fatalf("fetch v%d partition %d: offset %d epoch %d metadata %v code %d, want %+v", v, g.p, g.offset, g.epoch, g.md, g.code, w)
				}
			}
		}
		// All topics (null), v7.
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.Group = 7, "simple"
		resp := grpMust[*kmsg.OffsetFetchResponse](t, addr, req)
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != "rt" || len(resp.Topics[0].Partitions) != 4 {
			t.Fatalf("fetch all: %+v", resp.Topics)
		}
	}
	check(addr)
	tb.stop()
	check(grpBroker(t, tb.dir, nil).addr)
}

// TestOffsetDeleteSubscribedTopicKIP496: a Stable consumer group keeps the offsets of topics
// it consumes (GROUP_SUBSCRIBED_TO_TOPIC) and loses the others; an Empty group loses all and
// dies.
func TestOffsetDeleteSubscribedTopicKIP496(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "subscribed", 2)
	grpCreateTopic(t, addr, "other", 2)
	const g = "kip496"
	m, gen := stableGroup(t, addr, joinSpec{group: g, topics: []string{"subscribed"}})
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.MemberID, req.Generation = 8, g, m, gen
	for _, topic := range []string{"subscribed", "other"} {
		req.Topics = append(req.Topics, kmsg.OffsetCommitRequestTopic{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3}, {Partition: 1, Offset: 4}}})
	}
	for _, rt := range grpMust[*kmsg.OffsetCommitResponse](t, addr, req).Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("commit %s-%d: %d", rt.Topic, p.Partition, p.ErrorCode)
			}
		}
	}
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = g
	for _, topic := range []string{"subscribed", "other", "missing"} {
		od.Topics = append(od.Topics, kmsg.OffsetDeleteRequestTopic{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}})
	}
	resp := grpMust[*kmsg.OffsetDeleteResponse](t, addr, od)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 86 || resp.Topics[1].Partitions[0].ErrorCode != 0 || resp.Topics[2].Partitions[0].ErrorCode != 3 {
		t.Fatalf("offset delete in a stable group: %+v", resp)
	}
	f := kmsg.NewPtrOffsetFetchRequest()
	f.Version, f.Group = 7, g
	fr := grpMust[*kmsg.OffsetFetchResponse](t, addr, f)
	if len(fr.Topics) != 2 || fr.Topics[0].Topic != "other" || len(fr.Topics[0].Partitions) != 1 || fr.Topics[0].Partitions[0].Partition != 1 || len(fr.Topics[1].Partitions) != 2 {
		t.Fatalf("offsets left: %+v", fr.Topics)
	}
	// Another protocol type with members: NON_EMPTY_GROUP.
	stableGroup(t, addr, joinSpec{group: "connect-group", protocolType: "connect"})
	od2 := kmsg.NewPtrOffsetDeleteRequest()
	od2.Group = "connect-group"
	od2.Topics = od.Topics[:1]
	if r := grpMust[*kmsg.OffsetDeleteResponse](t, addr, od2); r.ErrorCode != 68 {
		t.Fatalf("offset delete in a non-consumer group: %+v", r)
	}
	od2.Group = "no-such-group"
	if r := grpMust[*kmsg.OffsetDeleteResponse](t, addr, od2); r.ErrorCode != 69 {
		t.Fatalf("offset delete in an unknown group: %+v", r)
	}
	// Empty: everything goes, then the group.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, g
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m}}
	grpMust[*kmsg.LeaveGroupResponse](t, addr, leave)
	od.Topics = []kmsg.OffsetDeleteRequestTopic{
		{Topic: "subscribed", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}, {Partition: 1}}},
		{Topic: "other", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}},
	}
	if r := grpMust[*kmsg.OffsetDeleteResponse](t, addr, od); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete in an empty group: %+v", r)
	}
	if d := describe(t, addr, 5, g); d.State != "Dead" {
		t.Fatalf("group without members and offsets: %+v", d)
	}
}

func TestLeaveGroupBatchedMembersV3(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	const g = "batched"
	a, b := kmsg.StringPtr("a"), kmsg.StringPtr("b")
	cha := joinAsync(addr, joinSpec{group: g, instanceID: a})
	chb := joinAsync(addr, joinSpec{group: g, instanceID: b})
	chd := joinNew(t, addr, joinSpec{group: g})
	ra, rb, rd := waitJoin(t, cha), waitJoin(t, chb), waitJoin(t, chd)
	if ra.ErrorCode != 0 || rb.ErrorCode != 0 || rd.ErrorCode != 0 || ra.Generation != 1 {
		t.Fatalf("joins: %+v %+v %+v", ra, rb, rd)
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group = 5, g
	req.Members = []kmsg.LeaveGroupRequestMember{
		{InstanceID: a},                        // by instance id alone (administrative removal)
		{MemberID: rb.MemberID, InstanceID: b}, // static, both given
		{MemberID: "raw-unknown"},              // unknown
		{MemberID: rd.MemberID, InstanceID: a}, // instance id of another (already removed) member
		{MemberID: "x", InstanceID: kmsg.StringPtr("c")},
	}
	resp := grpMust[*kmsg.LeaveGroupResponse](t, addr, req)
	codes := []int16{}
	for _, m := range resp.Members {
		codes = append(codes, m.ErrorCode)
	}
	if resp.ErrorCode != 0 || fmt.Sprint(codes) != "[0 0 25 25 25]" {
		t.Fatalf("leave: %d %v", resp.ErrorCode, codes)
	}
	if d := describe(t, addr, 5, g); len(d.Members) != 1 || d.Members[0].MemberID != rd.MemberID {
		t.Fatalf("after leave: %+v", d)
	}
	// v0–v2: one member, its error at the top.
	req = kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group, req.MemberID = 1, g, "raw-unknown"
	if r := grpMust[*kmsg.LeaveGroupResponse](t, addr, req); r.ErrorCode != 25 {
		t.Fatalf("leave v1 unknown: %+v", r)
	}
	req.MemberID = rd.MemberID
	if r := grpMust[*kmsg.LeaveGroupResponse](t, addr, req); r.ErrorCode != 0 {
		t.Fatalf("leave v1: %+v", r)
	}
	if d := describe(t, addr, 5, g); d.State != "Empty" {
		t.Fatalf("after all left: %+v", d)
	}
}

func TestJoinGroupMaxSizeReached(t *testing.T) {
	tb := grpProtoBroker(t, func(c *coordinator.Config) { c.MaxSize = 1 })
	addr := tb.addr
	m, gen := stableGroup(t, addr, joinSpec{group: "small"})
	// A new member is refused before it gets a member id (acceptJoiningMember runs first).
	if r := grpMust[*kmsg.JoinGroupResponse](t, addr, joinSpec{group: "small"}.request()); r.ErrorCode != 81 || r.MemberID != "" {
		t.Fatalf("second member: %+v", r)
	}
	// The member in the group may rejoin.
	r := waitJoin(t, joinAsync(addr, joinSpec{group: "small", memberID: m}))
	if r.ErrorCode != 0 || r.Generation != gen+1 {
		t.Fatalf("rejoin of the member: %+v", r)
	}
}

func TestListGroupsStatesAndTypesFilter(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "t", 1)
	stableGroup(t, addr, joinSpec{group: "stable-one"})
	if c := commit(t, addr, "empty-one", "", nil, -1, 1); c != 0 {
		t.Fatalf("commit: %d", c)
	}
	list := func(v int16, states, types []string) map[string]string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version, req.StatesFilter, req.TypesFilter = v, states, types
		resp := grpMust[*kmsg.ListGroupsResponse](t, addr, req)
		out := map[string]string{}
		for _, g := range resp.Groups {
			out[g.Group] = g.ProtocolType + "/" + g.GroupState + "/" + g.GroupType
		}
		return out
	}
	if got := fmt.Sprint(list(5, nil, nil)); got != "map[empty-one:/Empty/classic stable-one:consumer/Stable/classic]" {
		t.Fatalf("list: %s", got)
	}
	if got := fmt.Sprint(list(4, []string{"stable"}, nil)); got != "map[stable-one:consumer/Stable/]" {
		t.Fatalf("list stable: %s", got)
	}
	if got := list(5, nil, []string{"consumer"}); len(got) != 0 {
		t.Fatalf("list consumer-type groups: %v", got)
	}
	if got := list(5, []string{"Empty"}, []string{"Classic"}); len(got) != 1 {
		t.Fatalf("list classic empty: %v", got)
	}
}

// TestOffsetsRetentionExpiresEmptyGroups: offsets of an Empty group expire after
// offsets.retention.minutes and the group goes with them; a Stable group's offsets of
// subscribed topics stay.
func TestOffsetsRetentionExpiresEmptyGroups(t *testing.T) {
	tb := grpProtoBroker(t, func(c *coordinator.Config) {
		c.OffsetsRetention, c.OffsetsRetentionCheckInterval = 300*time.Millisecond, 50*time.Millisecond
	})
	addr := tb.addr
	grpCreateTopic(t, addr, "t", 1)
	m, gen := stableGroup(t, addr, joinSpec{group: "active", topics: []string{"t"}})
	if c := commit(t, addr, "active", m, nil, gen, 5); c != 0 {
		t.Fatalf("commit: %d", c)
	}
	if c := commit(t, addr, "idle", "", nil, -1, 5); c != 0 {
		t.Fatalf("commit: %d", c)
	}
	fetch := func(group string) int64 {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.Group = 7, group
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
		return grpMust[*kmsg.OffsetFetchResponse](t, addr, req).Topics[0].Partitions[0].Offset
	}
	deadline := time.Now().Add(10 * time.Second)
	for fetch("idle") != -1 {
		if time.Now().After(deadline) {
			t.Fatal("offsets of the idle group never expired")
		}
		heartbeat(t, addr, "active", m, nil, gen)
		time.Sleep(50 * time.Millisecond)
	}
	if d := describe(t, addr, 5, "idle"); d.State != "Dead" {
		t.Fatalf("expired group: %+v", d)
	}
	if o := fetch("active"); o != 5 {
		t.Fatalf("offset of a subscribed topic in a stable group: %d", o)
	}
}

func TestProduceToOffsetsTopicRefused(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	cl := newClient(t, tb.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	err := cl.ProduceSync(admCtx(t), &kgo.Record{Topic: coordinator.OffsetsTopic, Key: []byte("k"), Value: []byte("v")}).FirstErr()
	if err == nil || !strings.Contains(err.Error(), "INVALID_TOPIC_EXCEPTION") {
		t.Fatalf("produce to %s: %v", coordinator.OffsetsTopic, err)
	}
}

// FuzzGroupRequests sends mutated group requests (every group API, seeded with valid ones) to
// a live broker: the coordinator must answer or the connection close, never panic. Parked
// JoinGroups are answered when the broker drains.
func FuzzGroupRequests(f *testing.F) {
	add := func(r kmsg.Request, v int16) {
		r.SetVersion(v)
		f.Add(r.Key(), v, r.IsFlexible(), r.AppendTo(nil))
	}
	add(joinSpec{group: "fz", sessionMs: 6000}.request(), 9)
	add(joinSpec{group: "fz", sessionMs: 6000, version: 3}.request(), 3)
	add(joinSpec{group: "fz", instanceID: kmsg.StringPtr("i"), sessionMs: 6000, version: 5}.request(), 5)
	s := kmsg.NewPtrSyncGroupRequest()
	s.Group, s.MemberID, s.Generation = "fz", "m", 1
	s.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: "m", MemberAssignment: []byte{1}}}
	add(s, 5)
	h := kmsg.NewPtrHeartbeatRequest()
	h.Group, h.MemberID, h.Generation = "fz", "m", 1
	add(h, 4)
	l := kmsg.NewPtrLeaveGroupRequest()
	l.Group, l.Members = "fz", []kmsg.LeaveGroupRequestMember{{MemberID: "m"}, {InstanceID: kmsg.StringPtr("i")}}
	add(l, 5)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = "fz", -1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	add(oc, 9)
	add(oc, 1)
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "fz"}}
	add(of, 9)
	of2 := kmsg.NewPtrOffsetFetchRequest()
	of2.Group = "fz"
	add(of2, 3)
	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Groups = []string{"fz", ""}
	add(d, 6)
	add(kmsg.NewPtrListGroupsRequest(), 5)
	dg := kmsg.NewPtrDeleteGroupsRequest()
	dg.Groups = []string{"fz"}
	add(dg, 2)
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "fz"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	add(od, 0)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{"fz"}
	add(fc, 6)
	tb := startBroker(f, "", func(c *Config) { c.Groups.MinSessionTimeout = time.Millisecond })
	f.Fuzz(func(t *testing.T, key, version int16, flex bool, body []byte) {
		c, err := net.Dial("tcp", tb.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(frame(key, version, 1, flex, body))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var size [4]byte
		io.ReadFull(c, size[:])
	})
}

// TestPipelinedRequestsTakeEffectInOrder: requests pipelined on one connection take effect in
// the order sent, as Kafka handles a connection's requests one at a time: 200 OffsetCommits
// of rising offsets (handled off the event loop) sent in one write, each followed by an
// OffsetFetch (handled on it) and the last by a Heartbeat, leave the group at the last
// offset, and every OffsetFetch reads exactly the commit sent just before it.
func TestPipelinedRequestsTakeEffectInOrder(t *testing.T) {
	tb := grpProtoBroker(t, nil)
	createTopic(t, newClient(t, tb.addr), "t", 1, nil)
	const n = 200
	var stream []byte
	corr := int32(0)
	add := func(req kmsg.Request) {
		corr++
		stream = append(stream, frame(req.Key(), req.GetVersion(), corr, req.IsFlexible(), req.AppendTo(nil))...)
	}
	for i := 1; i <= n; i++ {
		c := kmsg.NewPtrOffsetCommitRequest()
		c.Version = 8
		c.Group, c.Generation = "pipelined", -1 // a group used only for its offsets
		c.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: int64(i), LeaderEpoch: -1}}}}
		add(c)
		f := kmsg.NewPtrOffsetFetchRequest()
		f.Version = 7
		f.Group = "pipelined"
		f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
		add(f)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 4
	hb.Group, hb.MemberID, hb.Generation = "pipelined", "nobody", 1
	add(hb)
	conn, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(stream); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		for _, fetch := range []bool{false, true} {
			buf, ok := readResponse(t, conn)
			if !ok {
				t.Fatalf("connection closed at response %d", i)
			}
			// Header: correlation id, then a tag byte (both are flexible versions).
			body := buf[5:]
			if !fetch {
				r := kmsg.NewPtrOffsetCommitResponse()
				r.Version = 8
				if err := r.ReadFrom(body); err != nil || r.Topics[0].Partitions[0].ErrorCode != 0 {
					t.Fatalf("commit %d: %v %+v", i, err, r)
				}
				continue
			}
			r := kmsg.NewPtrOffsetFetchResponse()
			r.Version = 7
			if err := r.ReadFrom(body); err != nil || len(r.Topics) != 1 {
				t.Fatalf("fetch %d: %v %+v", i, err, r)
			}
			if got := r.Topics[0].Partitions[0].Offset; got != int64(i) {
				t.Fatalf("OffsetFetch sent after the commit of %d read %d", i, got)
			}
		}
	}
	buf, ok := readResponse(t, conn)
	if !ok || binary.BigEndian.Uint32(buf) != uint32(corr) {
		t.Fatalf("heartbeat answer missing or out of order: %x", buf)
	}
	f := kmsg.NewPtrOffsetFetchRequest()
	f.Group = "pipelined"
	f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if got := grpMust[*kmsg.OffsetFetchResponse](t, tb.addr, f).Topics[0].Partitions[0].Offset; got != n {
		t.Fatalf("committed offset %d after the pipelined commits, want %d", got, n)
	}
}
