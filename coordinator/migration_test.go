package coordinator

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClassicMemberRecordEncoding pins the member record of a classic member of a consumer
// group: Kafka's ConsumerGroupMemberMetadataValue with ClassicMemberMetadata in tagged field 0
// (a nullable struct: size + 1, then 1 for not null), and reads it back.
func TestClassicMemberRecordEncoding(t *testing.T) {
	m := &cmember{
		id: "m", clientID: "c", clientHost: "/h", rebalanceTimeout: 500, subscribedNames: []string{"a"},
		classic: &classicMeta{sessionTimeout: 10000, protocols: []protocol{{"range", []byte{0, 1}}, {"x", []byte{}}}},
	}
	want := "0000" + "00" + "00" + "0263" + "032f68" + "02" + "0261" + "00" + "000001f4" + "00" +
		"01" + "00" + "15" + // one tagged field: tag 0, 21 bytes
		"01" + "00002710" + "03" + "0672616e6765" + "03" + "0001" + "00" + "0278" + "01" + "00" + "00"
	if got := hex.EncodeToString(cgMemberValue(m)); got != want {
		t.Fatalf("classic member value:\n got %s\nwant %s", got, want)
	}
	c := &Coordinator{log: testLogger()}
	loaded := map[string]*loadedGroup{}
	get := func(id string) *loadedGroup {
		if loaded[id] == nil {
			loaded[id] = &loadedGroup{offsets: map[topicPartition]*offset{}}
		}
		return loaded[id]
	}
	c.loadConsumerRecord(0, cgMemberType, cgMemberKey("g", "m"), cgMemberValue(m), get)
	lm := loaded["g"].cg.members["m"]
	if lm == nil || !lm.classic.equal(m.classic) || lm.rebalanceTimeout != 500 || fmt.Sprint(lm.subscribedNames) != "[a]" {
		t.Fatalf("loaded classic member: %+v %+v", lm, lm.classic)
	}
	// A consumer-protocol member's record has no tagged field; reading it clears classic.
	m.classic = nil
	c.loadConsumerRecord(0, cgMemberType, cgMemberKey("g", "m"), cgMemberValue(m), get)
	if lm := loaded["g"].cg.members["m"]; lm.classic != nil {
		t.Fatalf("classic metadata survived a consumer member record: %+v", lm.classic)
	}
	// Truncated classic metadata is refused, not half applied.
	m.classic = &classicMeta{sessionTimeout: 10000, protocols: []protocol{{"range", []byte{0, 1}}}}
	full := cgMemberValue(m)
	for n := len(full) - 20; n < len(full); n++ {
		c.loadConsumerRecord(0, cgMemberType, cgMemberKey("g", "t"), full[:n], get)
	}
	if loaded["g"].cg.members["t"] != nil {
		t.Fatalf("a truncated record made a member: %+v", loaded["g"].cg.members["t"])
	}
}

func syncWait(t *testing.T, c *Coordinator, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	t.Helper()
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	c.SyncGroup(req, func(r *kmsg.SyncGroupResponse) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("sync not answered")
	}
	return nil
}

// classicJoinOwning is a cooperative member's JoinGroup: its subscription (v1) lists what it
// owns.
func classicJoinOwning(group, member string, owned ...int32) *kmsg.JoinGroupRequest {
	req := consumerJoin(group, member, nil)
	md := kmsg.ConsumerMemberMetadata{Version: 1, Topics: []string{"t"}}
	if len(owned) > 0 {
		md.OwnedPartitions = []kmsg.ConsumerMemberMetadataOwnedPartition{{Topic: "t", Partitions: owned}}
	}
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "cooperative-sticky", Metadata: md.AppendTo(nil)}}
	return req
}

func decodedAssignment(t *testing.T, b []byte) string {
	t.Helper()
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(b); err != nil {
		t.Fatalf("assignment %x: %v", b, err)
	}
	out := ""
	for _, at := range a.Topics {
		out += fmt.Sprintf("%s%v", at.Topic, at.Partitions)
	}
	return fmt.Sprintf("v%d:%s", a.Version, out)
}

// TestMigrationUpgradeDowngradeSurviveReloadKIP848 drives a classic member through an upgrade
// (a consumer-protocol member joins), its reconciliation as a classic member (revocation
// first), a reload of the offsets topic in the middle, and a downgrade (the consumer-protocol
// member leaves), and reloads the classic group it ends as.
func TestMigrationUpgradeDowngradeSurviveReloadKIP848(t *testing.T) {
	dir := t.TempDir()
	th := &topicsTestHost{testHost: openTestHost(t, dir)}
	open := func() *Coordinator {
		c, err := New(testConfig(), th, testLogger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if code := c.Ensure(); code != 0 {
			t.Fatal(code)
		}
		return c
	}
	c := open()
	cl := Client{ID: "cl", Host: "/10.0.0.1"}
	r := joinWait(t, c, classicJoinOwning("g", ""))
	if r.ErrorCode != errMemberIDRequired {
		t.Fatalf("first join: %+v", r)
	}
	x := r.MemberID
	if r = joinWait(t, c, classicJoinOwning("g", x)); r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != x {
		t.Fatalf("join: %+v", r)
	}
	all := kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{0, 1, 2, 3}}}}
	sreq := &kmsg.SyncGroupRequest{Group: "g", MemberID: x, Generation: 1, GroupAssignment: []kmsg.SyncGroupRequestGroupAssignment{{MemberID: x, MemberAssignment: all.AppendTo(nil)}}}
	if s := syncWait(t, c, sreq); s.ErrorCode != 0 {
		t.Fatalf("sync: %+v", s)
	}

	// Upgrade: n joins with the consumer protocol; x, at epoch 1, keeps everything until it
	// rejoins, so n gets nothing yet.
	n := c.ConsumerGroupHeartbeat(hb("g", "n", 0, []string{"t"}, nil), cl)
	if n.ErrorCode != 0 || n.MemberEpoch != 2 || len(respParts(n)) != 0 {
		t.Fatalf("upgrade join: %+v", n)
	}
	d := c.ConsumerGroupDescribe(&kmsg.ConsumerGroupDescribeRequest{Version: 1, Groups: []string{"g"}}).Groups[0]
	if d.ErrorCode != 0 || d.Epoch != 2 || len(d.Members) != 2 {
		t.Fatalf("describe after upgrade: %+v", d)
	}
	for _, m := range d.Members {
		if m.MemberID == x && (m.MemberType != 0 || m.MemberEpoch != 1 || fmt.Sprint(m.Assignment.TopicPartitions[0].Partitions) != "[0 1 2 3]") {
			t.Fatalf("classic member after upgrade: %+v", m)
		}
	}
	beat := func(gen int32) int16 {
		return c.Heartbeat(&kmsg.HeartbeatRequest{Group: "g", MemberID: x, Generation: gen}).ErrorCode
	}
	if code := beat(1); code != errRebalanceInProgress {
		t.Fatalf("classic heartbeat after the upgrade: %d", code)
	}
	if code := beat(2); code != errIllegalGeneration {
		t.Fatalf("classic heartbeat at a generation it does not have: %d", code)
	}
	// x rejoins owning everything: it must revoke first (generation 1, half its partitions).
	r = joinWait(t, c, classicJoinOwning("g", x, 0, 1, 2, 3))
	if r.ErrorCode != 0 || r.Generation != 1 || r.LeaderID != "" || *r.Protocol != "cooperative-sticky" || len(r.Members) != 0 {
		t.Fatalf("rejoin while revoking: %+v", r)
	}
	s := syncWait(t, c, &kmsg.SyncGroupRequest{Group: "g", MemberID: x, Generation: 1})
	kept := decodedAssignment(t, s.MemberAssignment)
	var a kmsg.ConsumerMemberAssignment
	if s.ErrorCode != 0 || a.ReadFrom(s.MemberAssignment) != nil || a.Version != 1 || len(a.Topics) != 1 || len(a.Topics[0].Partitions) != 2 {
		t.Fatalf("sync while revoking: %+v %s", s, kept)
	}
	keptParts := a.Topics[0].Partitions
	// Reload in the middle: the classic member, its epoch and assignment come back.
	before, _ := json.Marshal(c.ConsumerGroupDescribe(&kmsg.ConsumerGroupDescribeRequest{Version: 1, Groups: []string{"g"}}).Groups[0])
	c.Close()
	th.close()
	th = &topicsTestHost{testHost: openTestHost(t, dir)}
	c = open()
	after, _ := json.Marshal(c.ConsumerGroupDescribe(&kmsg.ConsumerGroupDescribeRequest{Version: 1, Groups: []string{"g"}}).Groups[0])
	if string(after) != string(before) {
		t.Fatalf("after reload:\n%s\nbefore:\n%s", after, before)
	}
	if code := beat(1); code != errRebalanceInProgress {
		t.Fatalf("classic heartbeat after the reload: %d", code)
	}
	// x revoked: it rejoins owning only what it kept and moves to epoch 2.
	if r = joinWait(t, c, classicJoinOwning("g", x, keptParts...)); r.ErrorCode != 0 || r.Generation != 2 {
		t.Fatalf("rejoin after revoking: %+v", r)
	}
	s = syncWait(t, c, &kmsg.SyncGroupRequest{Group: "g", MemberID: x, Generation: 2, Protocol: kmsg.StringPtr("cooperative-sticky")})
	if got := decodedAssignment(t, s.MemberAssignment); s.ErrorCode != 0 || got != kept {
		t.Fatalf("sync after revoking: %+v %s, want %s", s, got, kept)
	}
	if code := beat(2); code != 0 {
		t.Fatalf("classic heartbeat once reconciled: %d", code)
	}
	n = c.ConsumerGroupHeartbeat(hb("g", "n", 2, nil, partSet{}), cl)
	if n.ErrorCode != 0 || len(respParts(n)) != 2 {
		t.Fatalf("n after x revoked: %+v", n)
	}
	// A classic member commits with its generation, any version.
	oc := &kmsg.OffsetCommitRequest{Version: 7, Group: "g", MemberID: x, Generation: 2,
		Topics: []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: keptParts[0], Offset: 9, LeaderEpoch: -1}}}}}
	if code := c.OffsetCommit(oc).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("classic member's commit: %d", code)
	}
	oc.Generation = 1
	if code := c.OffsetCommit(oc).Topics[0].Partitions[0].ErrorCode; code != errIllegalGeneration {
		t.Fatalf("classic member's commit at an old generation: %d", code)
	}

	// Downgrade: n leaves; x, a classic member, is left: a classic group rebalancing at
	// generation 2 (the group epoch).
	if n = c.ConsumerGroupHeartbeat(hb("g", "n", -1, nil, nil), cl); n.ErrorCode != 0 {
		t.Fatalf("leave: %+v", n)
	}
	dg := c.DescribeGroups(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).Groups[0]
	if dg.State != "PreparingRebalance" || dg.ProtocolType != "consumer" || len(dg.Members) != 1 || dg.Members[0].MemberID != x {
		t.Fatalf("after the downgrade: %+v", dg)
	}
	if code := beat(2); code != errRebalanceInProgress {
		t.Fatalf("heartbeat after the downgrade: %d", code)
	}
	if r = joinWait(t, c, classicJoinOwning("g", x, keptParts...)); r.ErrorCode != 0 || r.Generation != 3 || r.LeaderID != x {
		t.Fatalf("join after the downgrade: %+v", r)
	}
	sreq.Generation = 3
	if s := syncWait(t, c, sreq); s.ErrorCode != 0 || decodedAssignment(t, s.MemberAssignment) != "v0:t[0 1 2 3]" {
		t.Fatalf("sync after the downgrade: %+v", s)
	}
	c.Close()
	th.close()
	th = &topicsTestHost{testHost: openTestHost(t, dir)}
	c = open()
	dg = c.DescribeGroups(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).Groups[0]
	if dg.State != "Stable" || dg.Protocol != "cooperative-sticky" || len(dg.Members) != 1 || decodedAssignment(t, dg.Members[0].MemberAssignment) != "v0:t[0 1 2 3]" {
		t.Fatalf("classic group after reload: %+v", dg)
	}
	if code := beat(3); code != 0 {
		t.Fatalf("heartbeat after the reload: %d", code)
	}
	if f := c.OffsetFetch(&kmsg.OffsetFetchRequest{Version: 5, Group: "g", Topics: []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{keptParts[0]}}}}); f.Topics[0].Partitions[0].Offset != 9 {
		t.Fatalf("offset after the migrations: %+v", f.Topics[0].Partitions[0])
	}
}
