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

	"github.com/spate-broker/spate/coordinator"
)

// grpBroker starts a broker whose group timers suit tests: a short initial rebalance delay
// and a low minimum session timeout. mod adjusts the group settings further.
func grpBroker(t *testing.T, dir string, mod func(*coordinator.Config)) *testBroker {
	t.Helper()
	return startBroker(t, dir, func(c *Config) {
		c.Groups.InitialRebalanceDelay = 100 * time.Millisecond
		c.Groups.MinSessionTimeout = 100 * time.Millisecond
		if mod != nil {
			mod(&c.Groups)
		}
	})
}

// grpRecordID names a consumed record.
type grpRecordID struct {
	partition int32
	offset    int64
}

// sink collects what a group's consumers receive.
type grpSink struct {
	mu    sync.Mutex
	seen  map[grpRecordID]int
	byWho map[grpRecordID][]string
	value map[grpRecordID]string
}

func grpNewSink() *grpSink {
	return &grpSink{seen: map[grpRecordID]int{}, byWho: map[grpRecordID][]string{}, value: map[grpRecordID]string{}}
}

func (s *grpSink) add(who string, r *kgo.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := grpRecordID{r.Partition, r.Offset}
	s.seen[id]++
	s.byWho[id] = append(s.byWho[id], who)
	s.value[id] = string(r.Value)
}

func (s *grpSink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// member is a kgo group consumer polling in the background into a sink.
type grpMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	assigned map[int32]bool // partitions currently owned
	revokes  int            // partitions revoked or lost, counted per callback
	assigns  int            // assignment callbacks
}

func grpStartMember(t *testing.T, addr, group, topic, name string, s *grpSink, opts ...kgo.Opt) *grpMember {
	t.Helper()
	m := &grpMember{name: name, done: make(chan struct{}), assigned: map[int32]bool{}}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ClientID(name), kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(100 * time.Millisecond), kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second), kgo.AutoCommitInterval(100 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.assigns++
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			m.revokes++
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
			m.mu.Unlock()
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("%s: commit on revoke: %v", name, err)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.revokes++
			for _, p := range l[topic] {
				delete(m.assigned, p)
			}
		}),
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
			fs := cl.PollFetches(ctx)
			// Records polled are handled even when the poll ended with the cancel: close
			// commits everything polled, so dropping them here would lose them.
			fs.EachRecord(func(r *kgo.Record) { s.add(name, r) })
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

// close stops polling, commits what was polled and leaves the group (a static member does
// not leave: kgo keeps its place for a restart).
func (m *grpMember) close() {
	if m.cl == nil {
		return
	}
	m.cancel()
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.cl.CommitUncommittedOffsets(ctx)
	m.cl.Close()
	m.cl = nil
}

func (m *grpMember) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// grpWaitStable waits until the group is Stable with n members whose assignments cover every
// partition of topic exactly once, as the broker reports it, and every member's client owns
// what the broker says it was assigned.
func grpWaitStable(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, ms ...*grpMember) kadm.DescribedGroup {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dgs, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			dg := dgs[group]
			last = fmt.Sprintf("state %s, %d members", dg.State, len(dg.Members))
			if dg.Err == nil && dg.State == "Stable" && len(dg.Members) == len(ms) && grpCoversOnce(dg, topic, partitions) && grpClientsAgree(dg, topic, ms) {
				return dg
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s did not become stable with %d members: %s", group, len(ms), last)
	return kadm.DescribedGroup{}
}

func grpCoversOnce(dg kadm.DescribedGroup, topic string, partitions int32) bool {
	seen := map[int32]int{}
	for _, m := range dg.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		for _, t := range a.Topics {
			if t.Topic != topic {
				return false
			}
			for _, p := range t.Partitions {
				seen[p]++
			}
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

// grpClientsAgree checks that each member's client owns exactly what the broker assigned it.
func grpClientsAgree(dg kadm.DescribedGroup, topic string, ms []*grpMember) bool {
	byClient := map[string][]int32{}
	for _, m := range dg.Members {
		a, _ := m.Assigned.AsConsumer()
		var ps []int32
		for _, t := range a.Topics {
			ps = append(ps, t.Partitions...)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		byClient[m.ClientID] = ps
	}
	for _, m := range ms {
		if fmt.Sprint(byClient[m.name]) != fmt.Sprint(m.owned()) {
			return false
		}
	}
	return true
}

// grpProduce produces n records round-robin over partitions (record i to partition i%partitions,
// value "v<i>") and returns them by partition in offset order.
func grpProduce(t *testing.T, addr, topic string, partitions int32, from, n int) map[int32][]string {
	t.Helper()
	cl := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[int32][]string{}
	var rs []*kgo.Record
	for i := from; i < from+n; i++ {
		p := int32(i) % partitions
		rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))})
		out[p] = append(out[p], fmt.Sprintf("v%d", i))
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return out
}

func grpWaitDistinct(t *testing.T, s *grpSink, n int) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for s.distinct() < n {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d distinct records, want %d", s.distinct(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grpCreateTopic(t *testing.T, addr, topic string, partitions int32) *kadm.Client {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return adm
}

// TestGroupEachRecordOnceWhileStable: three kgo group members over six partitions share 600
// records, each record handled by exactly one member, the owner of its partition — with the
// eager range balancer and with the cooperative-sticky one.
func TestGroupEachRecordOnceWhileStable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{{"eager-range", kgo.RangeBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(tc.name, func(t *testing.T) {
			tb := grpBroker(t, "", nil)
			const topic, group, partitions = "orders", "workers", 6
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			s := grpNewSink()
			var ms []*grpMember
			for i := 0; i < 3; i++ {
				ms = append(ms, grpStartMember(t, tb.addr, group, topic, fmt.Sprintf("c%d", i), s, kgo.Balancers(tc.balancer)))
			}
			dg := grpWaitStable(t, adm, group, topic, partitions, ms...)
			if dg.Protocol != tc.balancer.ProtocolName() || dg.ProtocolType != "consumer" {
				t.Fatalf("protocol %s/%s, want consumer/%s", dg.ProtocolType, dg.Protocol, tc.balancer.ProtocolName())
			}
			for _, m := range ms {
				if n := len(m.owned()); n != 2 {
					t.Fatalf("%s owns %v, want two partitions", m.name, m.owned())
				}
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

// TestGroupMemberLeavesMidStreamNoLoss: while records flow, one of three members leaves; the
// other two take its partitions over from its last commit and every record is consumed.
func TestGroupMemberLeavesMidStreamNoLoss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{{"eager-range", kgo.RangeBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(tc.name, func(t *testing.T) {
			tb := grpBroker(t, "", nil)
			const topic, group, partitions = "events", "leavers", 6
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			s := grpNewSink()
			var ms []*grpMember
			for i := 0; i < 3; i++ {
				ms = append(ms, grpStartMember(t, tb.addr, group, topic, fmt.Sprintf("c%d", i), s, kgo.Balancers(tc.balancer)))
			}
			grpWaitStable(t, adm, group, topic, partitions, ms...)
			total := 0
			for batch := 0; batch < 6; batch++ {
				grpProduce(t, tb.addr, topic, partitions, total, 100)
				total += 100
				if batch == 2 {
					grpWaitDistinct(t, s, total-50)
					ms[1].close() // leaves the group mid-stream
				}
				time.Sleep(50 * time.Millisecond)
			}
			grpWaitStable(t, adm, group, topic, partitions, ms[0], ms[2])
			grpWaitDistinct(t, s, total)
			s.mu.Lock()
			defer s.mu.Unlock()
			// Each record once with its value, except records the leaver processed and had
			// not committed when it left (its work since the last autocommit): redelivered
			// once to the member that took its partition over.
			dups, byLeaver := 0, 0
			for id, n := range s.seen {
				if id.offset >= int64(total/partitions) {
					t.Fatalf("record %v past the end", id)
				}
				if want := fmt.Sprintf("v%d", int64(id.partition)+partitions*id.offset); s.value[id] != want {
					t.Fatalf("record %v has value %q, want %q", id, s.value[id], want)
				}
				who := s.byWho[id]
				if who[0] == "c1" {
					byLeaver++
				}
				if n > 1 && (n > 2 || who[0] != "c1" || who[1] == "c1") {
					t.Fatalf("record %v delivered to %v: only the leaver's uncommitted records may be redelivered, once, to another member", id, who)
				}
				dups += n - 1
			}
			if byLeaver == 0 {
				t.Fatal("the leaver processed nothing: the test did not leave mid-stream")
			}
			t.Logf("%d records, %d processed by the leaver, %d of them redelivered after it left", total, byLeaver, dups)
		})
	}
}

// TestGroupCommittedOffsetsSurviveRestart: offsets committed by a group (and their
// metadata) are in __consumer_offsets: after the broker stops and starts on the same folder,
// OffsetFetch returns them and a new member resumes right after the last commit.
func TestGroupCommittedOffsetsSurviveRestart(t *testing.T) {
	tb := grpBroker(t, "", nil)
	const topic, group, partitions = "ledger", "resumers", 6
	adm := grpCreateTopic(t, tb.addr, topic, partitions)
	grpProduce(t, tb.addr, topic, partitions, 0, 120)
	s := grpNewSink()
	m := grpStartMember(t, tb.addr, group, topic, "first", s, kgo.DisableAutoCommit())
	grpWaitDistinct(t, s, 120)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	m.close()
	// A simple (generation -1) commit with metadata, from an admin client.
	if _, err := adm.CommitOffsets(ctx, "admin-group", kadm.Offsets{topic: {3: {Topic: topic, Partition: 3, At: 7, LeaderEpoch: 0, Metadata: "hello"}}}); err != nil {
		t.Fatal(err)
	}
	before, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	tb.stop()

	tb = grpBroker(t, tb.dir, nil)
	adm = kadm.NewClient(newClient(t, tb.addr))
	after, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		b, _ := before.Lookup(topic, p)
		a, _ := after.Lookup(topic, p)
		if a.Err != nil || a.At != 20 || a.At != b.At || a.Metadata != b.Metadata || a.LeaderEpoch != b.LeaderEpoch {
			t.Fatalf("partition %d after restart: %+v, before %+v (want offset 20)", p, a.Offset, b.Offset)
		}
	}
	ao, err := adm.FetchOffsets(ctx, "admin-group")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ao.Lookup(topic, 3); o.At != 7 || o.Metadata != "hello" || o.LeaderEpoch != 0 {
		t.Fatalf("admin commit after restart: %+v", o.Offset)
	}
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil || dg[group].State != "Empty" || dg[group].ProtocolType != "consumer" {
		t.Fatalf("group after restart: %+v %v", dg[group], err)
	}
	grpProduce(t, tb.addr, topic, partitions, 120, 60)
	s2 := grpNewSink()
	grpStartMember(t, tb.addr, group, topic, "second", s2)
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

// TestGroupStaticMemberRestartKeepsAssignmentKIP345: a static member (group.instance.id) that
// restarts within its session timeout gets its partitions back with no rebalance: the
// generation stays, the other members keep theirs and never see a revocation — for a
// follower and for the leader (KIP-814: the leader is told to skip assignment).
func TestGroupStaticMemberRestartKeepsAssignmentKIP345(t *testing.T) {
	tb := grpBroker(t, "", nil)
	const topic, group, partitions = "static", "statics", 6
	adm := grpCreateTopic(t, tb.addr, topic, partitions)
	s := grpNewSink()
	opts := func(id string) []kgo.Opt {
		return []kgo.Opt{kgo.InstanceID(id), kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(20 * time.Second)}
	}
	ms := []*grpMember{
		grpStartMember(t, tb.addr, group, topic, "a", s, opts("a")...),
		grpStartMember(t, tb.addr, group, topic, "b", s, opts("b")...),
		grpStartMember(t, tb.addr, group, topic, "c", s, opts("c")...),
	}
	dg := grpWaitStable(t, adm, group, topic, partitions, ms...)
	_, gen := ms[0].cl.GroupMetadata()
	rebalances := tb.b.Metrics().GetOrCreateCounter("spate_group_rebalances_total").Get()
	owned := map[string][]int32{}
	for _, m := range ms {
		owned[m.name] = m.owned()
	}
	for _, dm := range dg.Members {
		if dm.InstanceID == nil || !strings.HasPrefix(dm.MemberID, *dm.InstanceID+"-") {
			t.Fatalf("static member %s has instance id %v", dm.MemberID, dm.InstanceID)
		}
	}
	// Each of the three restarts in turn, so the leader is among them.
	for _, restart := range []int{1, 0, 2} {
		old := ms[restart]
		oldID, _ := old.cl.GroupMetadata()
		old.close()
		ms[restart] = grpStartMember(t, tb.addr, group, topic, old.name, s, opts(old.name)...)
		grpWaitStable(t, adm, group, topic, partitions, ms...)
		newID, newGen := ms[restart].cl.GroupMetadata()
		if newGen != gen || newID == oldID {
			t.Fatalf("restarted %s: member %s generation %d, was %s generation %d", old.name, newID, newGen, oldID, gen)
		}
		for _, m := range ms {
			if fmt.Sprint(m.owned()) != fmt.Sprint(owned[m.name]) {
				t.Fatalf("after restarting %s, %s owns %v, owned %v", old.name, m.name, m.owned(), owned[m.name])
			}
			if _, g := m.cl.GroupMetadata(); g != gen {
				t.Fatalf("after restarting %s, %s is in generation %d, want %d", old.name, m.name, g, gen)
			}
			m.mu.Lock()
			revokes := m.revokes
			m.mu.Unlock()
			if revokes != 0 {
				t.Fatalf("after restarting %s, %s saw %d revocations", old.name, m.name, revokes)
			}
		}
	}
	if got := tb.b.Metrics().GetOrCreateCounter("spate_group_rebalances_total").Get(); got != rebalances {
		t.Fatalf("%d rebalances during the static restarts", got-rebalances)
	}
}
