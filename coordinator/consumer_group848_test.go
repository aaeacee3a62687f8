package coordinator

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// topicsTestHost adds TopicsHost to testHost: topic ids derived from names.
type topicsTestHost struct {
	*testHost
	version int
}

func (h *topicsTestHost) TopicsVersion() any { return h.version }

func (h *topicsTestHost) TopicByName(name string) ([16]byte, int32, bool) {
	n, ok := h.topics[name]
	return tid(name), n, ok
}

func (h *topicsTestHost) TopicByID(id [16]byte) (string, int32, bool) {
	for name, n := range h.topics {
		if tid(name) == id {
			return name, n, true
		}
	}
	return "", 0, false
}

func (h *topicsTestHost) TopicNames() []string {
	var out []string
	for name := range h.topics {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func hb(group, member string, epoch int32, topics []string, owned partSet) *kmsg.ConsumerGroupHeartbeatRequest {
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	req.Group, req.MemberID, req.MemberEpoch = group, member, epoch
	req.SubscribedTopicNames = topics
	if epoch == 0 {
		req.RebalanceTimeoutMillis = 30000
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	}
	if owned != nil {
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		for _, t := range owned.byTopic() {
			req.Topics = append(req.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: t.id, Partitions: t.parts})
		}
	}
	return req
}

func respParts(r *kmsg.ConsumerGroupHeartbeatResponse) partSet {
	s := partSet{}
	if r.Assignment != nil {
		for _, t := range r.Assignment.Topics {
			for _, p := range t.Partitions {
				s[idPart{t.TopicID, p}] = struct{}{}
			}
		}
	}
	return s
}

// TestConsumerGroupRecordEncoding pins the bytes of the records (Kafka's schemas) and reads
// them back.
func TestConsumerGroupRecordEncoding(t *testing.T) {
	inst, rack, re, asg := "i", "r", "t.*", "uniform"
	m := &cmember{
		id: "m", instanceID: &inst, rackID: &rack, clientID: "c", clientHost: "/h", rebalanceTimeout: 500,
		subscribedNames: []string{"a", "b"}, subscribedRegex: &re, assignor: &asg,
		epoch: 7, prevEpoch: 6, state: memberUnrevokedPartitions,
		assigned:      partSet{{tid("a"), 1}: {}, {tid("a"), 0}: {}},
		pendingRevoke: partSet{{tid("b"), 2}: {}},
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"metadata key", cgMetadataKey("g"), "0003" + "000167"},
		{"metadata value", cgMetadataValue(5, 0), "0000" + "00000005" + "00"},
		{"metadata value with hash", cgMetadataValue(5, 1), "0000" + "00000005" + "01" + "00" + "08" + "0000000000000001"},
		{"member key", cgMemberKey("g", "m"), "0005" + "000167" + "00016d"},
		{"member value", cgMemberValue(m), "0000" + "0269" + "0272" + "0263" + "032f68" + "03" + "0261" + "0262" + "04742e2a" + "000001f4" + "08756e69666f726d" + "00"},
		{"target metadata key", cgTargetMetadataKey("g"), "0006" + "000167"},
		{"target metadata value", cgTargetMetadataValue(9), "0000" + "00000009" + "00"},
		{"target member key", cgTargetMemberKey("g", "m"), "0007" + "000167" + "00016d"},
		{"target member value", cgTargetMemberValue(partSet{{tid("a"), 3}: {}}), "0000" + "02" + tidHex("a") + "02" + "00000003" + "00" + "00"},
		{"current key", cgCurrentAssignmentKey("g", "m"), "0008" + "000167" + "00016d"},
		{"current value", cgCurrentAssignmentValue(m), "0000" + "00000007" + "00000006" + "01" +
			"02" + tidHex("a") + "03" + "00000000" + "00000001" + "00" +
			"02" + tidHex("b") + "02" + "00000002" + "00" + "00"},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Fatalf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	// Read back.
	c := &Coordinator{log: testLogger()}
	loaded := map[string]*loadedGroup{}
	get := func(id string) *loadedGroup {
		if loaded[id] == nil {
			loaded[id] = &loadedGroup{offsets: map[topicPartition]*offset{}}
		}
		return loaded[id]
	}
	c.loadConsumerRecord(0, cgMetadataType, cgMetadataKey("g"), cgMetadataValue(5, 77), get)
	c.loadConsumerRecord(0, cgMemberType, cgMemberKey("g", "m"), cgMemberValue(m), get)
	c.loadConsumerRecord(0, cgCurrentAssignmentType, cgCurrentAssignmentKey("g", "m"), cgCurrentAssignmentValue(m), get)
	c.loadConsumerRecord(0, cgTargetMetadataType, cgTargetMetadataKey("g"), cgTargetMetadataValue(4), get)
	c.loadConsumerRecord(0, cgTargetMemberType, cgTargetMemberKey("g", "m"), cgTargetMemberValue(m.assigned), get)
	c.loadConsumerRecord(0, cgTargetMemberType, cgTargetMemberKey("g", "gone"), cgTargetMemberValue(m.assigned), get)
	c.loadConsumerRecord(0, cgTargetMemberType, cgTargetMemberKey("g", "gone"), nil, get)
	lc := loaded["g"].cg
	lm := lc.members["m"]
	if !lc.hasMeta || lc.epoch != 5 || lc.metaHash != 77 || lc.assignmentEpoch != 4 || len(lc.target) != 1 || !lc.target["m"].equal(m.assigned) {
		t.Fatalf("loaded group: %+v", lc)
	}
	if *lm.instanceID != "i" || *lm.rackID != "r" || lm.clientID != "c" || lm.clientHost != "/h" || lm.rebalanceTimeout != 500 ||
		fmt.Sprint(lm.subscribedNames) != "[a b]" || *lm.subscribedRegex != "t.*" || *lm.assignor != "uniform" ||
		lm.epoch != 7 || lm.prevEpoch != 6 || lm.state != memberUnrevokedPartitions || !lm.assigned.equal(m.assigned) || !lm.pendingRevoke.equal(m.pendingRevoke) {
		t.Fatalf("loaded member: %+v", lm)
	}
	// Truncated values are refused, not half applied.
	for n := 0; n < len(cgMemberValue(m)); n++ {
		c.loadConsumerRecord(0, cgMemberType, cgMemberKey("g", "t"), cgMemberValue(m)[:n], get)
		c.loadConsumerRecord(0, cgCurrentAssignmentType, cgCurrentAssignmentKey("g", "t"), cgCurrentAssignmentValue(m)[:min(n, 20)], get)
	}
	if lc.members["t"] != nil {
		t.Fatalf("a truncated record made a member: %+v", lc.members["t"])
	}
}

// TestConsumerGroupReloadsFromOffsetsTopic: a consumer group's epochs, members (a static one
// away with epoch -2), assignments and targets are written to __consumer_offsets and loaded
// back identical; once empty and deleted, it stays deleted.
func TestConsumerGroupReloadsFromOffsetsTopic(t *testing.T) {
	dir := t.TempDir()
	th := &topicsTestHost{testHost: openTestHost(t, dir)}
	th.topics["u"] = 3
	c, err := New(testConfig(), th, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if code := c.Ensure(); code != 0 {
		t.Fatal(code)
	}
	cl := Client{ID: "cl", Host: "/10.0.0.2"}
	beat := func(req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		r := c.ConsumerGroupHeartbeat(req, cl)
		if r.ErrorCode != 0 {
			t.Fatalf("%s epoch %d: %d %v", req.MemberID, req.MemberEpoch, r.ErrorCode, r.ErrorMessage)
		}
		return r
	}
	a := beat(hb("g", "a", 0, []string{"t", "u"}, nil))
	sreq := hb("g", "s", 0, []string{"t"}, nil)
	sreq.InstanceID, sreq.ServerAssignor = kmsg.StringPtr("static"), kmsg.StringPtr("range")
	s := beat(sreq)
	owned := map[string]partSet{"a": respParts(a), "s": respParts(s)}
	epochs := map[string]int32{"a": a.MemberEpoch, "s": s.MemberEpoch}
	for i := 0; i < 4; i++ {
		for _, id := range []string{"a", "s"} {
			r := beat(hb("g", id, epochs[id], nil, owned[id]))
			epochs[id] = r.MemberEpoch
			if r.Assignment != nil {
				owned[id] = respParts(r)
			}
		}
	}
	describe := func() string {
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = []string{"g"}
		b, _ := json.Marshal(c.ConsumerGroupDescribe(req).Groups[0])
		return string(b)
	}
	d := c.ConsumerGroupDescribe(&kmsg.ConsumerGroupDescribeRequest{Groups: []string{"g"}}).Groups[0]
	if d.State != "Stable" || len(owned["a"])+len(owned["s"]) != 7 || d.AssignorName != "range" {
		t.Fatalf("not reconciled: %+v %v", d, owned)
	}
	lreq := hb("g", "s", -2, nil, nil)
	beat(lreq)
	before := describe()
	// The records in the log are of types 3, 5, 6, 7, 8 and decode.
	types := map[int16]int{}
	for _, l := range th.logs {
		var res logstore.ReadResult
		if err := l.Read(0, 1<<20, l.LogEndOffset(), true, &res); err != nil {
			t.Fatal(err)
		}
		for _, reg := range res.Regions {
			var hdr logstore.BatchHeader
			for b := reg.Data; len(b) > 0; b = b[hdr.Size():] {
				logstore.ParseBatchHeader(b, &hdr)
				forEachKeyValue(b[logstore.BatchHeaderSize:hdr.Size()], hdr.RecordCount, func(key, value []byte) {
					types[int16(key[0])<<8|int16(key[1])]++
				})
			}
		}
		res.Release()
	}
	if types[3] == 0 || types[5] != 2 || types[6] == 0 || types[7] == 0 || types[8] == 0 || types[2] != 0 {
		t.Fatalf("record types: %v", types)
	}
	c.Close()
	th.close()

	th = &topicsTestHost{testHost: openTestHost(t, dir)}
	th.topics["u"] = 3
	c2, err := New(testConfig(), th, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	c = c2
	if after := describe(); after != before {
		t.Fatalf("after reload:\n%s\nbefore:\n%s", after, before)
	}
	// a goes on at its epoch; s comes back with a new member id and gets its partitions.
	if r := beat(hb("g", "a", epochs["a"], nil, owned["a"])); r.MemberEpoch != epochs["a"] || r.Assignment != nil {
		t.Fatalf("a after reload: %+v", r)
	}
	sreq = hb("g", "s2", 0, []string{"t"}, nil)
	sreq.InstanceID = kmsg.StringPtr("static")
	if r := beat(sreq); !respParts(r).equal(owned["s"]) || r.MemberEpoch != epochs["a"] {
		t.Fatalf("static member back after reload: %+v", r)
	}
	// Everyone leaves, the group is deleted: gone after a reload too.
	beat(hb("g", "a", -1, nil, nil))
	beat(hb("g", "s2", -1, nil, nil))
	if r := c.DeleteGroups(&kmsg.DeleteGroupsRequest{Groups: []string{"g"}}); r.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete: %+v", r.Groups[0])
	}
	c.Close()
	th.close()
	th = &topicsTestHost{testHost: openTestHost(t, dir)}
	c3, err := New(testConfig(), th, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c3.Close)
	if d := c3.ConsumerGroupDescribe(&kmsg.ConsumerGroupDescribeRequest{Groups: []string{"g"}}).Groups[0]; d.ErrorCode != errGroupIDNotFound {
		t.Fatalf("deleted group after reload: %+v", d)
	}
	if l := c3.ListGroups(kmsg.NewPtrListGroupsRequest()); len(l.Groups) != 0 {
		t.Fatalf("groups after reload: %+v", l.Groups)
	}
}

// TestConsumerGroupNextAssignment walks CurrentAssignmentBuilder's cases on one member.
func TestConsumerGroupNextAssignment(t *testing.T) {
	g := &group{c: &Coordinator{metrics: newGroupMetrics(metrics.NewSet()), log: testLogger()}, id: "g"}
	cg := newConsumerGroup(g)
	p := func(ps ...int32) partSet {
		s := partSet{}
		for _, x := range ps {
			s[idPart{tid("t"), x}] = struct{}{}
		}
		return s
	}
	owned := func(ps ...int32) []kmsg.ConsumerGroupHeartbeatRequestTopic {
		return []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: tid("t"), Partitions: ps}}
	}
	m := &cmember{id: "m", epoch: 3, prevEpoch: 2, assigned: p(), pendingRevoke: p()}
	o := &cmember{id: "o", epoch: 3, assigned: p(), pendingRevoke: p()}
	cg.addMember(m)
	cg.addMember(o)
	cg.setAssignment(m, p(0, 1, 2), p())
	cg.setAssignment(o, p(3), p())
	cg.assignmentEpoch = 4
	cg.target["m"], cg.target["o"] = p(0, 3, 4), p(1, 2)
	// m must revoke 1 and 2 first: it keeps 0, stays at epoch 3.
	epoch, st, assigned, pending := cg.nextAssignment(m, owned(0, 1, 2))
	if epoch != 3 || st != memberUnrevokedPartitions || !assigned.equal(p(0)) || !pending.equal(p(1, 2)) {
		t.Fatalf("revoke first: %d %s %v %v", epoch, st, assigned, pending)
	}
	cg.reconcile(m, owned(0, 1, 2))
	if m.state != memberUnrevokedPartitions || cg.owners[idPart{tid("t"), 1}] != "m" {
		t.Fatalf("revoking: %+v %v", m, cg.owners)
	}
	// Without saying what it owns, it still owns them.
	cg.reconcile(m, nil)
	if m.state != memberUnrevokedPartitions {
		t.Fatalf("keepalive counted as a revocation")
	}
	// Revoked: epoch 4; 4 is free, 3 is still o's: unreleased.
	cg.reconcile(m, owned(0))
	if m.epoch != 4 || m.prevEpoch != 3 || m.state != memberUnreleasedPartitions || !m.assigned.equal(p(0, 4)) || len(m.pendingRevoke) != 0 {
		t.Fatalf("after revoking: %+v", m)
	}
	// o revokes 3 (and gets 1, 2 at once since m released them).
	cg.reconcile(o, owned(3))
	if o.state != memberUnrevokedPartitions || !o.assigned.equal(p()) {
		t.Fatalf("o revoking: %+v", o)
	}
	cg.reconcile(o, owned())
	if o.epoch != 4 || o.state != memberStable || !o.assigned.equal(p(1, 2)) {
		t.Fatalf("o done: %+v", o)
	}
	// m gets 3.
	cg.reconcile(m, owned(0, 4))
	if m.state != memberStable || !m.assigned.equal(p(0, 3, 4)) || !m.reconciledTo(4) {
		t.Fatalf("m done: %+v", m)
	}
	for ip, id := range cg.owners {
		if !cg.members[id].assigned.has(ip) {
			t.Fatalf("owner of %v is %s, which does not have it", ip, id)
		}
	}
	if len(cg.owners) != 5 {
		t.Fatalf("owners: %v", cg.owners)
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func tidHex(name string) string {
	id := tid(name)
	return hex.EncodeToString(id[:])
}
