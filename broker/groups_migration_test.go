package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
)

// Tests of KIP-848's online migration between the classic and the consumer group protocols
// (group.consumer.migration.policy): rolling upgrades and downgrades of franz-go consumers,
// and the protocol rules driven by hand.

// migLedger watches the members of one group: which member's client holds each partition
// (from the rebalance callbacks, which run before the client tells the coordinator it gave a
// partition up), the committed offset each member started a partition from, and every record
// delivered.
type migLedger struct {
	t            *testing.T
	adm          *kadm.Client
	group, topic string
	s            *grpSink

	mu         sync.Mutex
	owner      map[int32]string                   // partition → the client holding it
	gen        map[string]int                     // member → assignments so far
	starts     map[string]map[int]map[int32]int64 // member → assignment → partition → committed offset then
	deliveries []migDelivery                      // every record handed to the application
	violations []string                           // a partition held by two clients at once
}

type migDelivery struct {
	who    string
	gen    int // the member's assignment count before the poll that returned it
	id     grpRecordID
	strict bool // no assignment happened while the record was polled and handled
}

func newMigLedger(t *testing.T, adm *kadm.Client, group, topic string) *migLedger {
	return &migLedger{
		t: t, adm: adm, group: group, topic: topic, s: grpNewSink(),
		owner: map[int32]string{}, gen: map[string]int{}, starts: map[string]map[int]map[int32]int64{},
	}
}

// committed returns the group's committed offsets of the topic (0 where none).
func (l *migLedger) committed() map[int32]int64 {
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := l.adm.FetchOffsets(ctx, l.group)
		cancel()
		if err == nil {
			out := map[int32]int64{}
			resp.Each(func(o kadm.OffsetResponse) {
				if o.Topic == l.topic && o.Err == nil {
					out[o.Partition] = o.At
				}
			})
			return out
		}
		if i == 20 {
			l.t.Errorf("fetch committed offsets: %v", err)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *migLedger) assigned(m *grpMember, ps []int32) {
	committed := l.committed() // the previous owner committed before it let go
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen[m.name]++
	if l.starts[m.name] == nil {
		l.starts[m.name] = map[int]map[int32]int64{}
	}
	st := map[int32]int64{}
	for _, p := range ps {
		if o, ok := l.owner[p]; ok && o != m.name {
			l.violations = append(l.violations, fmt.Sprintf("partition %d given to %s while %s holds it", p, m.name, o))
		}
		l.owner[p] = m.name
		st[p] = committed[p]
	}
	l.starts[m.name][l.gen[m.name]] = st
	m.mu.Lock()
	m.assigns++
	for _, p := range ps {
		m.assigned[p] = true
	}
	m.mu.Unlock()
}

func (l *migLedger) released(m *grpMember, ps []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range ps {
		if l.owner[p] == m.name {
			delete(l.owner, p)
		}
	}
	m.mu.Lock()
	m.revokes++
	for _, p := range ps {
		delete(m.assigned, p)
	}
	m.mu.Unlock()
}

// start starts a franz-go group member consuming the ledger's topic: classic by default, of
// the consumer protocol with kgo.ServerSideBalancer among opts.
func (l *migLedger) start(addr, name string, opts ...kgo.Opt) *grpMember {
	t := l.t
	t.Helper()
	m := &grpMember{name: name, done: make(chan struct{}), assigned: map[int32]bool{}}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ClientID(name), kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.ConsumerGroup(l.group), kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(100 * time.Millisecond), kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second), kgo.AutoCommitInterval(100 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { l.assigned(m, a[l.topic]) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("%s: commit on revoke: %v", name, err)
			}
			l.released(m, r[l.topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { l.released(m, lost[l.topic]) }),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			l.mu.Lock()
			gen := l.gen[name]
			l.mu.Unlock()
			fs := cl.PollFetches(ctx)
			var batch []migDelivery
			fs.EachRecord(func(r *kgo.Record) {
				l.s.add(name, r)
				batch = append(batch, migDelivery{who: name, gen: gen, id: grpRecordID{r.Partition, r.Offset}})
			})
			l.mu.Lock()
			strict := l.gen[name] == gen
			for i := range batch {
				batch[i].strict = strict
			}
			l.deliveries = append(l.deliveries, batch...)
			l.mu.Unlock()
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

// check asserts what a migration must keep: no partition in two clients at once, every record
// produced delivered with its value, and every delivery at or after the offset its member's
// assignment started from (the group's committed offset then): records are redelivered only
// when they were not committed yet.
func (l *migLedger) check(want map[int32][]string, total int) {
	t := l.t
	t.Helper()
	grpWaitDistinct(t, l.s, total)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) > 0 {
		t.Fatalf("ownership: %s", strings.Join(l.violations, "; "))
	}
	dups, checked := 0, 0
	for _, d := range l.deliveries {
		st := l.starts[d.who][d.gen]
		if d.gen == 0 || st == nil {
			continue // handled before its first assignment callback ran (not strict)
		}
		if from, ok := st[d.id.partition]; ok && d.strict {
			checked++
			if d.id.offset < from {
				t.Fatalf("%s got %v although the group had committed %d when it was assigned the partition", d.who, d.id, from)
			}
		}
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if len(l.s.seen) != total {
		t.Fatalf("%d distinct records, want %d", len(l.s.seen), total)
	}
	for id, n := range l.s.seen {
		dups += n - 1
		if l.s.value[id] != want[id.partition][id.offset] {
			t.Fatalf("record %v is %q, want %q", id, l.s.value[id], want[id.partition][id.offset])
		}
	}
	t.Logf("%d records, %d redelivered (none committed before), %d deliveries checked against the committed offsets", total, dups, checked)
}

// migProduce produces n more records and adds them to want.
func migProduce(t *testing.T, addr, topic string, partitions int32, want map[int32][]string, total *int, n int) {
	t.Helper()
	for p, vs := range grpProduce(t, addr, topic, partitions, *total, n) {
		want[p] = append(want[p], vs...)
	}
	*total += n
}

// migListed returns the group's type and state as ListGroups gives them.
func migListed(t *testing.T, addr, group string) string {
	t.Helper()
	req := kmsg.NewPtrListGroupsRequest()
	req.Version = 5
	for _, g := range grpMust[*kmsg.ListGroupsResponse](t, addr, req).Groups {
		if g.Group == group {
			return g.GroupType + "/" + g.GroupState
		}
	}
	return "none"
}

var migBalancers = []struct {
	name     string
	balancer func() kgo.GroupBalancer
}{
	{"cooperative-sticky", func() kgo.GroupBalancer { return kgo.CooperativeStickyBalancer() }},
	{"eager-range", func() kgo.GroupBalancer { return kgo.RangeBalancer() }},
}

// TestConsumerGroupRollingUpgradeKIP848: three classic franz-go consumers over six partitions
// are replaced one by one by consumers of the consumer protocol while records flow. The first
// of those upgrades the classic group online; the classic members go on in the consumer group
// until they are replaced. No partition is ever held by two clients, every record is
// processed, only uncommitted ones twice, and the group ends a consumer group.
func TestConsumerGroupRollingUpgradeKIP848(t *testing.T) {
	for _, tc := range migBalancers {
		t.Run(tc.name, func(t *testing.T) {
			tb := cgBroker(t, "", nil)
			const topic, group, partitions = "rolling", "upgrading", 6
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			l := newMigLedger(t, adm, group, topic)
			want, total := map[int32][]string{}, 0
			ms := make([]*grpMember, 3)
			for i := range ms {
				ms[i] = l.start(tb.addr, fmt.Sprintf("classic-%d", i), kgo.Balancers(tc.balancer()))
			}
			grpWaitStable(t, adm, group, topic, partitions, ms...)
			migProduce(t, tb.addr, topic, partitions, want, &total, 120)
			for i := range ms {
				grpWaitDistinct(t, l.s, total-30)
				ms[i].close()
				ms[i] = l.start(tb.addr, fmt.Sprintf("next-%d", i), kgo.ServerSideBalancer(), kgo.Balancers(tc.balancer()))
				migProduce(t, tb.addr, topic, partitions, want, &total, 120)
				dg := cgWaitStable(t, adm, group, topic, partitions, ms...)
				classic := 0
				for _, m := range dg.Members {
					if strings.HasPrefix(m.ClientID, "classic-") {
						classic++
					}
				}
				if classic != 2-i {
					t.Fatalf("after replacing %d members: %d classic members in %+v", i+1, classic, dg)
				}
			}
			migProduce(t, tb.addr, topic, partitions, want, &total, 120)
			l.check(want, total)
			if got := migListed(t, tb.addr, group); got != "consumer/Stable" {
				t.Fatalf("listed as %s", got)
			}
			migCommittedAll(t, l, ms, total, partitions)
		})
	}
}

// migCommittedAll checks that the group committed every record (the members commit every
// 100ms), then closes the members and checks that it stays so.
func migCommittedAll(t *testing.T, l *migLedger, ms []*grpMember, total int, partitions int32) {
	t.Helper()
	all := func() (bool, map[int32]int64) {
		committed := l.committed()
		for p := int32(0); p < partitions; p++ {
			if end := int64((total - int(p) + int(partitions) - 1) / int(partitions)); committed[p] != end {
				return false, committed
			}
		}
		return true, committed
	}
	deadline := time.Now().Add(20 * time.Second)
	for ok, committed := all(); !ok; ok, committed = all() {
		if time.Now().After(deadline) {
			t.Fatalf("committed %v, want every partition at its end (%d records)", committed, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, m := range ms {
		m.close()
	}
	if ok, committed := all(); !ok {
		t.Fatalf("after the members closed: committed %v (%d records)", committed, total)
	}
}

// TestConsumerGroupRollingDowngradeKIP848: the reverse: three consumers of the consumer
// protocol replaced one by one by classic ones. While a consumer-protocol member is left the
// classic ones are classic members of the consumer group; when the last leaves, the group
// becomes a classic group and rebalances. Same guarantees; the group ends classic.
func TestConsumerGroupRollingDowngradeKIP848(t *testing.T) {
	for _, tc := range migBalancers {
		t.Run(tc.name, func(t *testing.T) {
			tb := cgBroker(t, "", nil)
			const topic, group, partitions = "rolling", "downgrading", 6
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			l := newMigLedger(t, adm, group, topic)
			want, total := map[int32][]string{}, 0
			ms := make([]*grpMember, 3)
			for i := range ms {
				ms[i] = l.start(tb.addr, fmt.Sprintf("next-%d", i), kgo.ServerSideBalancer(), kgo.Balancers(tc.balancer()))
			}
			cgWaitStable(t, adm, group, topic, partitions, ms...)
			migProduce(t, tb.addr, topic, partitions, want, &total, 120)
			for i := range ms {
				grpWaitDistinct(t, l.s, total-30)
				ms[i].close()
				ms[i] = l.start(tb.addr, fmt.Sprintf("classic-%d", i), kgo.Balancers(tc.balancer()))
				migProduce(t, tb.addr, topic, partitions, want, &total, 120)
				if i < 2 {
					dg := cgWaitStable(t, adm, group, topic, partitions, ms...)
					classic := 0
					for _, m := range dg.Members {
						if strings.HasPrefix(m.ClientID, "classic-") {
							classic++
						}
					}
					if classic != i+1 {
						t.Fatalf("after replacing %d members: %d classic members in %+v", i+1, classic, dg)
					}
					if got := migListed(t, tb.addr, group); got != "consumer/Stable" {
						t.Fatalf("after replacing %d members: listed as %s", i+1, got)
					}
				} else {
					dg := grpWaitStable(t, adm, group, topic, partitions, ms...)
					if dg.ProtocolType != "consumer" || dg.Protocol != tc.balancer().ProtocolName() {
						t.Fatalf("classic group %s/%s", dg.ProtocolType, dg.Protocol)
					}
				}
			}
			migProduce(t, tb.addr, topic, partitions, want, &total, 120)
			l.check(want, total)
			if got := migListed(t, tb.addr, group); got != "classic/Stable" {
				t.Fatalf("listed as %s", got)
			}
			migCommittedAll(t, l, ms, total, partitions)
		})
	}
}

// migSubscription is a classic consumer's subscription (ConsumerProtocolSubscription v1) to
// topics, owning partitions of the first.
func migSubscription(topics []string, owned ...int32) []byte {
	md := kmsg.ConsumerMemberMetadata{Version: 1, Topics: topics}
	if len(owned) > 0 {
		md.OwnedPartitions = []kmsg.ConsumerMemberMetadataOwnedPartition{{Topic: topics[0], Partitions: owned}}
	}
	return md.AppendTo(nil)
}

// cgJoinConverged joins member to group with the consumer protocol, subscribed to topic, and
// heartbeats until its assignment settles; it returns the member's epoch and partitions.
func cgJoinConverged(t *testing.T, addr, group, member, topic string) (int32, []string) {
	t.Helper()
	r := cgHeartbeat(t, addr, cgHB{group: group, member: member, topics: []string{topic}})
	_, names := cgTopicIDs(t, addr)
	return cgConverge(t, addr, group, member, r.MemberEpoch, cgParts(r, names))
}

// migJoinReq is a JoinGroup v9 of a classic consumer with one protocol.
func migJoinReq(group, member string, instance *string, protocol string, md []byte) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 9
	req.Group, req.MemberID, req.InstanceID = group, member, instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 30000
	req.ProtocolType = "consumer"
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: protocol, Metadata: md}}
	return req
}

// migJoinAsync sends a JoinGroup that a classic group may park (as joinAsync).
func migJoinAsync(addr string, req *kmsg.JoinGroupRequest) chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() {
		resp, err := grpReq[*kmsg.JoinGroupResponse](addr, req)
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

func migJoin(t *testing.T, addr string, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	t.Helper()
	return grpMust[*kmsg.JoinGroupResponse](t, addr, req)
}

// migJoinNew joins a consumer group as a new classic member (KIP-394's two steps; a consumer
// group answers the second at once).
func migJoinNew(t *testing.T, addr, group string, md []byte) *kmsg.JoinGroupResponse {
	t.Helper()
	r := migJoin(t, addr, migJoinReq(group, "", nil, "range", md))
	if r.ErrorCode != 79 {
		t.Fatalf("first join: %+v", r)
	}
	if r = migJoin(t, addr, migJoinReq(group, r.MemberID, nil, "range", md)); r.ErrorCode != 0 {
		t.Fatalf("join: %+v", r)
	}
	return r
}

func migSync(t *testing.T, addr, group, member string, gen int32) (*kmsg.SyncGroupResponse, kmsg.ConsumerMemberAssignment) {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = group, member, gen
	req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	r := grpMust[*kmsg.SyncGroupResponse](t, addr, req)
	var a kmsg.ConsumerMemberAssignment
	if r.ErrorCode == 0 {
		if err := a.ReadFrom(r.MemberAssignment); err != nil {
			t.Fatalf("SyncGroup assignment %x is not a ConsumerProtocolAssignment: %v", r.MemberAssignment, err)
		}
	}
	return r, a
}

// migParts renders a consumer protocol assignment as sorted "topic-partition" names.
func migParts(a kmsg.ConsumerMemberAssignment) []string {
	out := []string{}
	for _, t := range a.Topics {
		for _, p := range t.Partitions {
			out = append(out, fmt.Sprintf("%s-%d", t.Topic, p))
		}
	}
	sort.Strings(out)
	return out
}

// migDescribed returns a member of a described consumer group: its type, epoch, assignment
// and target as sorted "topic-partition" names.
func migDescribed(t *testing.T, addr, group, member string) (int8, int32, []string, []string) {
	t.Helper()
	d := cgDescribe(t, addr, group)
	names := func(a kmsg.Assignment) []string {
		out := []string{}
		for _, tp := range a.TopicPartitions {
			for _, p := range tp.Partitions {
				out = append(out, fmt.Sprintf("%s-%d", tp.Topic, p))
			}
		}
		sort.Strings(out)
		return out
	}
	for _, m := range d.Members {
		if m.MemberID == member {
			return m.MemberType, m.MemberEpoch, names(m.Assignment), names(m.TargetAssignment)
		}
	}
	t.Fatalf("%s is not in %s: %+v", member, group, d)
	return 0, 0, nil, nil
}

// migClassicStable forms a classic group of one member that holds every partition of topic
// (a consumer protocol assignment) and returns its id and generation.
func migClassicStable(t *testing.T, addr, group, topic string, partitions int32) (string, int32) {
	t.Helper()
	md := migSubscription([]string{topic})
	first := migJoin(t, addr, migJoinReq(group, "", nil, "range", md))
	r := waitJoin(t, migJoinAsync(addr, migJoinReq(group, first.MemberID, nil, "range", md)))
	if r.ErrorCode != 0 || r.LeaderID != r.MemberID {
		t.Fatalf("classic join: %+v", r)
	}
	a := kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: topic}}}
	for p := int32(0); p < partitions; p++ {
		a.Topics[0].Partitions = append(a.Topics[0].Partitions, p)
	}
	if s := syncGroup(t, addr, group, r.MemberID, nil, r.Generation, map[string][]byte{r.MemberID: a.AppendTo(nil)}); s.ErrorCode != 0 {
		t.Fatalf("classic sync: %+v", s)
	}
	return r.MemberID, r.Generation
}

// cgConverge heartbeats a consumer-protocol member, acknowledging what each response gives it,
// until its assignment stops changing; it returns its epoch and partitions.
func cgConverge(t *testing.T, addr, group, member string, epoch int32, parts []string) (int32, []string) {
	t.Helper()
	ids, names := cgTopicIDs(t, addr)
	for i := 0; i < 10; i++ {
		r := cgHeartbeat(t, addr, cgHB{group: group, member: member, epoch: epoch, owned: cgOwned(ids, parts...)})
		if r.ErrorCode != 0 {
			t.Fatalf("%s heartbeat: %+v", member, r)
		}
		epoch = r.MemberEpoch
		if r.Assignment == nil {
			return epoch, parts
		}
		parts = cgParts(r, names)
	}
	return epoch, parts
}

// TestConsumerGroupMigrationPolicyKIP848: what each value of group.consumer.migration.policy
// allows. disabled: a ConsumerGroupHeartbeat into a classic group with members is
// GROUP_ID_NOT_FOUND and a new classic member of a consumer group INCONSISTENT_GROUP_PROTOCOL
// (KAFKA-20640); upgrade: the heartbeat upgrades, and the consumer group stays one when its
// consumer-protocol member leaves; downgrade: the heartbeat is refused, but a consumer group
// left with classic members only becomes classic.
func TestConsumerGroupMigrationPolicyKIP848(t *testing.T) {
	for _, tc := range []struct {
		policy             coordinator.MigrationPolicy
		upgrade, downgrade bool
	}{
		{coordinator.MigrationDisabled, false, false},
		{coordinator.MigrationUpgrade, true, false},
		{coordinator.MigrationDowngrade, false, true},
		{coordinator.MigrationBidirectional, true, true},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			tb := cgProtoBroker(t, func(c *coordinator.Config) { c.MigrationPolicy = tc.policy })
			addr := tb.addr
			grpCreateTopic(t, addr, "p", 2)
			migClassicStable(t, addr, "classic", "p", 2)
			r := cgHeartbeat(t, addr, cgHB{group: "classic", member: "n", topics: []string{"p"}})
			if tc.upgrade != (r.ErrorCode == 0) {
				t.Fatalf("heartbeat into a classic group: %+v %v", r, r.ErrorMessage)
			}
			if !tc.upgrade {
				if r.ErrorCode != 69 || *r.ErrorMessage != "Cannot upgrade classic group classic to consumer group because online upgrade is disabled." {
					t.Fatalf("refused upgrade: %+v %v", r, *r.ErrorMessage)
				}
				if got := migListed(t, addr, "classic"); got != "classic/Stable" {
					t.Fatalf("refused upgrade left %s", got)
				}
			}
			// A classic consumer joins a consumer group with one member.
			if r := cgHeartbeat(t, addr, cgHB{group: "next", member: "n", topics: []string{"p"}}); r.ErrorCode != 0 {
				t.Fatalf("join: %+v", r)
			}
			j := migJoin(t, addr, migJoinReq("next", "", nil, "range", migSubscription([]string{"p"})))
			if tc.policy == coordinator.MigrationDisabled {
				if j.ErrorCode != 23 {
					t.Fatalf("new classic member with migration disabled: %+v", j)
				}
				return
			}
			if j.ErrorCode != 79 {
				t.Fatalf("new classic member: %+v", j)
			}
			if j = migJoin(t, addr, migJoinReq("next", j.MemberID, nil, "range", migSubscription([]string{"p"}))); j.ErrorCode != 0 || j.Generation != 2 {
				t.Fatalf("classic member joins: %+v", j)
			}
			// The consumer-protocol member leaves: the classic one is left.
			if r := cgHeartbeat(t, addr, cgHB{group: "next", member: "n", epoch: -1}); r.ErrorCode != 0 {
				t.Fatalf("leave: %+v", r)
			}
			want := "consumer/Assigning" // the group epoch moved; the next join computes a target
			if tc.downgrade {
				want = "classic/PreparingRebalance"
			}
			if got := migListed(t, addr, "next"); got != want {
				t.Fatalf("after the last consumer-protocol member left: %s, want %s", got, want)
			}
		})
	}
}

// TestConsumerGroupUpgradeWhileRebalancingKIP848: Kafka upgrades a classic group that is
// rebalancing too: the JoinGroup parked for the rebalance is answered REBALANCE_IN_PROGRESS
// (its member joins the consumer group instead), the stable member keeps its partitions at its
// generation as its member epoch and is told to rejoin. Classic groups that are not "consumer"
// or whose assignments are not the consumer protocol's are not upgraded.
func TestConsumerGroupUpgradeWhileRebalancingKIP848(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "u", 4)
	const g = "rebalancing"
	a, gen := migClassicStable(t, addr, g, "u", 4)
	md := migSubscription([]string{"u"})
	first := migJoin(t, addr, migJoinReq(g, "", nil, "range", md))
	parked := migJoinAsync(addr, migJoinReq(g, first.MemberID, nil, "range", md))
	waitState(t, addr, g, "PreparingRebalance")
	n := cgHeartbeat(t, addr, cgHB{group: g, member: "n", topics: []string{"u"}})
	if n.ErrorCode != 0 || n.MemberEpoch != gen+1 || len(n.Assignment.Topics) != 0 {
		t.Fatalf("heartbeat into a rebalancing classic group: %+v", n)
	}
	if r := waitJoin(t, parked); r.ErrorCode != 27 {
		t.Fatalf("the parked JoinGroup: %+v", r)
	}
	if typ, epoch, assigned, _ := migDescribed(t, addr, g, a); typ != 0 || epoch != gen || fmt.Sprint(assigned) != "[u-0 u-1 u-2 u-3]" {
		t.Fatalf("the stable classic member after the upgrade: type %d epoch %d %v", typ, epoch, assigned)
	}
	if code := heartbeat(t, addr, g, a, nil, gen); code != 27 {
		t.Fatalf("the classic member's heartbeat: %d", code)
	}
	if d := describe(t, addr, 6, g); d.ErrorCode != 69 || d.State != "Dead" {
		t.Fatalf("DescribeGroups of the upgraded group: %+v", d)
	}
	// Not upgraded: another protocol type; a classic assignment that is not the consumer
	// protocol's.
	stableGroup(t, addr, joinSpec{group: "connect", protocolType: "connect"})
	r := cgHeartbeat(t, addr, cgHB{group: "connect", member: "n", topics: []string{"u"}})
	if r.ErrorCode != 69 || *r.ErrorMessage != "Cannot upgrade classic group connect to consumer group because the group does not use the consumer embedded protocol." {
		t.Fatalf("upgrade of a connect group: %+v %v", r, r.ErrorMessage)
	}
	stableGroup(t, addr, joinSpec{group: "opaque"})
	r = cgHeartbeat(t, addr, cgHB{group: "opaque", member: "n", topics: []string{"u"}})
	if r.ErrorCode != 69 || *r.ErrorMessage != "Cannot upgrade classic group opaque to consumer group because the embedded consumer protocol is malformed." {
		t.Fatalf("upgrade of a group with an opaque assignment: %+v %v", r, r.ErrorMessage)
	}
	if got := migListed(t, addr, "opaque"); got != "classic/Stable" {
		t.Fatalf("refused upgrade left %s", got)
	}
}

// TestConsumerGroupClassicMemberKIP848: a classic member of a consumer group. It joins with
// nothing while a consumer-protocol member holds every partition: its SyncGroup is empty and
// its Heartbeat fine while it waits; once they are released its Heartbeat is
// REBALANCE_IN_PROGRESS, and its SyncGroup after rejoining decodes as a ConsumerProtocolAssignment
// (of its subscription's version) with exactly the partitions the coordinator gave it. When the
// group epoch moves it is told to rejoin (Heartbeat, SyncGroup), and revokes first. It commits
// with its generation; LeaveGroup does not remove consumer-protocol members by member id; when
// the last of those leaves, the group becomes classic.
func TestConsumerGroupClassicMemberKIP848(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "u", 4)
	const g = "mixed"
	nEpoch, nParts := cgJoinConverged(t, addr, g, "n", "u")
	if len(nParts) != 4 {
		t.Fatalf("n: %v", nParts)
	}
	j := migJoinNew(t, addr, g, migSubscription([]string{"u"}))
	c, gen := j.MemberID, j.Generation
	if j.LeaderID != "" || *j.Protocol != "range" || *j.ProtocolType != "consumer" || len(j.Members) != 0 || gen != nEpoch+1 {
		t.Fatalf("classic join: %+v", j)
	}
	s, a := migSync(t, addr, g, c, gen)
	if s.ErrorCode != 0 || len(migParts(a)) != 0 || a.Version != 1 {
		t.Fatalf("sync while n holds everything: %+v %v", s, migParts(a))
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 0 {
		t.Fatalf("heartbeat while waiting for partitions: %d", code)
	}
	_, _, _, target := migDescribed(t, addr, g, c)
	_, nParts = cgConverge(t, addr, g, "n", nEpoch, nParts) // n revokes c's target
	if len(nParts) != 2 || len(target) != 2 {
		t.Fatalf("n kept %v, c's target %v", nParts, target)
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 27 {
		t.Fatalf("heartbeat once the partitions are free: %d", code)
	}
	j = migJoin(t, addr, migJoinReq(g, c, nil, "range", migSubscription([]string{"u"})))
	if j.ErrorCode != 0 || j.Generation != gen {
		t.Fatalf("rejoin: %+v", j)
	}
	s, a = migSync(t, addr, g, c, gen)
	_, _, assigned, _ := migDescribed(t, addr, g, c)
	if s.ErrorCode != 0 || fmt.Sprint(migParts(a)) != fmt.Sprint(target) || fmt.Sprint(assigned) != fmt.Sprint(target) || a.Version != 1 || len(a.UserData) != 0 {
		t.Fatalf("sync: %+v %v, coordinator says %v, target %v", s, migParts(a), assigned, target)
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 0 {
		t.Fatalf("heartbeat when reconciled: %d", code)
	}
	// It commits with its generation (any OffsetCommit version), not another.
	commitAt := func(gen int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.MemberID, req.Generation = 7, g, c, gen
		var p int32
		fmt.Sscanf(target[0], "u-%d", &p)
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "u", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: p, Offset: 3, LeaderEpoch: -1}}}}
		return grpMust[*kmsg.OffsetCommitResponse](t, addr, req).Topics[0].Partitions[0].ErrorCode
	}
	if code := commitAt(gen); code != 0 {
		t.Fatalf("commit: %d", code)
	}
	if code := commitAt(gen - 1); code != 22 {
		t.Fatalf("commit at an old generation: %d", code)
	}
	// Two more consumer-protocol members: new group epochs; c must rejoin, and revoke one of
	// its two partitions first (it stays at its generation until it has).
	for _, id := range []string{"m2", "m3"} {
		if r := cgHeartbeat(t, addr, cgHB{group: g, member: id, topics: []string{"u"}}); r.ErrorCode != 0 {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 27 {
		t.Fatalf("heartbeat after the group epoch moved: %d", code)
	}
	if s, _ := migSync(t, addr, g, c, gen); s.ErrorCode != 27 {
		t.Fatalf("sync after the group epoch moved: %+v", s)
	}
	owned := make([]int32, 0, 2)
	for _, tp := range target {
		var p int32
		fmt.Sscanf(tp, "u-%d", &p)
		owned = append(owned, p)
	}
	j = migJoin(t, addr, migJoinReq(g, c, nil, "range", migSubscription([]string{"u"}, owned...)))
	_, epoch, assigned, newTarget := migDescribed(t, addr, g, c)
	if j.ErrorCode != 0 || j.Generation != gen || epoch != gen || len(newTarget) != 1 || fmt.Sprint(assigned) != fmt.Sprint(newTarget) {
		t.Fatalf("rejoin owning two of a target of one: %+v; coordinator: epoch %d %v target %v", j, epoch, assigned, newTarget)
	}
	s, a = migSync(t, addr, g, c, gen)
	if s.ErrorCode != 0 || fmt.Sprint(migParts(a)) != fmt.Sprint(newTarget) {
		t.Fatalf("sync while revoking: %+v %v, want %v", s, migParts(a), newTarget)
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 27 {
		t.Fatalf("heartbeat while revoking: %d", code)
	}
	var kept int32
	fmt.Sscanf(newTarget[0], "u-%d", &kept)
	j = migJoin(t, addr, migJoinReq(g, c, nil, "range", migSubscription([]string{"u"}, kept)))
	if j.ErrorCode != 0 || j.Generation <= gen {
		t.Fatalf("rejoin after revoking: %+v", j)
	}
	gen = j.Generation
	if s, a = migSync(t, addr, g, c, gen); s.ErrorCode != 0 || fmt.Sprint(migParts(a)) != fmt.Sprint(newTarget) {
		t.Fatalf("sync after revoking: %+v %v", s, migParts(a))
	}
	// LeaveGroup by member id is for classic members only.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, g
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "n"}}
	if r := grpMust[*kmsg.LeaveGroupResponse](t, addr, leave); r.ErrorCode != 0 || r.Members[0].ErrorCode != 25 {
		t.Fatalf("LeaveGroup of a consumer-protocol member: %+v", r)
	}
	// The consumer-protocol members leave; c catches up with the group epoch (it rejoins when
	// told) before the last goes. Then the group becomes classic, rebalancing, at the group
	// epoch; c rejoins and leads it.
	for _, id := range []string{"n", "m2"} {
		if r := cgHeartbeat(t, addr, cgHB{group: g, member: id, epoch: -1}); r.ErrorCode != 0 {
			t.Fatalf("%s leaves: %+v", id, r)
		}
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 27 {
		t.Fatalf("heartbeat after members left: %d", code)
	}
	if j = migJoin(t, addr, migJoinReq(g, c, nil, "range", migSubscription([]string{"u"}, kept))); j.ErrorCode != 0 || j.Generation <= gen {
		t.Fatalf("rejoin after members left: %+v", j)
	}
	gen = j.Generation
	if s, a = migSync(t, addr, g, c, gen); s.ErrorCode != 0 || len(migParts(a)) != 2 {
		t.Fatalf("sync after members left: %+v %v", s, migParts(a))
	}
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "m3", epoch: -1}); r.ErrorCode != 0 {
		t.Fatalf("m3 leaves: %+v", r)
	}
	if got := migListed(t, addr, g); got != "classic/PreparingRebalance" {
		t.Fatalf("after the consumer-protocol members left: %s", got)
	}
	d := describe(t, addr, 5, g)
	if len(d.Members) != 1 || d.Members[0].MemberID != c || d.ProtocolType != "consumer" {
		t.Fatalf("classic group: %+v", d)
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 27 {
		t.Fatalf("heartbeat after the downgrade: %d", code)
	}
	r := waitJoin(t, joinAsync(addr, joinSpec{group: g, memberID: c, topics: []string{"u"}}))
	if r.ErrorCode != 0 || r.LeaderID != c || r.Generation <= gen {
		t.Fatalf("join after the downgrade: %+v", r)
	}
	if s := syncGroup(t, addr, g, c, nil, r.Generation, map[string][]byte{c: a.AppendTo(nil)}); s.ErrorCode != 0 {
		t.Fatalf("sync in the classic group: %+v", s)
	}
	if got := commitAt(r.Generation); got != 0 {
		t.Fatalf("commit in the classic group: %d", got)
	}
}

// TestConsumerGroupLeaveGroupByInstanceDowngradesKIP848: an administrator's LeaveGroup naming
// the instance id of the last consumer-protocol member (a static one) removes it, and the
// classic member left makes the group classic again.
func TestConsumerGroupLeaveGroupByInstanceDowngradesKIP848(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "u", 2)
	const g = "admin-removal"
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "s", instance: kmsg.StringPtr("static-1"), topics: []string{"u"}}); r.ErrorCode != 0 {
		t.Fatalf("static join: %+v", r)
	}
	c := migJoinNew(t, addr, g, migSubscription([]string{"u"})).MemberID
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, g
	leave.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: kmsg.StringPtr("static-1")}, {InstanceID: kmsg.StringPtr("nobody")}}
	r := grpMust[*kmsg.LeaveGroupResponse](t, addr, leave)
	if r.ErrorCode != 0 || len(r.Members) != 2 || r.Members[0].ErrorCode != 0 || r.Members[1].ErrorCode != 25 {
		t.Fatalf("LeaveGroup by instance id: %+v", r)
	}
	if got := migListed(t, addr, g); got != "classic/PreparingRebalance" {
		t.Fatalf("after the admin removal: %s", got)
	}
	if d := describe(t, addr, 5, g); len(d.Members) != 1 || d.Members[0].MemberID != c {
		t.Fatalf("classic group: %+v", d)
	}
}

// TestConsumerGroupClassicMemberSessionTimeoutKIP848: a classic member of a consumer group that
// stops heartbeating is fenced after the session timeout of its JoinGroup; the
// consumer-protocol member gets its partitions.
func TestConsumerGroupClassicMemberSessionTimeoutKIP848(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "u", 2)
	const g = "silent-classic"
	nEpoch, nParts := cgJoinConverged(t, addr, g, "n", "u")
	md := migSubscription([]string{"u"})
	first := migJoin(t, addr, migJoinReq(g, "", nil, "range", md))
	req := migJoinReq(g, first.MemberID, nil, "range", md)
	req.SessionTimeoutMillis = 500
	if j := migJoin(t, addr, req); j.ErrorCode != 0 {
		t.Fatalf("join: %+v", j)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(cgDescribe(t, addr, g).Members) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the silent classic member was not fenced: %+v", cgDescribe(t, addr, g))
		}
		nEpoch, nParts = cgConverge(t, addr, g, "n", nEpoch, nParts)
		time.Sleep(100 * time.Millisecond)
	}
	if _, nParts = cgConverge(t, addr, g, "n", nEpoch, nParts); len(nParts) != 2 {
		t.Fatalf("n after the classic member was fenced: %v", nParts)
	}
	if code := heartbeat(t, addr, g, first.MemberID, nil, nEpoch); code != 25 {
		t.Fatalf("the fenced member's heartbeat: %d", code)
	}
}

// TestConsumerGroupMixedSurvivesRestartKIP848: a consumer group with a classic member (its
// session timeout and protocols in its member record) and a consumer-protocol member is loaded
// back identical after a restart; both go on at their epochs, the classic member's commit is
// there, and the group downgrades when the consumer-protocol member leaves — and reloads as
// the classic group it became.
func TestConsumerGroupMixedSurvivesRestartKIP848(t *testing.T) {
	tb := cgProtoBroker(t, nil)
	addr := tb.addr
	grpCreateTopic(t, addr, "u", 4)
	const g = "durable-mix"
	nEpoch, nParts := cgJoinConverged(t, addr, g, "n", "u")
	j := migJoinNew(t, addr, g, migSubscription([]string{"u"}))
	c := j.MemberID
	nEpoch, nParts = cgConverge(t, addr, g, "n", nEpoch, nParts)
	if code := heartbeat(t, addr, g, c, nil, j.Generation); code != 27 {
		t.Fatalf("classic heartbeat once its partitions are free: %d", code)
	}
	j = migJoin(t, addr, migJoinReq(g, c, nil, "range", migSubscription([]string{"u"})))
	gen := j.Generation
	s, a := migSync(t, addr, g, c, gen)
	if s.ErrorCode != 0 || len(migParts(a)) != 2 {
		t.Fatalf("classic member reconciled: %+v %v", s, migParts(a))
	}
	var p int32
	fmt.Sscanf(migParts(a)[0], "u-%d", &p)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group, oc.MemberID, oc.Generation = 8, g, c, gen
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "u", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: p, Offset: 42, LeaderEpoch: -1}}}}
	if code := grpMust[*kmsg.OffsetCommitResponse](t, addr, oc).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("classic commit: %d", code)
	}
	before := cgDescribe(t, addr, g)
	if before.State != "Stable" || len(before.Members) != 2 {
		t.Fatalf("before the restart: %+v", before)
	}

	tb.stop()
	tb = cgBroker(t, tb.dir, nil)
	addr = tb.addr
	if after := cgDescribe(t, addr, g); mustJSON(t, after) != mustJSON(t, before) {
		t.Fatalf("after the restart:\n%+v\nbefore:\n%+v", after, before)
	}
	if code := heartbeat(t, addr, g, c, nil, gen); code != 0 {
		t.Fatalf("classic heartbeat after the restart: %d", code)
	}
	if s2, a2 := migSync(t, addr, g, c, gen); s2.ErrorCode != 0 || fmt.Sprint(migParts(a2)) != fmt.Sprint(migParts(a)) {
		t.Fatalf("classic sync after the restart: %+v %v", s2, migParts(a2))
	}
	if e, parts := cgConverge(t, addr, g, "n", nEpoch, nParts); e != nEpoch || fmt.Sprint(parts) != fmt.Sprint(nParts) {
		t.Fatalf("n after the restart: epoch %d %v, was %d %v", e, parts, nEpoch, nParts)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version = 9
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: g, MemberID: &c, MemberEpoch: gen, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "u", Partitions: []int32{p}}}}}
	if rg := grpMust[*kmsg.OffsetFetchResponse](t, addr, of).Groups[0]; rg.ErrorCode != 0 || rg.Topics[0].Partitions[0].Offset != 42 {
		t.Fatalf("classic member's offset fetch after the restart: %+v", rg)
	}
	of.Groups[0].MemberEpoch = gen - 1
	if rg := grpMust[*kmsg.OffsetFetchResponse](t, addr, of).Groups[0]; rg.ErrorCode != 22 {
		t.Fatalf("classic member's offset fetch at another generation: %+v", rg)
	}
	// Downgrade after the restart, then another restart: the classic group is back.
	if r := cgHeartbeat(t, addr, cgHB{group: g, member: "n", epoch: -1}); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	if got := migListed(t, addr, g); got != "classic/PreparingRebalance" {
		t.Fatalf("after the leave: %s", got)
	}
	tb.stop()
	tb = cgBroker(t, tb.dir, nil)
	addr = tb.addr
	d := describe(t, addr, 5, g)
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 1 || d.Members[0].MemberID != c {
		t.Fatalf("classic group after the restart: %+v", d)
	}
	var got kmsg.ConsumerMemberAssignment
	if err := got.ReadFrom(d.Members[0].MemberAssignment); err != nil || fmt.Sprint(migParts(got)) != fmt.Sprint(migParts(a)) {
		t.Fatalf("classic member's assignment after the restart: %v %v, want %v", migParts(got), err, migParts(a))
	}
	if code := heartbeat(t, addr, g, c, nil, before.Epoch); code != 0 {
		t.Fatalf("classic heartbeat at the generation of the downgrade: %d", code)
	}
}
