package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
)

// Tests of consumer groups of the next-generation protocol (KIP-848): franz-go consumers with
// the server-side balancer, and ConsumerGroupHeartbeat driven by hand.

// cgBroker is a broker whose consumer groups heartbeat every 100ms; mod adjusts further.
func cgBroker(t *testing.T, dir string, mod func(*coordinator.Config)) *testBroker {
	t.Helper()
	return grpBroker(t, dir, func(c *coordinator.Config) {
		c.ConsumerHeartbeatInterval = 100 * time.Millisecond
		c.ConsumerSessionTimeout = 6 * time.Second
		if mod != nil {
			mod(c)
		}
	})
}

// cgProtoBroker is a cgBroker with the coordinator ready, for requests sent by hand.
func cgProtoBroker(t *testing.T, mod func(*coordinator.Config)) *testBroker {
	t.Helper()
	tb := cgBroker(t, "", mod)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version = 4
	req.CoordinatorKeys = []string{"any"}
	if resp := grpMust[*kmsg.FindCoordinatorResponse](t, tb.addr, req); resp.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("find coordinator: %+v", resp.Coordinators[0])
	}
	return tb
}

// cgStartMember starts a kgo consumer of the KIP-848 protocol ("uniform" for the
// cooperative-sticky balancer, "range" for the range one).
func cgStartMember(t *testing.T, addr, group, topic, name string, s *grpSink, balancer kgo.GroupBalancer, opts ...kgo.Opt) *grpMember {
	t.Helper()
	return grpStartMember(t, addr, group, topic, name, s, append([]kgo.Opt{kgo.ServerSideBalancer(), kgo.Balancers(balancer)}, opts...)...)
}

// cgWaitStable waits until the consumer group is Stable with the members ms, each having its
// target assignment, together covering every partition of topic exactly once, and every
// member's client owns what the coordinator says it has.
func cgWaitStable(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, ms ...*grpMember) kadm.DescribedConsumerGroup {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dgs, err := adm.DescribeConsumerGroups(ctx, group)
		cancel()
		if err == nil {
			dg := dgs[group]
			last = fmt.Sprintf("state %s, %d members, err %v", dg.State, len(dg.Members), dg.Err)
			if dg.Err == nil && dg.State == "Stable" && len(dg.Members) == len(ms) && cgCoversOnce(dg, topic, partitions) && cgClientsAgree(dg, topic, ms) {
				return dg
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("consumer group %s did not become stable with %d members: %s", group, len(ms), last)
	return kadm.DescribedConsumerGroup{}
}

func cgCoversOnce(dg kadm.DescribedConsumerGroup, topic string, partitions int32) bool {
	seen := map[int32]int{}
	for _, m := range dg.Members {
		if fmt.Sprint(m.Assignment.Sorted()) != fmt.Sprint(m.TargetAssignment.Sorted()) {
			return false
		}
		for p := range m.Assignment[topic] {
			seen[p]++
		}
	}
	if len(seen) != int(partitions) {
		return false
	}
	for _, n := range seen {
		if n != 1 {
			return false
		}
	}
	return true
}

func cgClientsAgree(dg kadm.DescribedConsumerGroup, topic string, ms []*grpMember) bool {
	byClient := map[string][]int32{}
	for _, m := range dg.Members {
		ps := m.Assignment.Sorted()
		var out []int32
		for _, tp := range ps {
			if tp.Topic == topic {
				out = append(out, tp.Partitions...)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		byClient[m.ClientID] = out
	}
	for _, m := range ms {
		if fmt.Sprint(byClient[m.name]) != fmt.Sprint(m.owned()) {
			return false
		}
	}
	return true
}

var cgBalancers = []struct {
	name     string
	balancer kgo.GroupBalancer
	assignor string
}{
	{"uniform", kgo.CooperativeStickyBalancer(), "uniform"},
	{"range", kgo.RangeBalancer(), "range"},
}

// TestConsumerGroup848EachRecordOnceWhileStable: three KIP-848 members over six partitions
// share 600 records, each handled by exactly one member, the owner of its partition, with the
// uniform and the range assignor; the group lists as a consumer group.
func TestConsumerGroup848EachRecordOnceWhileStable(t *testing.T) {
	for _, tc := range cgBalancers {
		t.Run(tc.name, func(t *testing.T) {
			tb := cgBroker(t, "", nil)
			const topic, group, partitions = "orders", "workers848", 6
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			s := grpNewSink()
			var ms []*grpMember
			for i := 0; i < 3; i++ {
				ms = append(ms, cgStartMember(t, tb.addr, group, topic, fmt.Sprintf("c%d", i), s, tc.balancer))
			}
			dg := cgWaitStable(t, adm, group, topic, partitions, ms...)
			if dg.AssignorName != tc.assignor || dg.Epoch != dg.AssignmentEpoch {
				t.Fatalf("assignor %q epochs %d/%d, want %s", dg.AssignorName, dg.Epoch, dg.AssignmentEpoch, tc.assignor)
			}
			for _, m := range ms {
				if n := len(m.owned()); n != 2 {
					t.Fatalf("%s owns %v, want two partitions", m.name, m.owned())
				}
			}
			if tc.assignor == "range" {
				// Range: contiguous ranges in member order.
				for _, m := range dg.Members {
					ps := m.Assignment.Sorted()
					if len(ps) != 1 || len(ps[0].Partitions) != 2 || ps[0].Partitions[1] != ps[0].Partitions[0]+1 {
						t.Fatalf("range assignment %v", ps)
					}
				}
			}
			listed, err := adm.ListGroupsByType(admCtx(t), []string{"consumer"})
			if err != nil {
				t.Fatal(err)
			}
			if lg := listed[group]; lg.ProtocolType != "consumer" || lg.State != "Stable" {
				t.Fatalf("listed: %+v", listed)
			}
			want := grpProduce(t, tb.addr, topic, partitions, 0, 600)
			grpWaitDistinct(t, s, 600)
			time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
			owner := map[int32]string{}
			for _, m := range ms {
				for _, p := range m.owned() {
					owner[p] = m.name
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.seen) != 600 {
				t.Fatalf("%d distinct records, want 600", len(s.seen))
			}
			for id, n := range s.seen {
				if n != 1 {
					t.Fatalf("record %v delivered %d times (to %v)", id, n, s.byWho[id])
				}
				if who := s.byWho[id][0]; who != owner[id.partition] {
					t.Fatalf("record %v went to %s, partition owned by %s", id, who, owner[id.partition])
				}
				if s.value[id] != want[id.partition][id.offset] {
					t.Fatalf("record %v is %q, want %q", id, s.value[id], want[id.partition][id.offset])
				}
			}
		})
	}
}

// TestConsumerGroup848MembersLeaveAndJoinMidStreamNoLoss: while records flow, one of three
// members leaves and later a new one joins; every record is consumed, and only partitions
// moved between members may see records again (from the last commit).
func TestConsumerGroup848MembersLeaveAndJoinMidStreamNoLoss(t *testing.T) {
	for _, tc := range cgBalancers {
		t.Run(tc.name, func(t *testing.T) {
			tb := cgBroker(t, "", nil)
			const topic, group, partitions = "events", "churn848", 6
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			s := grpNewSink()
			var ms []*grpMember
			for i := 0; i < 3; i++ {
				ms = append(ms, cgStartMember(t, tb.addr, group, topic, fmt.Sprintf("c%d", i), s, tc.balancer))
			}
			cgWaitStable(t, adm, group, topic, partitions, ms...)
			total := 0
			for batch := 0; batch < 8; batch++ {
				grpProduce(t, tb.addr, topic, partitions, total, 100)
				total += 100
				switch batch {
				case 2:
					grpWaitDistinct(t, s, total-50)
					ms[1].close() // leaves mid-stream
				case 5:
					ms = append(ms, cgStartMember(t, tb.addr, group, topic, "c3", s, tc.balancer)) // joins mid-stream
				}
				time.Sleep(50 * time.Millisecond)
			}
			cgWaitStable(t, adm, group, topic, partitions, ms[0], ms[2], ms[3])
			grpWaitDistinct(t, s, total)
			s.mu.Lock()
			defer s.mu.Unlock()
			// Each record once with its value, except records a member processed and had not
			// committed when its partition moved (the leaver's, or those given to the
			// joiner): redelivered once, to the member that took the partition over.
			dups := 0
			for id, n := range s.seen {
				if end := (total - int(id.partition) + partitions - 1) / partitions; id.offset >= int64(end) {
					t.Fatalf("record %v past the end (%d)", id, end)
				}
				if want := fmt.Sprintf("v%d", int64(id.partition)+partitions*id.offset); s.value[id] != want {
					t.Fatalf("record %v has value %q, want %q", id, s.value[id], want)
				}
				if who := s.byWho[id]; n > 2 || n == 2 && who[0] == who[1] {
					t.Fatalf("record %v delivered to %v: only a moved partition's uncommitted records may come again, once, to its new owner", id, who)
				}
				dups += n - 1
			}
			if len(s.seen) != total {
				t.Fatalf("%d distinct records, want %d", len(s.seen), total)
			}
			t.Logf("%d records, %d redelivered across the membership changes", total, dups)
		})
	}
}

// TestConsumerGroup848CommittedOffsetsUsedOnRestart: a KIP-848 member commits and leaves; the
// broker restarts; the consumer group (type, epoch) and its offsets are back, and a new
// member resumes right after the commit.
func TestConsumerGroup848CommittedOffsetsUsedOnRestart(t *testing.T) {
	tb := cgBroker(t, "", nil)
	const topic, group, partitions = "ledger", "resumers848", 6
	adm := grpCreateTopic(t, tb.addr, topic, partitions)
	grpProduce(t, tb.addr, topic, partitions, 0, 120)
	s := grpNewSink()
	m := cgStartMember(t, tb.addr, group, topic, "first", s, kgo.CooperativeStickyBalancer(), kgo.DisableAutoCommit())
	grpWaitDistinct(t, s, 120)
	ctx := admCtx(t)
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	m.close()
	before, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil || dg[group].State != "Empty" {
		t.Fatalf("group after its member left: %+v %v", dg[group], err)
	}
	epoch := dg[group].Epoch
	tb.stop()

	tb = cgBroker(t, tb.dir, nil)
	adm = kadm.NewClient(newClient(t, tb.addr))
	after, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		b, _ := before.Lookup(topic, p)
		a, _ := after.Lookup(topic, p)
		if a.Err != nil || a.At != 20 || a.At != b.At || a.LeaderEpoch != b.LeaderEpoch {
			t.Fatalf("partition %d after restart: %+v, before %+v (want offset 20)", p, a.Offset, b.Offset)
		}
	}
	dg, err = adm.DescribeConsumerGroups(ctx, group)
	if err != nil || dg[group].State != "Empty" || dg[group].Epoch != epoch || dg[group].Err != nil {
		t.Fatalf("consumer group after restart: %+v %v (epoch was %d)", dg[group], err, epoch)
	}
	grpProduce(t, tb.addr, topic, partitions, 120, 60)
	s2 := grpNewSink()
	cgStartMember(t, tb.addr, group, topic, "second", s2, kgo.CooperativeStickyBalancer())
	grpWaitDistinct(t, s2, 60)
	time.Sleep(300 * time.Millisecond)
	s2.mu.Lock()
	defer s2.mu.Unlock()
	if len(s2.seen) != 60 {
		t.Fatalf("resumed consumer got %d records, want the 60 after the commit", len(s2.seen))
	}
	for id := range s2.seen {
		if id.offset < 20 {
			t.Fatalf("resumed consumer got %v, committed before the restart", id)
		}
	}
}

// cgHB is a ConsumerGroupHeartbeat v1 of the tests.
type cgHB struct {
	group, member string
	epoch         int32
	instance      *string
	topics        []string // subscribed names; nil: unchanged
	regex         *string
	assignor      *string
	owned         []kmsg.ConsumerGroupHeartbeatRequestTopic // nil: unchanged (keepalive)
	rebalanceMs   int32                                     // 0: 30000 when joining, else -1 (unchanged)
	v0            bool                                      // ConsumerGroupHeartbeat v0 (else v1)
}

func (h cgHB) request() *kmsg.ConsumerGroupHeartbeatRequest {
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version = 1
	if h.v0 {
		req.Version = 0
	}
	req.Group, req.MemberID, req.MemberEpoch, req.InstanceID = h.group, h.member, h.epoch, h.instance
	req.SubscribedTopicNames, req.SubscribedTopicRegex, req.ServerAssignor, req.Topics = h.topics, h.regex, h.assignor, h.owned
	req.RebalanceTimeoutMillis = -1
	if h.rebalanceMs != 0 {
		req.RebalanceTimeoutMillis = h.rebalanceMs
	} else if h.epoch == 0 {
		req.RebalanceTimeoutMillis = 30000
	}
	if h.epoch == 0 && h.owned == nil {
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	}
	return req
}

func cgHeartbeat(t *testing.T, addr string, h cgHB) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	return grpMust[*kmsg.ConsumerGroupHeartbeatResponse](t, addr, h.request())
}

// cgParts returns a heartbeat response's assignment as sorted "topic-partition" names (nil
// when the response has none).
func cgParts(resp *kmsg.ConsumerGroupHeartbeatResponse, names map[[16]byte]string) []string {
	if resp.Assignment == nil {
		return nil
	}
	out := []string{}
	for _, t := range resp.Assignment.Topics {
		for _, p := range t.Partitions {
			out = append(out, fmt.Sprintf("%s-%d", names[t.TopicID], p))
		}
	}
	sort.Strings(out)
	return out
}

// cgOwned builds owned partitions from "topic-partition" names.
func cgOwned(ids map[string][16]byte, parts ...string) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	byTopic := map[string][]int32{}
	var order []string
	for _, tp := range parts {
		i := strings.LastIndexByte(tp, '-')
		var p int32
		fmt.Sscan(tp[i+1:], &p)
		if _, ok := byTopic[tp[:i]]; !ok {
			order = append(order, tp[:i])
		}
		byTopic[tp[:i]] = append(byTopic[tp[:i]], p)
	}
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, t := range order {
		out = append(out, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: ids[t], Partitions: byTopic[t]})
	}
	return out
}

// cgTopicIDs returns topic ids by name and names by id (a Metadata request of its own: kadm
// may answer from a cache).
func cgTopicIDs(t *testing.T, addr string) (map[string][16]byte, map[[16]byte]string) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	ids, names := map[string][16]byte{}, map[[16]byte]string{}
	for _, mt := range grpMust[*kmsg.MetadataResponse](t, addr, req).Topics {
		ids[*mt.Topic] = mt.TopicID
		names[mt.TopicID] = *mt.Topic
	}
	return ids, names
}

func cgDescribe(t *testing.T, addr, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Version = 1
	req.Groups = []string{group}
	return grpMust[*kmsg.ConsumerGroupDescribeResponse](t, addr, req).Groups[0]
}

// cgNoPartitionTwice fails when the coordinator has a partition in two members' assignments.
func cgNoPartitionTwice(t *testing.T, addr, group string) map[string][]string {
	t.Helper()
	d := cgDescribe(t, addr, group)
	if d.ErrorCode != 0 {
		t.Fatalf("describe %s: %d", group, d.ErrorCode)
	}
	held := map[string]string{}
	out := map[string][]string{}
	for _, m := range d.Members {
		out[m.MemberID] = []string{}
		for _, tp := range m.Assignment.TopicPartitions {
			for _, p := range tp.Partitions {
				name := fmt.Sprintf("%s-%d", tp.Topic, p)
				if o, ok := held[name]; ok {
					t.Fatalf("partition %s assigned to %s and %s", name, o, m.MemberID)
				}
				held[name] = m.MemberID
				out[m.MemberID] = append(out[m.MemberID], name)
			}
		}
		sort.Strings(out[m.MemberID])
	}
	return out
}

// TestConsumerGroupHeartbeat848ReconciliationRevokesFirst drives two members by hand: the second
// member's target partitions reach it only once the first has revoked them; at no step is a
// partition in two members' assignments (as the coordinator reports them, and as the
// heartbeat responses hand them out).
func TestConsumerGroupHeartbeat848ReconciliationRevokesFirst(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "r", 4)
	ids, names := cgTopicIDs(t, addr)
	const g = "reconcile"
	uniform := kmsg.StringPtr("uniform")
	owned := map[string][]string{} // what each client holds, as the responses said
	check := func(who string, resp *kmsg.ConsumerGroupHeartbeatResponse, wantEpoch int32, want ...string) {
		t.Helper()
		if resp.ErrorCode != 0 {
			t.Fatalf("%s: error %d %v", who, resp.ErrorCode, resp.ErrorMessage)
		}
		if resp.MemberEpoch != wantEpoch {
			t.Fatalf("%s: epoch %d, want %d", who, resp.MemberEpoch, wantEpoch)
		}
		got := cgParts(resp, names)
		if want == nil {
			want = []string{}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: assignment %v, want %v", who, got, want)
		}
		owned[who] = got
		held := map[string]string{}
		for m, ps := range owned {
			for _, p := range ps {
				if o, ok := held[p]; ok {
					t.Fatalf("partition %s handed to %s and %s", p, o, m)
				}
				held[p] = m
			}
		}
		cgNoPartitionTwice(t, addr, g)
	}
	// A joins alone: everything, at group epoch 1.
	a := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", topics: []string{"r"}, assignor: uniform})
	check("a", a, 1, "r-0", "r-1", "r-2", "r-3")
	a = cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1, owned: cgOwned(ids, owned["a"]...)})
	if a.ErrorCode != 0 || a.MemberEpoch != 1 || a.Assignment != nil {
		t.Fatalf("keepalive of a reconciled member: %+v", a)
	}
	if d := cgDescribe(t, addr, g); d.State != "Stable" || d.Epoch != 1 || d.AssignmentEpoch != 1 || d.AssignorName != "uniform" {
		t.Fatalf("describe: %+v", d)
	}
	// B joins: group epoch 2, half the partitions are its target, but A still holds them.
	b := cgHeartbeat(t, addr, cgHB{group: g, member: "member-b", topics: []string{"r"}, assignor: uniform})
	check("b", b, 2)
	d := cgDescribe(t, addr, g)
	var bTarget []string
	for _, m := range d.Members {
		if m.MemberID == "member-b" {
			for _, tp := range m.TargetAssignment.TopicPartitions {
				for _, p := range tp.Partitions {
					bTarget = append(bTarget, fmt.Sprintf("%s-%d", tp.Topic, p))
				}
			}
		}
	}
	sort.Strings(bTarget)
	if d.State != "Reconciling" || d.Epoch != 2 || d.AssignmentEpoch != 2 || len(bTarget) != 2 {
		t.Fatalf("after b joined: %+v (b's target %v)", d, bTarget)
	}
	var aKeeps []string
	for _, p := range owned["a"] {
		if p != bTarget[0] && p != bTarget[1] {
			aKeeps = append(aKeeps, p)
		}
	}
	// A, still at epoch 1, is told to revoke B's partitions first: its epoch stays.
	a = cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1, owned: cgOwned(ids, owned["a"]...)})
	check("a", a, 1, aKeeps...)
	// A keepalive (owned not given) does not count as a revocation.
	a = cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1})
	if a.ErrorCode != 0 || a.MemberEpoch != 1 || a.Assignment != nil {
		t.Fatalf("keepalive while revoking: %+v", a)
	}
	// B is still waiting for them (a full request: its assignment comes back, empty).
	b = cgHeartbeat(t, addr, cgHB{group: g, member: "member-b", epoch: 2, topics: []string{"r"}, owned: cgOwned(ids), rebalanceMs: 30000})
	check("b", b, 2)
	// A acknowledges: it owns only what it keeps; it moves to epoch 2.
	a = cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1, owned: cgOwned(ids, aKeeps...)})
	if a.ErrorCode != 0 || a.MemberEpoch != 2 {
		t.Fatalf("a after revoking: %+v", a)
	}
	// Now B gets them.
	b = cgHeartbeat(t, addr, cgHB{group: g, member: "member-b", epoch: 2, owned: cgOwned(ids)})
	check("b", b, 2, bTarget...)
	if d := cgDescribe(t, addr, g); d.State != "Stable" {
		t.Fatalf("after reconciliation: %+v", d)
	}
	// The previous epoch is accepted with owned partitions within the assignment (a lost
	// response); anything else at a wrong epoch is fenced.
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1, owned: cgOwned(ids, aKeeps[0])}); r.ErrorCode != 0 || r.MemberEpoch != 2 {
		t.Fatalf("previous epoch, owned within: %+v", r)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1}); r.ErrorCode != 110 {
		t.Fatalf("previous epoch, owned not given: %+v", r)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 1, owned: cgOwned(ids, bTarget...)}); r.ErrorCode != 110 {
		t.Fatalf("previous epoch, owning another's partitions: %+v", r)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 3}); r.ErrorCode != 110 {
		t.Fatalf("future epoch: %+v", r)
	}
	// A leaves: B takes everything at group epoch 3.
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: -1}); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", r)
	}
	delete(owned, "a")
	b = cgHeartbeat(t, addr, cgHB{group: g, member: "member-b", epoch: 2, owned: cgOwned(ids, owned["b"]...)})
	check("b", b, 3, "r-0", "r-1", "r-2", "r-3")
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: 2}); r.ErrorCode != 25 {
		t.Fatalf("heartbeat after leaving: %+v", r)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "member-a", epoch: -1}); r.ErrorCode != 25 {
		t.Fatalf("leave again: %+v", r)
	}
}

// TestConsumerGroupHeartbeat848ManyMembersNeverShare joins, heartbeats and removes members in
// a pseudo-random order, every member acting on what its responses say (revoking when told);
// after every step no partition is in two assignments, and at the end every partition is
// assigned once and each member has two or three.
func TestConsumerGroupHeartbeat848ManyMembersNeverShare(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "m1", 7)
	grpCreateTopic(t, addr, "m2", 5)
	ids, names := cgTopicIDs(t, addr)
	const g = "many"
	type cli struct {
		id    string
		epoch int32
		owned []string
	}
	clients := map[string]*cli{}
	beat := func(c *cli, full bool) {
		h := cgHB{group: g, member: c.id, epoch: c.epoch, owned: cgOwned(ids, c.owned...)}
		if c.epoch == 0 {
			h.topics, h.owned = []string{"m1", "m2"}, nil
		} else if !full {
			h.owned = nil
		}
		r := cgHeartbeat(t, addr, h)
		if r.ErrorCode != 0 {
			t.Fatalf("%s at epoch %d: error %d %v", c.id, c.epoch, r.ErrorCode, r.ErrorMessage)
		}
		c.epoch = r.MemberEpoch
		if r.Assignment != nil {
			c.owned = cgParts(r, names) // revokes at once what it lost
		}
		cgNoPartitionTwice(t, addr, g)
	}
	seed := uint32(7)
	next := func(n int) int {
		seed = seed*1664525 + 1013904223
		return int(seed>>16) % n
	}
	for step := 0; step < 150; step++ {
		var live []*cli
		for _, c := range clients {
			live = append(live, c)
		}
		sort.Slice(live, func(i, j int) bool { return live[i].id < live[j].id })
		switch k := next(10); {
		case k == 0 && len(live) < 6 || len(live) == 0:
			c := &cli{id: fmt.Sprintf("m-%03d", step)}
			clients[c.id] = c
			beat(c, true)
		case k == 1 && len(live) > 1:
			c := live[next(len(live))]
			if r := cgHeartbeat(t, addr, cgHB{group: g, member: c.id, epoch: -1}); r.ErrorCode != 0 {
				t.Fatalf("leave: %+v", r)
			}
			delete(clients, c.id)
			cgNoPartitionTwice(t, addr, g)
		default:
			beat(live[next(len(live))], next(3) != 0)
		}
	}
	// Converge: everyone heartbeats in full until the group is stable.
	for i := 0; i < 50 && cgDescribe(t, addr, g).State != "Stable"; i++ {
		for _, c := range clients {
			beat(c, true)
		}
	}
	if d := cgDescribe(t, addr, g); d.State != "Stable" {
		t.Fatalf("did not converge: %+v", d)
	}
	assigned := cgNoPartitionTwice(t, addr, g)
	total := 0
	for id, ps := range assigned {
		if fmt.Sprint(ps) != fmt.Sprint(clients[id].owned) {
			t.Fatalf("%s: coordinator says %v, client holds %v", id, ps, clients[id].owned)
		}
		if n := len(ps); n < 12/len(clients) || n > (12+len(clients)-1)/len(clients) {
			t.Fatalf("%s has %d partitions with %d members: %v", id, n, len(clients), assigned)
		}
		total += len(ps)
	}
	if total != 12 {
		t.Fatalf("%d partitions assigned, want 12: %v", total, assigned)
	}
}

// TestConsumerGroupHeartbeat848RequestErrors: the request checks of Kafka's coordinator
// (INVALID_REQUEST, INVALID_REGULAR_EXPRESSION, UNSUPPORTED_ASSIGNOR), unknown members and
// groups, v0's member id given by the coordinator, and the UNSUPPORTED_VERSION of a member
// epoch given to OffsetCommit before v9.
func TestConsumerGroupHeartbeat848RequestErrors(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "e", 2)
	const g = "errors"
	names := []string{"e"}
	for _, tc := range []struct {
		name string
		req  *kmsg.ConsumerGroupHeartbeatRequest
		code int16
	}{
		{"v1 without member id", cgHB{group: g, topics: names}.request(), 42},
		{"empty group id", cgHB{member: "m", topics: names}.request(), 42},
		{"empty instance id", cgHB{group: g, member: "m", topics: names, instance: kmsg.StringPtr("")}.request(), 42},
		{"join without rebalance timeout", cgHB{group: g, member: "m", topics: names, rebalanceMs: -1}.request(), 42},
		{"join without subscription", cgHB{group: g, member: "m"}.request(), 42},
		{"join owning partitions", cgHB{group: g, member: "m", topics: names, owned: []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}}.request(), 42},
		{"epoch -3", cgHB{group: g, member: "m", epoch: -3}.request(), 42},
		{"bad regex", cgHB{group: g, member: "m", regex: kmsg.StringPtr("e(")}.request(), 128},
		{"unknown assignor", cgHB{group: g, member: "m", topics: names, assignor: kmsg.StringPtr("sticky")}.request(), 112},
		{"unknown group", cgHB{group: "nope", member: "m", epoch: 3}.request(), 69},
		{"leave of an unknown group", cgHB{group: "nope", member: "m", epoch: -1}.request(), 69},
	} {
		r := grpMust[*kmsg.ConsumerGroupHeartbeatResponse](t, addr, tc.req)
		if r.ErrorCode != tc.code || tc.code != 0 && (r.ErrorMessage == nil || *r.ErrorMessage == "") && tc.code != 69 {
			t.Fatalf("%s: error %d %v, want %d", tc.name, r.ErrorCode, r.ErrorMessage, tc.code)
		}
	}
	// The failed joins left no group behind.
	if d := cgDescribe(t, addr, g); d.ErrorCode != 69 {
		t.Fatalf("group after failed joins: %+v", d)
	}
	// v0: the coordinator names the member.
	r := cgHeartbeat(t, addr, cgHB{group: g, topics: names, v0: true})
	if r.ErrorCode != 0 || r.MemberID == nil || len(*r.MemberID) != 22 || r.MemberEpoch != 1 || r.HeartbeatIntervalMillis != 100 {
		t.Fatalf("v0 join: %+v", r)
	}
	m := *r.MemberID
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "someone-else", epoch: 1}); r.ErrorCode != 25 {
		t.Fatalf("unknown member: %+v", r)
	}
	// A member of a consumer group commits with OffsetCommit v9 and its epoch.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group, oc.MemberID, oc.Generation = 8, g, m, 1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "e", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}}}
	if c := grpMust[*kmsg.OffsetCommitResponse](t, addr, oc).Topics[0].Partitions[0].ErrorCode; c != 35 {
		t.Fatalf("OffsetCommit v8 from a consumer-protocol member: %d", c)
	}
	oc.Version = 9
	if c := grpMust[*kmsg.OffsetCommitResponse](t, addr, oc).Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("OffsetCommit v9: %d", c)
	}
}

// TestConsumerGroup848OffsetsCheckMemberEpochs: OffsetCommit v9 and OffsetFetch v9 of a
// consumer group check the member and its epoch (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH);
// admin commits (epoch -1) go into an empty group only.
func TestConsumerGroup848OffsetsCheckMemberEpochs(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "o", 2)
	const g = "offsets848"
	commitAt := func(member string, epoch int32, off int64) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.MemberID, req.Generation = 9, g, member, epoch
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "o", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: off, LeaderEpoch: -1}}}}
		return grpMust[*kmsg.OffsetCommitResponse](t, addr, req).Topics[0].Partitions[0].ErrorCode
	}
	fetchAt := func(member *string, epoch int32) (int16, int64) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 9
		req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: g, MemberID: member, MemberEpoch: epoch, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "o", Partitions: []int32{1}}}}}
		rg := grpMust[*kmsg.OffsetFetchResponse](t, addr, req).Groups[0]
		if rg.ErrorCode != 0 {
			return rg.ErrorCode, 0
		}
		return 0, rg.Topics[0].Partitions[0].Offset
	}
	r := cgHeartbeat(t, addr, cgHB{group: g, member: "om", topics: []string{"o"}})
	if r.ErrorCode != 0 || r.MemberEpoch != 1 {
		t.Fatalf("join: %+v", r)
	}
	if c := commitAt("om", 1, 10); c != 0 {
		t.Fatalf("commit at the member's epoch: %d", c)
	}
	if c := commitAt("om", 0, 11); c != 113 {
		t.Fatalf("commit at an old epoch: %d", c)
	}
	if c := commitAt("om", 2, 11); c != 113 {
		t.Fatalf("commit at a future epoch: %d", c)
	}
	if c := commitAt("stranger", 1, 11); c != 25 {
		t.Fatalf("commit by a non-member: %d", c)
	}
	if c := commitAt("", -1, 11); c != 25 {
		t.Fatalf("admin commit into a group with members: %d", c)
	}
	if c, off := fetchAt(kmsg.StringPtr("om"), 1); c != 0 || off != 10 {
		t.Fatalf("fetch at the member's epoch: %d %d", c, off)
	}
	if c, _ := fetchAt(kmsg.StringPtr("om"), 0); c != 113 {
		t.Fatalf("fetch at a stale epoch: %d", c)
	}
	if c, _ := fetchAt(kmsg.StringPtr("stranger"), 1); c != 25 {
		t.Fatalf("fetch by a non-member: %d", c)
	}
	if c, off := fetchAt(nil, -1); c != 0 || off != 10 {
		t.Fatalf("admin fetch: %d %d", c, off)
	}
	// Empty: an admin commits.
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "om", epoch: -1}); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	if c := commitAt("", -1, 12); c != 0 {
		t.Fatalf("admin commit into the empty group: %d", c)
	}
	if c, off := fetchAt(nil, -1); c != 0 || off != 12 {
		t.Fatalf("admin fetch: %d %d", c, off)
	}
}

// TestConsumerGroup848SessionTimeoutFencesSilentMember: a member that stops heartbeating is
// removed after group.consumer.session.timeout.ms (its next heartbeat: UNKNOWN_MEMBER_ID); a
// member that does not revoke within its rebalance timeout is removed too; the others get
// their partitions.
func TestConsumerGroup848SessionTimeoutFencesSilentMember(t *testing.T) {
	tb := cgProtoBroker(t, func(c *coordinator.Config) { c.ConsumerSessionTimeout = time.Second })
	addr := tb.addr
	grpCreateTopic(t, addr, "s", 4)
	ids, names := cgTopicIDs(t, addr)
	const g = "silent"
	a := cgHeartbeat(t, addr, cgHB{group: g, member: "a", topics: []string{"s"}})
	b := cgHeartbeat(t, addr, cgHB{group: g, member: "b", topics: []string{"s"}})
	if a.ErrorCode != 0 || b.ErrorCode != 0 {
		t.Fatalf("joins: %+v %+v", a, b)
	}
	// B keeps heartbeating; A is silent and still holds everything.
	deadline := time.Now().Add(5 * time.Second)
	var bParts []string
	for len(bParts) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("b never got the silent member's partitions: %v", bParts)
		}
		r := cgHeartbeat(t, addr, cgHB{group: g, member: "b", epoch: b.MemberEpoch, owned: cgOwned(ids, bParts...)})
		if r.ErrorCode != 0 {
			t.Fatalf("b: %+v", r)
		}
		b = r
		if r.Assignment != nil {
			bParts = cgParts(r, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "a", epoch: a.MemberEpoch}); r.ErrorCode != 25 {
		t.Fatalf("expired member: %+v", r)
	}
	// Rebalance timeout: C joins with 300ms to revoke; B is told to revoke half and keeps
	// claiming them: it is fenced, C gets everything.
	c := cgHeartbeat(t, addr, cgHB{group: g, member: "c", topics: []string{"s"}})
	if c.ErrorCode != 0 {
		t.Fatalf("c: %+v", c)
	}
	r := cgHeartbeat(t, addr, cgHB{group: g, member: "b", epoch: b.MemberEpoch, owned: cgOwned(ids, bParts...), rebalanceMs: 300, topics: []string{"s"}})
	if r.ErrorCode != 0 || len(cgParts(r, names)) != 2 {
		t.Fatalf("b told to revoke: %+v", r)
	}
	var cParts []string
	deadline = time.Now().Add(5 * time.Second)
	for len(cParts) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("c never got the partitions b would not revoke: %v", cParts)
		}
		r := cgHeartbeat(t, addr, cgHB{group: g, member: "c", epoch: c.MemberEpoch, owned: cgOwned(ids, cParts...)})
		if r.ErrorCode != 0 {
			t.Fatalf("c: %+v", r)
		}
		c = r
		if r.Assignment != nil {
			cParts = cgParts(r, names)
		}
		if len(cParts) < 4 {
			// B keeps claiming all (and heartbeats, so only the rebalance timeout fences it).
			cgHeartbeat(t, addr, cgHB{group: g, member: "b", epoch: b.MemberEpoch, owned: cgOwned(ids, bParts...)})
		}
		cgNoPartitionTwice(t, addr, g)
		time.Sleep(50 * time.Millisecond)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "b", epoch: b.MemberEpoch}); r.ErrorCode != 25 {
		t.Fatalf("member fenced for not revoking: %+v", r)
	}
}

// TestConsumerGroup848StaticMemberLeavesAndReturns: a static member that leaves with epoch -2
// keeps its partitions (no one else gets them, no new group epoch); joining again with the
// same instance id and a new member id it gets them back at once. While it is in the group,
// another member id with its instance id is UNRELEASED_INSTANCE_ID, and a heartbeat naming the
// wrong member FENCED_INSTANCE_ID.
func TestConsumerGroup848StaticMemberLeavesAndReturns(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "st", 4)
	ids, names := cgTopicIDs(t, addr)
	const g = "static848"
	inst := kmsg.StringPtr("instance-1")
	s := cgHeartbeat(t, addr, cgHB{group: g, member: "s-1", instance: inst, topics: []string{"st"}})
	d := cgHeartbeat(t, addr, cgHB{group: g, member: "d", topics: []string{"st"}})
	if s.ErrorCode != 0 || d.ErrorCode != 0 {
		t.Fatalf("joins: %+v %+v", s, d)
	}
	// Reconcile both (s revokes half to d).
	sParts, dParts := cgParts(s, names), cgParts(d, names)
	for i := 0; i < 10 && len(sParts)+len(dParts) < 4 || len(sParts) != 2; i++ {
		s = cgHeartbeat(t, addr, cgHB{group: g, member: "s-1", instance: inst, epoch: s.MemberEpoch, owned: cgOwned(ids, sParts...)})
		if s.Assignment != nil {
			sParts = cgParts(s, names)
		}
		d = cgHeartbeat(t, addr, cgHB{group: g, member: "d", epoch: d.MemberEpoch, owned: cgOwned(ids, dParts...)})
		if d.Assignment != nil {
			dParts = cgParts(d, names)
		}
	}
	before := cgDescribe(t, addr, g)
	if before.State != "Stable" || len(sParts) != 2 || len(dParts) != 2 {
		t.Fatalf("not reconciled: %+v %v %v", before, sParts, dParts)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "s-2", instance: inst, topics: []string{"st"}}); r.ErrorCode != 111 {
		t.Fatalf("another member id with the instance id of an active member: %+v", r)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "s-2", instance: inst, epoch: s.MemberEpoch}); r.ErrorCode != 82 {
		t.Fatalf("heartbeat naming the wrong member: %+v", r)
	}
	// franz-go leaves with -2 and no instance id: accepted for a static member.
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "s-1", epoch: -2}); r.ErrorCode != 0 || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v", r)
	}
	for i := 0; i < 3; i++ {
		d = cgHeartbeat(t, addr, cgHB{group: g, member: "d", epoch: d.MemberEpoch, owned: cgOwned(ids, dParts...)})
		if d.ErrorCode != 0 || d.Assignment != nil && fmt.Sprint(cgParts(d, names)) != fmt.Sprint(dParts) {
			t.Fatalf("d while the static member is away: %+v", d)
		}
	}
	away := cgDescribe(t, addr, g)
	if away.Epoch != before.Epoch || len(away.Members) != 2 {
		t.Fatalf("while away: %+v (before %+v)", away, before)
	}
	for _, m := range away.Members {
		if m.MemberID == "s-1" && (m.MemberEpoch != -2 || len(m.Assignment.TopicPartitions) != 1 || len(m.Assignment.TopicPartitions[0].Partitions) != 2) {
			t.Fatalf("static member away: %+v", m)
		}
	}
	r := cgHeartbeat(t, addr, cgHB{group: g, member: "s-2", instance: inst, topics: []string{"st"}})
	if r.ErrorCode != 0 || fmt.Sprint(cgParts(r, names)) != fmt.Sprint(sParts) || r.MemberEpoch != before.Epoch {
		t.Fatalf("static member back: %+v (%v), want %v at epoch %d", r, cgParts(r, names), sParts, before.Epoch)
	}
	after := cgDescribe(t, addr, g)
	if after.Epoch != before.Epoch || after.State != "Stable" || len(after.Members) != 2 {
		t.Fatalf("after the static member came back: %+v", after)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "s-1", instance: inst, epoch: s.MemberEpoch}); r.ErrorCode != 82 {
		t.Fatalf("the old member id: %+v", r)
	}
}

// TestConsumerGroup848RegexAndTopicChanges: a member subscribed by regex gets the partitions of
// the matching topics (not others, not internal ones); a topic created later that matches,
// and partitions added to a subscribed topic, are assigned on a later heartbeat (a new group
// epoch).
func TestConsumerGroup848RegexAndTopicChanges(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	adm := grpCreateTopic(t, addr, "re-a", 2)
	grpCreateTopic(t, addr, "re-b", 1)
	grpCreateTopic(t, addr, "other", 1)
	grpCreateTopic(t, addr, "xre-a", 1) // matches only a partial match
	const g = "regex"
	r := cgHeartbeat(t, addr, cgHB{group: g, member: "x", regex: kmsg.StringPtr("re-.*|__.*")})
	_, names := cgTopicIDs(t, addr)
	if r.ErrorCode != 0 || fmt.Sprint(cgParts(r, names)) != "[re-a-0 re-a-1 re-b-0]" {
		t.Fatalf("regex join: %+v %v", r, cgParts(r, names))
	}
	epoch := r.MemberEpoch
	ctx := admCtx(t)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "re-c"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreatePartitions(ctx, 1, "re-b"); err != nil {
		t.Fatal(err)
	}
	ids, names := cgTopicIDs(t, addr)
	r = cgHeartbeat(t, addr, cgHB{group: g, member: "x", epoch: epoch, owned: cgOwned(ids, "re-a-0", "re-a-1", "re-b-0")})
	if r.ErrorCode != 0 || r.MemberEpoch <= epoch || fmt.Sprint(cgParts(r, names)) != "[re-a-0 re-a-1 re-b-0 re-b-1 re-c-0 re-c-1]" {
		t.Fatalf("after topic changes: %+v %v", r, cgParts(r, names))
	}
	d := cgDescribe(t, addr, g)
	if len(d.Members) != 1 || d.Members[0].SubscribedTopicRegex == nil || *d.Members[0].SubscribedTopicRegex != "re-.*|__.*" || d.Epoch != r.MemberEpoch {
		t.Fatalf("describe: %+v", d)
	}
	// Switching to names.
	r = cgHeartbeat(t, addr, cgHB{group: g, member: "x", epoch: r.MemberEpoch, topics: []string{"other"}, regex: kmsg.StringPtr(""),
		owned: cgOwned(ids, "re-a-0", "re-a-1", "re-b-0", "re-b-1", "re-c-0", "re-c-1"), rebalanceMs: 30000})
	if r.ErrorCode != 0 || len(cgParts(r, names)) != 0 {
		t.Fatalf("resubscribed, revoking: %+v %v", r, cgParts(r, names))
	}
	r = cgHeartbeat(t, addr, cgHB{group: g, member: "x", epoch: r.MemberEpoch, owned: cgOwned(ids)})
	if r.ErrorCode != 0 || fmt.Sprint(cgParts(r, names)) != "[other-0]" {
		t.Fatalf("resubscribed: %+v %v", r, cgParts(r, names))
	}
}

// TestConsumerGroup848GroupTypes: with group.consumer.migration.policy disabled, a consumer
// group with members refuses classic JoinGroup (INCONSISTENT_GROUP_PROTOCOL, KAFKA-20640) and a
// classic group with members refuses ConsumerGroupHeartbeat (GROUP_ID_NOT_FOUND); with the
// default (bidirectional) the classic JoinGroup is taken (MEMBER_ID_REQUIRED, the first step
// of a join) and the heartbeat refused only because the classic group's assignment is not the
// consumer protocol's (groups_migration_test.go has the migrations). Either way an empty group
// of either type becomes the other. ListGroups gives each group's type and state;
// DescribeGroups describes only classic groups, ConsumerGroupDescribe only consumer groups.
func TestConsumerGroup848GroupTypes(t *testing.T) {
	for _, policy := range []coordinator.MigrationPolicy{coordinator.MigrationDisabled, coordinator.MigrationBidirectional} {
		t.Run(policy.String(), func(t *testing.T) { testConsumerGroup848GroupTypes(t, policy) })
	}
}

func testConsumerGroup848GroupTypes(t *testing.T, policy coordinator.MigrationPolicy) {
	withPolicy := func(c *coordinator.Config) { c.MigrationPolicy = policy }
	tb := cgProtoBroker(t, withPolicy)
	addr := tb.addr
	grpCreateTopic(t, addr, "t", 1)
	const cg, classic = "next-gen", "old-school"
	if r := cgHeartbeat(t, addr, cgHB{group: cg, member: "n", topics: []string{"t"}}); r.ErrorCode != 0 {
		t.Fatalf("join: %+v", r)
	}
	m, _ := stableGroup(t, addr, joinSpec{group: classic})
	wantJoin, wantWhy := int16(23), "online upgrade is disabled"
	if policy != coordinator.MigrationDisabled {
		wantJoin, wantWhy = 79, "the embedded consumer protocol is malformed"
	}
	if r := grpMust[*kmsg.JoinGroupResponse](t, addr, joinSpec{group: cg}.request()); r.ErrorCode != wantJoin {
		t.Fatalf("classic join into a consumer group: %+v", r)
	}
	if r := cgHeartbeat(t, addr, cgHB{group: classic, member: "n", topics: []string{"t"}}); r.ErrorCode != 69 ||
		r.ErrorMessage == nil || *r.ErrorMessage != "Cannot upgrade classic group "+classic+" to consumer group because "+wantWhy+"." {
		t.Fatalf("consumer heartbeat into a classic group: %+v %v", r, r.ErrorMessage)
	}
	list := func() string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = 5
		var out []string
		for _, g := range grpMust[*kmsg.ListGroupsResponse](t, addr, req).Groups {
			out = append(out, g.Group+"/"+g.ProtocolType+"/"+g.GroupState+"/"+g.GroupType)
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	if got := list(); got != "[next-gen/consumer/Stable/consumer old-school/consumer/Stable/classic]" {
		t.Fatalf("list: %s", got)
	}
	gauge := func(name string) float64 { return tb.b.Metrics().GetOrCreateGauge(name, nil).Get() }
	if n := gauge(`spate_consumer_groups{state="Stable"}`); n != 1 {
		t.Fatalf("consumer groups Stable: %v", n)
	}
	if n := gauge("spate_group_members"); n != 2 {
		t.Fatalf("members: %v", n)
	}
	lreq := kmsg.NewPtrListGroupsRequest()
	lreq.Version, lreq.TypesFilter, lreq.StatesFilter = 5, []string{"Consumer"}, []string{"stable"}
	if gs := grpMust[*kmsg.ListGroupsResponse](t, addr, lreq).Groups; len(gs) != 1 || gs[0].Group != cg {
		t.Fatalf("list consumer groups: %+v", gs)
	}
	if d := describe(t, addr, 6, cg); d.State != "Dead" || d.ErrorCode != 69 || d.ErrorMessage == nil || !strings.Contains(*d.ErrorMessage, "not a classic group") {
		t.Fatalf("DescribeGroups v6 of a consumer group: %+v", d)
	}
	if d := describe(t, addr, 5, cg); d.State != "Dead" || d.ErrorCode != 0 {
		t.Fatalf("DescribeGroups v5 of a consumer group: %+v", d)
	}
	if d := cgDescribe(t, addr, classic); d.ErrorCode != 69 || d.ErrorMessage == nil || !strings.Contains(*d.ErrorMessage, "not a consumer group") {
		t.Fatalf("ConsumerGroupDescribe of a classic group: %+v", d)
	}
	// Deleting a group with members: NON_EMPTY_GROUP.
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{cg}
	if r := grpMust[*kmsg.DeleteGroupsResponse](t, addr, del); r.Groups[0].ErrorCode != 68 {
		t.Fatalf("delete a consumer group with members: %+v", r)
	}
	// Both empty: each becomes the other type.
	if r := cgHeartbeat(t, addr, cgHB{group: cg, member: "n", epoch: -1}); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group, leave.MemberID = 2, classic, m
	if r := grpMust[*kmsg.LeaveGroupResponse](t, addr, leave); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	if got := list(); got != "[next-gen/consumer/Empty/consumer old-school/consumer/Empty/classic]" {
		t.Fatalf("list: %s", got)
	}
	if n := gauge(`spate_consumer_groups{state="Empty"}`) + gauge(`spate_consumer_groups{state="Stable"}`); n != 1 {
		t.Fatalf("consumer groups: %v", n)
	}
	stableGroup(t, addr, joinSpec{group: cg})
	if r := cgHeartbeat(t, addr, cgHB{group: classic, member: "n", topics: []string{"t"}}); r.ErrorCode != 0 || r.MemberEpoch != 1 {
		t.Fatalf("consumer heartbeat into an empty classic group: %+v", r)
	}
	if got := list(); got != "[next-gen/consumer/Stable/classic old-school/consumer/Stable/consumer]" {
		t.Fatalf("list after the conversions: %s", got)
	}
	// The types survive a restart.
	tb.stop()
	tb2 := cgBroker(t, tb.dir, withPolicy)
	addr = tb2.addr
	if got := list(); got != "[next-gen/consumer/Stable/classic old-school/consumer/Stable/consumer]" {
		t.Fatalf("list after restart: %s", got)
	}
}

// TestConsumerGroup848StateSurvivesRestart: members, epochs, assignments and targets are
// loaded back from __consumer_offsets; the members go on heartbeating at their epochs with no
// new group epoch; a member that never comes back is fenced after the session timeout.
func TestConsumerGroup848StateSurvivesRestart(t *testing.T) {
	tb := cgProtoBroker(t, func(c *coordinator.Config) { c.ConsumerSessionTimeout = 2 * time.Second })
	addr := tb.addr
	grpCreateTopic(t, addr, "p", 6)
	ids, names := cgTopicIDs(t, addr)
	const g = "durable"
	a := cgHeartbeat(t, addr, cgHB{group: g, member: "a", topics: []string{"p"}, assignor: kmsg.StringPtr("range")})
	b := cgHeartbeat(t, addr, cgHB{group: g, member: "b", instance: kmsg.StringPtr("bee"), topics: []string{"p"}})
	aParts, bParts := cgParts(a, names), cgParts(b, names)
	for i := 0; i < 10 && cgDescribe(t, addr, g).State != "Stable"; i++ {
		a = cgHeartbeat(t, addr, cgHB{group: g, member: "a", epoch: a.MemberEpoch, owned: cgOwned(ids, aParts...)})
		if a.Assignment != nil {
			aParts = cgParts(a, names)
		}
		b = cgHeartbeat(t, addr, cgHB{group: g, member: "b", instance: kmsg.StringPtr("bee"), epoch: b.MemberEpoch, owned: cgOwned(ids, bParts...)})
		if b.Assignment != nil {
			bParts = cgParts(b, names)
		}
	}
	before := cgDescribe(t, addr, g)
	if before.State != "Stable" || before.AssignorName != "range" {
		t.Fatalf("before: %+v", before)
	}
	tb.stop()
	tb = cgBroker(t, tb.dir, func(c *coordinator.Config) { c.ConsumerSessionTimeout = 2 * time.Second })
	addr = tb.addr
	after := cgDescribe(t, addr, g)
	if ja, jb := mustJSON(t, after), mustJSON(t, before); ja != jb {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	r := cgHeartbeat(t, addr, cgHB{group: g, member: "a", epoch: a.MemberEpoch, owned: cgOwned(ids, aParts...)})
	if r.ErrorCode != 0 || r.MemberEpoch != a.MemberEpoch || r.Assignment != nil {
		t.Fatalf("a after restart: %+v", r)
	}
	// b never returns: fenced after its session; a gets everything.
	deadline := time.Now().Add(10 * time.Second)
	for len(aParts) != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("a never got b's partitions: %v", aParts)
		}
		time.Sleep(100 * time.Millisecond)
		r := cgHeartbeat(t, addr, cgHB{group: g, member: "a", epoch: a.MemberEpoch, owned: cgOwned(ids, aParts...)})
		if r.ErrorCode != 0 {
			t.Fatalf("a: %+v", r)
		}
		a = r
		if r.Assignment != nil {
			aParts = cgParts(r, names)
		}
	}
}

// TestConsumerGroup848StaticMemberRestartKeepsPartitions: a kgo static member of a KIP-848
// group that restarts within the session timeout gets the same partitions back; the group
// epoch does not move and the others see no revocation.
func TestConsumerGroup848StaticMemberRestartKeepsPartitions(t *testing.T) {
	tb := cgBroker(t, "", func(c *coordinator.Config) { c.ConsumerSessionTimeout = 20 * time.Second })
	const topic, group, partitions = "static848", "statics848", 6
	adm := grpCreateTopic(t, tb.addr, topic, partitions)
	s := grpNewSink()
	start := func(name string) *grpMember {
		return cgStartMember(t, tb.addr, group, topic, name, s, kgo.CooperativeStickyBalancer(), kgo.InstanceID(name))
	}
	ms := []*grpMember{start("a"), start("b"), start("c")}
	dg := cgWaitStable(t, adm, group, topic, partitions, ms...)
	owned := map[string][]int32{}
	revokes := map[string]int{} // kgo calls OnPartitionsRevoked with nothing while it joins
	for _, m := range ms {
		owned[m.name] = m.owned()
		m.mu.Lock()
		revokes[m.name] = m.revokes
		m.mu.Unlock()
	}
	for _, restart := range []int{1, 0} {
		old := ms[restart]
		old.close()
		ms[restart] = start(old.name)
		now := cgWaitStable(t, adm, group, topic, partitions, ms...)
		if now.Epoch != dg.Epoch {
			t.Fatalf("restarting %s moved the group epoch from %d to %d", old.name, dg.Epoch, now.Epoch)
		}
		for _, m := range ms {
			if fmt.Sprint(m.owned()) != fmt.Sprint(owned[m.name]) {
				t.Fatalf("after restarting %s, %s owns %v, owned %v", old.name, m.name, m.owned(), owned[m.name])
			}
			if m.name == old.name {
				continue
			}
			m.mu.Lock()
			n := m.revokes - revokes[m.name]
			m.mu.Unlock()
			if n != 0 {
				t.Fatalf("after restarting %s, %s saw %d revocations", old.name, m.name, n)
			}
		}
		ms[restart].mu.Lock()
		revokes[old.name] = ms[restart].revokes
		ms[restart].mu.Unlock()
	}
}

// TestConsumerGroup848RegexConsumer: a kgo consumer subscribed by regex (resolved by the
// coordinator) consumes the matching topics, including one created while it runs.
func TestConsumerGroup848RegexConsumer(t *testing.T) {
	tb := cgBroker(t, "", nil)
	adm := grpCreateTopic(t, tb.addr, "rx-one", 2)
	grpCreateTopic(t, tb.addr, "nomatch", 2)
	grpProduce(t, tb.addr, "rx-one", 2, 0, 20)
	grpProduce(t, tb.addr, "nomatch", 2, 0, 20)
	s := grpNewSink()
	cl := newClient(t, tb.addr, kgo.ConsumerGroup("regexers"), kgo.ConsumeRegex(), kgo.ConsumeTopics("rx-.*"), kgo.ServerSideBalancer(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	topics := map[string]int{}
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				s.mu.Lock()
				topics[r.Topic]++
				s.mu.Unlock()
				s.add("rx", r)
			})
		}
	}()
	defer func() { cancel(); <-done }()
	grpWaitDistinct(t, s, 20)
	if _, err := adm.CreateTopic(admCtx(t), 1, 1, nil, "rx-two"); err != nil {
		t.Fatal(err)
	}
	grpProduce(t, tb.addr, "rx-two", 1, 0, 10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		n := topics["rx-two"]
		s.mu.Unlock()
		if n == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of the new topic: %d", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if topics["nomatch"] != 0 || topics["rx-one"] != 20 {
		t.Fatalf("consumed %v", topics)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzConsumerGroupRequests sends mutated ConsumerGroupHeartbeat, ConsumerGroupDescribe,
// OffsetCommit/OffsetFetch v9 and classic JoinGroup/SyncGroup/Heartbeat/LeaveGroup requests
// (seeded with valid ones, all to one group, so that the group migrates between the
// protocols) to a live broker with a topic: the coordinator must answer or the connection
// close, never panic.
func FuzzConsumerGroupRequests(f *testing.F) {
	add := func(r kmsg.Request, v int16) {
		r.SetVersion(v)
		f.Add(r.Key(), v, r.IsFlexible(), r.AppendTo(nil))
	}
	add(cgHB{group: "fz", member: "m", topics: []string{"t"}, assignor: kmsg.StringPtr("range")}.request(), 1)
	add(cgHB{group: "fz", topics: []string{"t"}}.request(), 0)
	add(cgHB{group: "fz", member: "m", regex: kmsg.StringPtr("t.*"), instance: kmsg.StringPtr("i")}.request(), 1)
	add(cgHB{group: "fz", member: "m", epoch: 1, owned: []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}}.request(), 1)
	add(cgHB{group: "fz", member: "m", epoch: -2, instance: kmsg.StringPtr("i")}.request(), 1)
	add(cgHB{group: "fz", member: "m", epoch: -1}.request(), 1)
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Groups = []string{"fz", ""}
	add(d, 1)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.MemberID, oc.Generation = "fz", "m", 1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	add(oc, 9)
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "fz", MemberID: kmsg.StringPtr("m"), MemberEpoch: 1}}
	add(of, 9)
	// Classic requests into the same group reach the online migration (migration.go): a
	// classic member of a consumer group, or a consumer-protocol member upgrading a classic
	// group.
	add(migJoinReq("fz", "", nil, "range", migSubscription([]string{"t"}, 0)), 5)
	add(migJoinReq("fz", "c", kmsg.StringPtr("ci"), "cooperative-sticky", migSubscription([]string{"t"})), 9)
	sg := kmsg.NewPtrSyncGroupRequest()
	sg.Group, sg.MemberID, sg.Generation = "fz", "c", 1
	add(sg, 5)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "fz", "c", 1
	add(hb, 4)
	lg := kmsg.NewPtrLeaveGroupRequest()
	lg.Group, lg.Members = "fz", []kmsg.LeaveGroupRequestMember{{MemberID: "c"}, {InstanceID: kmsg.StringPtr("ci")}}
	add(lg, 5)
	tb := startBroker(f, "", func(c *Config) { c.Groups.ConsumerSessionTimeout = 200 * time.Millisecond })
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 3, 1, nil, "t"); err != nil {
		f.Fatal(err)
	}
	cl.Close()
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKeys = 4, []string{"fz"}
	if _, err := grpReq[*kmsg.FindCoordinatorResponse](tb.addr, fc); err != nil {
		f.Fatal(err)
	}
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
