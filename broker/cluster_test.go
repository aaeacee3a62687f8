package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/logstore"
)

// testCluster is n combined nodes (controller + broker) in this process on loopback ports.
type testCluster struct {
	t      *testing.T
	nodes  []*testBroker
	dirs   []string
	voters []controller.Voter
	mod    func(i int, c *Config)
}

func startTestCluster(t *testing.T, n int, mod func(i int, c *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, mod: mod}
	for i := 0; i < n; i++ {
		tc.voters = append(tc.voters, controller.Voter{ID: int32(i + 1), Addr: "127.0.0.1:" + strconv.Itoa(freePort(t))})
		tc.dirs = append(tc.dirs, t.TempDir())
	}
	tc.nodes = make([]*testBroker, n)
	for i := 0; i < n; i++ {
		tc.start(i)
	}
	tc.waitBrokers(n)
	return tc
}

func (tc *testCluster) start(i int) {
	tc.nodes[i] = startBroker(tc.t, tc.dirs[i], func(c *Config) {
		c.NodeID = int32(i + 1)
		c.ClusterID = "spate-test-cluster"
		c.Cluster = ClusterConfig{
			Voters: tc.voters, SessionTimeout: 2 * time.Second, ReplicaLagTimeMax: 3 * time.Second,
			RaftTimeout: 300 * time.Millisecond, ControllerOpTimeout: 10 * time.Second,
		}
		c.Groups.InitialRebalanceDelay = 0
		if tc.mod != nil {
			tc.mod(i, c)
		}
	})
}

func (tc *testCluster) addrs() []string {
	var out []string
	for _, n := range tc.nodes {
		if n != nil && n.srv != nil {
			out = append(out, n.addr)
		}
	}
	return out
}

// waitBrokers waits until Metadata (from every live node) lists want unfenced brokers.
func (tc *testCluster) waitBrokers(want int) {
	tc.t.Helper()
	tc.waitEveryNode(fmt.Sprintf("%d brokers registered and unfenced", want), func(n *testBroker) bool {
		return len(n.b.cluster.brokerList()) == want
	})
}

// waitControllers waits until every live node's Image holds the controller registrations of
// ids (controllerRegistrationLoop runs after start).
func (tc *testCluster) waitControllers(ids ...int32) {
	tc.t.Helper()
	tc.waitEveryNode(fmt.Sprintf("controllers %v registered", ids), func(n *testBroker) bool {
		for _, id := range ids {
			if n.b.cluster.ctl.Image().Controller(id) == nil {
				return false
			}
		}
		return true
	})
}

// waitEveryNode waits (30 s at most) until ok holds on every live node.
func (tc *testCluster) waitEveryNode(what string, ok func(n *testBroker) bool) {
	tc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := true
		for _, n := range tc.nodes {
			if n != nil && n.srv != nil && !ok(n) {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partitionOn returns node i's replica of topic/p, nil when it hosts none.
func (tc *testCluster) partitionOn(i int, topic string, p int32) *partition {
	return tc.nodes[i].b.topics.partition(topic, p)
}

// logBytes returns a log's batches from its start up to (not including) offset end.
func logBytes(t *testing.T, l *logstore.Log, end int64) []byte {
	t.Helper()
	var out []byte
	var res logstore.ReadResult
	defer res.Release()
	for off := l.LogStartOffset(); off < end; {
		if err := l.Read(off, 1<<20, end, true, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Regions) == 0 {
			break
		}
		for _, r := range res.Regions {
			out = append(out, r.Data...)
		}
		off = res.NextOffset
		res.Release()
	}
	return out
}

// checkReplicasIdentical asserts that every replica of every partition of topic holds the
// same bytes up to the leader's high watermark, and returns the high watermarks.
func (tc *testCluster) checkReplicasIdentical(topic string, partitions int32) map[int32]int64 {
	tc.t.Helper()
	hws := map[int32]int64{}
	deadline := time.Now().Add(20 * time.Second)
	for p := int32(0); p < partitions; p++ {
		for {
			var leader *partition
			var reps []*partition
			for i := range tc.nodes {
				if tc.nodes[i] == nil || tc.nodes[i].srv == nil {
					continue
				}
				if rp := tc.partitionOn(i, topic, p); rp != nil {
					reps = append(reps, rp)
					if rp.isLeader() && rp.repl.leader.Load() != nil {
						leader = rp
					}
				}
			}
			if leader == nil {
				if time.Now().After(deadline) {
					tc.t.Fatalf("%s-%d: no leader", topic, p)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			hw := leader.highWatermark()
			want := logBytes(tc.t, leader.log, hw)
			same := true
			for _, rp := range reps {
				if rp.log.LogEndOffset() < hw || !bytes.Equal(logBytes(tc.t, rp.log, hw), want) {
					same = false
				}
			}
			if same {
				hws[p] = hw
				break
			}
			if time.Now().After(deadline) {
				tc.t.Fatalf("%s-%d: replicas differ below the high watermark %d", topic, p, hw)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return hws
}

// TestClusterReplicationAcksAll: three combined nodes; a topic with replication factor 3
// created through a node that may not be the active controller; every node's Metadata shows
// the same leaders, replicas and ISRs; an idempotent acks=all producer's records are on all
// three replicas byte for byte and consumed back exactly; then the node leading partition 0
// stops (controlled shutdown), leadership moves with a new leader epoch, and production and
// consumption carry on with nothing acknowledged lost.
func TestClusterReplicationAcksAll(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	const topic, parts = "rf3", int32(3)
	adm := kadm.NewClient(newClient(t, tc.nodes[1].addr))
	ctx := admCtx(t)
	resp, err := adm.CreateTopic(ctx, parts, 3, nil, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	// Every node's metadata agrees: 3 replicas, ISR of 3, a leader.
	var leader0 int32 = -1
	for i := range tc.nodes {
		md, err := kadm.NewClient(newClient(t, tc.nodes[i].addr)).Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 3 {
			t.Fatalf("node %d: %d brokers", i+1, len(md.Brokers))
		}
		for _, p := range md.Topics[topic].Partitions {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 1 || p.Err != nil {
				t.Fatalf("node %d partition %d: %+v", i+1, p.Partition, p)
			}
			if p.Partition == 0 {
				if leader0 >= 0 && leader0 != p.Leader {
					t.Fatalf("nodes disagree on the leader of partition 0: %d vs %d", leader0, p.Leader)
				}
				leader0 = p.Leader
			}
		}
	}

	produce := func(from, to int) {
		cl := newClient(t, tc.addrs()[0], kgo.SeedBrokers(tc.addrs()...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i % 17)), Value: []byte(fmt.Sprintf("v-%05d", i))})
		}
		if err := cl.ProduceSync(admCtx(t), recs...).FirstErr(); err != nil {
			t.Fatalf("produce %d..%d: %v", from, to, err)
		}
		cl.Close()
	}
	consume := func(n int) []string {
		cl := newClient(t, tc.addrs()[0], kgo.SeedBrokers(tc.addrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		var got []string
		ctx := admCtx(t)
		for len(got) < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d", len(got), n)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		sort.Strings(got)
		return got
	}
	want := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("v-%05d", i))
		}
		return out
	}
	produce(0, 3000)
	if got := consume(3000); fmt.Sprint(got) != fmt.Sprint(want(3000)) {
		t.Fatalf("consumed %d records, not the 3000 produced", len(got))
	}
	hws := tc.checkReplicasIdentical(topic, parts)
	total := int64(0)
	for _, hw := range hws {
		total += hw
	}
	if total < 3000 {
		t.Fatalf("high watermarks %v sum below 3000", hws)
	}

	// The leader of partition 0 stops; leadership moves (epoch 1+) to another ISR member.
	tc.nodes[leader0-1].stop()
	live := tc.nodes[leader0%3]
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := live.b.topics.partition(topic, 0)
		img := live.b.cluster.ctl.Image()
		ps, _ := img.Partition(topic, 0)
		if p != nil && ps.Leader != leader0 && ps.Leader != controller.NoLeader && ps.LeaderEpoch >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leadership of partition 0 did not move from %d: %+v", leader0, ps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	produce(3000, 4000)
	if got := consume(4000); fmt.Sprint(got) != fmt.Sprint(want(4000)) {
		t.Fatalf("after the leader stopped: consumed %d records, not the 4000 produced", len(got))
	}
	_ = context.Background
}

// TestClusterMinInsyncReplicas: with min.insync.replicas=2 and two of three replicas down,
// acks=all produces fail with NOT_ENOUGH_REPLICAS (acks=1 still works); when the replicas
// return they catch up, rejoin the ISR, acks=all works again, and every record acknowledged
// before, during and after is there. Five nodes, the partition on three of them, so that the
// controller quorum (3 of 5) survives the two replicas going down.
func TestClusterMinInsyncReplicas(t *testing.T) {
	tc := startTestCluster(t, 5, nil)
	const topic = "min-isr"
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(5)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2, 3}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	mv := "2"
	rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: "min.insync.replicas", Value: &mv})
	req.Topics = append(req.Topics, rt)
	if r := admRaw[*kmsg.CreateTopicsResponse](t, tc.nodes[4].addr, req); r.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %d", r.Topics[0].ErrorCode)
	}
	var ps controller.PartitionState
	deadline0 := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		ps, ok = tc.nodes[0].b.cluster.ctl.Image().Partition(topic, 0)
		if ok && tc.partitionOn(int(ps.Leader-1), topic, 0) != nil || time.Now().After(deadline0) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	leader := int(ps.Leader - 1)
	produce := func(acks kgo.Acks, vals ...string) error {
		cl := newClient(t, tc.nodes[leader].addr, kgo.SeedBrokers(tc.addrs()...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(acks),
			kgo.DisableIdempotentWrite(), kgo.RecordRetries(2), kgo.RecordDeliveryTimeout(5*time.Second))
		defer cl.Close()
		var recs []*kgo.Record
		for _, v := range vals {
			recs = append(recs, &kgo.Record{Value: []byte(v)})
		}
		return cl.ProduceSync(admCtx(t), recs...).FirstErr()
	}
	if err := produce(kgo.AllISRAcks(), "a", "b"); err != nil {
		t.Fatal(err)
	}
	// Stop the two followers: the ISR shrinks to the leader.
	var down []int
	for _, r := range ps.Replicas {
		if i := int(r - 1); i != leader {
			tc.nodes[i].stop()
			down = append(down, i)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for tc.partitionOn(leader, topic, 0).isrSize() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("ISR did not shrink to the leader: %v", tc.partitionOn(leader, topic, 0).repl.leader.Load().ISR())
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := produce(kgo.AllISRAcks(), "refused")
	if !errors.Is(err, kerr.NotEnoughReplicas) && !errors.Is(err, kerr.NotEnoughReplicasAfterAppend) {
		t.Fatalf("acks=all with an ISR of 1: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if err := produce(kgo.LeaderAck(), "c"); err != nil {
		t.Fatalf("acks=1 with an ISR of 1: %v", err)
	}
	for _, i := range down {
		tc.start(i)
	}
	deadline = time.Now().Add(30 * time.Second)
	for tc.partitionOn(leader, topic, 0).isrSize() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not rejoin the ISR")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := produce(kgo.AllISRAcks(), "d"); err != nil {
		t.Fatalf("acks=all after the replicas returned: %v", err)
	}
	got := consumeAll(t, tc.nodes[leader].addr, topic, false)
	if strings.Join(got, ",") != "a,b,c,d" {
		t.Fatalf("records: %v, want a,b,c,d", got)
	}
	tc.checkReplicasIdentical(topic, 1)
}

// TestClusterPreferredLeaderElection: the preferred leader of a partition stops (its
// leadership moves) and comes back; ElectLeaders (preferred), sent to a node that need not
// be the active controller, puts leadership back on it with a new leader epoch; asking again
// is ELECTION_NOT_NEEDED.
func TestClusterPreferredLeaderElection(t *testing.T) {
	tc := startTestCluster(t, 3, func(i int, c *Config) {})
	const topic = "prefer"
	adm := kadm.NewClient(newClient(t, tc.nodes[2].addr))
	if resp, err := adm.CreateTopic(admCtx(t), 1, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	ps, _ := tc.nodes[0].b.cluster.ctl.Image().Partition(topic, 0)
	preferred := ps.Replicas[0]
	tc.nodes[preferred-1].stop()
	other := tc.nodes[preferred%3]
	waitFor := func(what string, cond func(controller.PartitionState) bool) controller.PartitionState {
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, _ := other.b.cluster.ctl.Image().Partition(topic, 0)
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	moved := waitFor("leadership moves away", func(st controller.PartitionState) bool { return st.Leader != preferred && st.Leader > 0 })
	tc.start(int(preferred - 1))
	waitFor("the preferred replica rejoins the ISR", func(st controller.PartitionState) bool { return len(st.ISR) == 3 })
	adm = kadm.NewClient(newClient(t, other.addr))
	res, err := adm.ElectLeaders(admCtx(t), kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || res[topic][0].Err != nil {
		t.Fatalf("elect: %v %+v", err, res)
	}
	back := waitFor("leadership returns", func(st controller.PartitionState) bool { return st.Leader == preferred })
	if back.LeaderEpoch <= moved.LeaderEpoch {
		t.Fatalf("leader epoch %d after the election, %d before", back.LeaderEpoch, moved.LeaderEpoch)
	}
	res, err = adm.ElectLeaders(admCtx(t), kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || !errors.Is(res[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("second election: %v %+v, want ELECTION_NOT_NEEDED", err, res)
	}
}

// TestClusterGroupSurvivesCoordinatorMove: a consumer group commits its offsets; the node
// coordinating it (leader of its __consumer_offsets partition) stops; the coordinator moves
// with the partition's leadership, serves the committed offsets, and a new member of the
// group reads exactly the records produced after the commit.
func TestClusterGroupSurvivesCoordinatorMove(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	const topic, group = "grouped", "cluster-group"
	adm := kadm.NewClient(newClient(t, tc.nodes[0].addr, kgo.SeedBrokers(tc.addrs()...)))
	if resp, err := adm.CreateTopic(admCtx(t), 3, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	produce := func(prefix string, n int) {
		cl := newClient(t, tc.addrs()[0], kgo.SeedBrokers(tc.addrs()...), kgo.DefaultProduceTopic(topic))
		defer cl.Close()
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("%s-%03d", prefix, i))})
		}
		if err := cl.ProduceSync(admCtx(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(n int) []string {
		cl := newClient(t, tc.addrs()[0], kgo.SeedBrokers(tc.addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		var got []string
		ctx := admCtx(t)
		for len(got) < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("group consumed %d of %d", len(got), n)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if err := cl.CommitUncommittedOffsets(admCtx(t)); err != nil {
			t.Fatalf("commit: %v", err)
		}
		sort.Strings(got)
		return got
	}
	produce("first", 150)
	if got := consume(150); len(got) != 150 || got[0] != "first-000" || got[149] != "first-149" {
		t.Fatalf("first read: %d records", len(got))
	}
	committed, err := adm.FetchOffsets(admCtx(t), group)
	if err != nil || committed.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, committed.Error())
	}
	// The coordinator: leader of the group's partition of __consumer_offsets.
	coord := tc.nodes[0].b.cluster
	p := coord.b.groups.PartitionFor(group)
	ps, _ := coord.ctl.Image().Partition("__consumer_offsets", p)
	t.Logf("coordinator of %s is node %d (partition %d)", group, ps.Leader, p)
	tc.nodes[ps.Leader-1].stop()

	// A new admin client per attempt: kgo keeps a coordinator it found until that answers
	// NOT_COORDINATOR, so one that asked while the stopped node was still named (its
	// controlled shutdown did not finish before the stop) would keep dialing it.
	var after kadm.OffsetResponses
	deadline := time.Now().Add(30 * time.Second)
	for {
		cl := newClient(t, tc.addrs()[0], kgo.SeedBrokers(tc.addrs()...))
		after, err = kadm.NewClient(cl).FetchOffsets(admCtx(t), group)
		cl.Close()
		if err == nil && after.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			live := tc.nodes[ps.Leader%3]
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.SetVersion(3)
			fc.CoordinatorKey = group
			fr := admRaw[*kmsg.FindCoordinatorResponse](t, live.addr, fc)
			st, _ := live.b.cluster.ctl.Image().Partition("__consumer_offsets", p)
			t.Fatalf("offsets not served after the coordinator moved: %v %v; FindCoordinator on node %d: %+v; partition %+v", err, after.Error(), live.b.cfg.NodeID, fr, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	committed.Each(func(o kadm.OffsetResponse) {
		a, ok := after.Lookup(o.Topic, o.Partition)
		if !ok || a.At != o.At {
			t.Fatalf("%s-%d: committed %d, after the move %+v", o.Topic, o.Partition, o.At, a)
		}
	})
	produce("second", 90)
	got := consume(90)
	for i, v := range got {
		if want := fmt.Sprintf("second-%03d", i); v != want {
			t.Fatalf("after the move the group read %v (want exactly the 90 new records)", got)
		}
	}
}

// TestClusterTransactionsExactlyOnce: GroupTransactSession members consume, transform and
// produce in transactions on a three-node cluster (topics with replication factor 3, the
// transaction and group coordinators and the partitions spread over the nodes, markers sent
// between them); the output read with read_committed holds every input record exactly once.
func TestClusterTransactionsExactlyOnce(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	adm := kadm.NewClient(newClient(t, tc.nodes[0].addr, kgo.SeedBrokers(tc.addrs()...)))
	for _, name := range []string{"eos-in", "eos-out"} {
		if resp, err := adm.CreateTopic(admCtx(t), 3, 3, nil, name); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", name, err, resp.Err)
		}
	}
	const n = 600
	prod := newClient(t, tc.addrs()[0], kgo.SeedBrokers(tc.addrs()...), kgo.DefaultProduceTopic("eos-in"))
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i % 13)), Value: []byte(fmt.Sprintf("in-%d", i))})
	}
	if err := prod.ProduceSync(admCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go eosMember(t, tc.nodes[i].addr, fmt.Sprintf("cluster-eos-%d", i), stop, &wg)
	}
	deadline := time.Now().Add(90 * time.Second)
	var got []string
	for {
		got = consumeAll(t, tc.nodes[2].addr, "eos-out", true)
		if len(got) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	got = consumeAll(t, tc.nodes[2].addr, "eos-out", true)
	counts := map[string]int{}
	for _, v := range got {
		counts[v]++
	}
	for i := 0; i < n; i++ {
		if c := counts[fmt.Sprintf("out:in-%d", i)]; c != 1 {
			t.Fatalf("out:in-%d appears %d times (%d output records)", i, c, len(got))
		}
	}
	if len(got) != n {
		t.Fatalf("%d output records, want %d", len(got), n)
	}
}

// TestClusterTxnProduceVerifiedByRemoteCoordinator: KIP-890's produce-path check when the
// transactional id's coordinator is another node than the partition's leader. A batch for a
// partition that is not in the producer's transaction is refused with INVALID_TXN_STATE
// (before, it was taken unverified and left a hanging transaction); after
// AddPartitionsToTxn it is appended (verified over the wire), later batches of the ongoing
// transaction go through, the commit makes them visible to read_committed, and a batch after
// the commit, outside any transaction, is refused again. The same for TxnOffsetCommit on a
// group coordinator that is not the transaction's.
func TestClusterTxnProduceVerifiedByRemoteCoordinator(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	const topic = "verify-remote"
	if code, msg := createTopicOn(t, tc.nodes[0].addr, topic, -1, -1, [][]int32{{2, 3, 1}}); code != 0 {
		t.Fatalf("create: %d %s", code, msg)
	}
	for i := range tc.nodes {
		tc.waitISR(i, topic, []int32{2})
	}
	leader := tc.nodes[1] // node 2 leads the partition
	// Create __transaction_state and pick a transactional id coordinated elsewhere.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorType, fc.CoordinatorKey = 1, "probe"
	admRaw[*kmsg.FindCoordinatorResponse](t, leader.addr, fc)
	var txnID string
	var coord *testBroker
	deadline := time.Now().Add(30 * time.Second)
	for txnID == "" {
		if time.Now().After(deadline) {
			t.Fatal("no transactional id coordinated by another node than the leader")
		}
		for i := 0; i < 50 && txnID == ""; i++ {
			id := fmt.Sprintf("remote-verify-%d", i)
			ps, ok := leader.b.cluster.ctl.Image().Partition("__transaction_state", leader.b.txn.PartitionFor(id))
			if ok && ps.Leader > 0 && ps.Leader != 2 && len(ps.ISR) == 3 {
				txnID, coord = id, tc.nodes[ps.Leader-1]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("transactional id %s coordinated by node %d; partition led by node 2", txnID, coord.b.cfg.NodeID)

	var ip *kmsg.InitProducerIDResponse
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(4)
		req.TransactionalID, req.TransactionTimeoutMillis = &txnID, 60000
		if ip = admRaw[*kmsg.InitProducerIDResponse](t, coord.addr, req); ip.ErrorCode == 0 || time.Now().After(deadline) {
			break
		}
	}
	if ip.ErrorCode != 0 {
		t.Fatalf("InitProducerId on node %d: %d", coord.b.cfg.NodeID, ip.ErrorCode)
	}
	seq := int32(0)
	produce := func(vals ...string) int16 {
		t.Helper()
		recs := make([]logstore.Record, len(vals))
		for i, v := range vals {
			recs[i] = logstore.Record{Value: []byte(v)}
		}
		batch := logstore.AppendBatch(nil, logstore.BatchSpec{Attributes: logstore.AttrTransactional, BaseTimestamp: time.Now().UnixMilli(),
			ProducerID: ip.ProducerID, ProducerEpoch: ip.ProducerEpoch, BaseSequence: seq, Records: recs})
		pr := kmsg.NewPtrProduceRequest()
		pr.SetVersion(9)
		pr.TransactionID, pr.Acks, pr.TimeoutMillis = &txnID, -1, 10000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = topic
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batch
		pt.Partitions = append(pt.Partitions, pp)
		pr.Topics = append(pr.Topics, pt)
		code := admRaw[*kmsg.ProduceResponse](t, leader.addr, pr).Topics[0].Partitions[0].ErrorCode
		if code == 0 {
			seq += int32(len(vals))
		}
		return code
	}
	if code := produce("stray"); code != errInvalidTxnState {
		t.Fatalf("batch outside the transaction: code %d, want INVALID_TXN_STATE (%d)", code, errInvalidTxnState)
	}
	ap := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap.SetVersion(3)
	ap.TransactionalID, ap.ProducerID, ap.ProducerEpoch = txnID, ip.ProducerID, ip.ProducerEpoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{0}
	ap.Topics = append(ap.Topics, at)
	if c := admRaw[*kmsg.AddPartitionsToTxnResponse](t, coord.addr, ap).Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("AddPartitionsToTxn: %d", c)
	}
	if code := produce("a", "b"); code != 0 {
		t.Fatalf("first batch of the transaction: code %d", code)
	}
	if code := produce("c"); code != 0 {
		t.Fatalf("second batch of the transaction: code %d", code)
	}
	// DescribeProducers: the leader names the producer and its open transaction's first
	// offset; a follower, which keeps no producer state, answers NOT_LEADER_OR_FOLLOWER.
	for _, n := range tc.nodes {
		dp := kmsg.NewPtrDescribeProducersRequest()
		dt := kmsg.NewDescribeProducersRequestTopic()
		dt.Topic, dt.Partitions = topic, []int32{0}
		dp.Topics = append(dp.Topics, dt)
		rp := admRaw[*kmsg.DescribeProducersResponse](t, n.addr, dp).Topics[0].Partitions[0]
		if n == leader {
			if rp.ErrorCode != 0 || len(rp.ActiveProducers) != 1 || rp.ActiveProducers[0].ProducerID != ip.ProducerID ||
				rp.ActiveProducers[0].CurrentTxnStartOffset != 0 || rp.ActiveProducers[0].LastSequence != 2 {
				t.Fatalf("DescribeProducers on the leader: %+v", rp)
			}
		} else if rp.ErrorCode != errNotLeaderOrFollower {
			t.Fatalf("DescribeProducers on follower %d: %+v, want NOT_LEADER_OR_FOLLOWER", n.b.cfg.NodeID, rp)
		}
	}
	et := kmsg.NewPtrEndTxnRequest()
	et.SetVersion(3)
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = txnID, ip.ProducerID, ip.ProducerEpoch, true
	if r := admRaw[*kmsg.EndTxnResponse](t, coord.addr, et); r.ErrorCode != 0 {
		t.Fatalf("EndTxn: %d", r.ErrorCode)
	}
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = consumeAll(t, leader.addr, topic, true); len(got) == 3 {
			break
		}
	}
	if fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("read_committed after the commit: %v, want [a b c]", got)
	}
	if code := produce("late"); code != errInvalidTxnState {
		t.Fatalf("batch after the commit: code %d, want INVALID_TXN_STATE", code)
	}

	// TxnOffsetCommit on a group coordinator that is not the transaction's: verified there
	// too (INVALID_TXN_STATE before AddOffsetsToTxn, accepted after, committed by EndTxn).
	var group string
	var groupNode *testBroker
	for deadline := time.Now().Add(30 * time.Second); group == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no group coordinated by another node than the transaction's")
		}
		for i := 0; i < 50 && group == ""; i++ {
			g := fmt.Sprintf("remote-verify-group-%d", i)
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.SetVersion(3)
			fc.CoordinatorKey = g
			if r := admRaw[*kmsg.FindCoordinatorResponse](t, leader.addr, fc); r.ErrorCode == 0 && r.NodeID != coord.b.cfg.NodeID {
				group, groupNode = g, tc.nodes[r.NodeID-1]
			}
		}
	}
	offsetCommit := func() int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.SetVersion(3)
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = txnID, group, ip.ProducerID, ip.ProducerEpoch, -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 3, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return admRaw[*kmsg.TxnOffsetCommitResponse](t, groupNode.addr, req).Topics[0].Partitions[0].ErrorCode
	}
	if code := offsetCommit(); code != errInvalidTxnState {
		t.Fatalf("TxnOffsetCommit outside a transaction: code %d, want INVALID_TXN_STATE", code)
	}
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.SetVersion(3)
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = txnID, ip.ProducerID, ip.ProducerEpoch, group
	if r := admRaw[*kmsg.AddOffsetsToTxnResponse](t, coord.addr, ao); r.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %d", r.ErrorCode)
	}
	code := offsetCommit()
	for deadline := time.Now().Add(20 * time.Second); code == 14 /* COORDINATOR_LOAD_IN_PROGRESS */ && time.Now().Before(deadline); code = offsetCommit() {
		time.Sleep(100 * time.Millisecond) // the group's offsets partition is still loading
	}
	if code != 0 {
		t.Fatalf("TxnOffsetCommit in the transaction: code %d", code)
	}
	if r := admRaw[*kmsg.EndTxnResponse](t, coord.addr, et); r.ErrorCode != 0 {
		t.Fatalf("EndTxn (offsets): %d", r.ErrorCode)
	}
	var committed int64 = -2
	for deadline := time.Now().Add(20 * time.Second); committed != 3 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		of := kmsg.NewPtrOffsetFetchRequest()
		of.SetVersion(5)
		of.Group = group
		ot := kmsg.NewOffsetFetchRequestTopic()
		ot.Topic, ot.Partitions = topic, []int32{0}
		of.Topics = append(of.Topics, ot)
		if r := admRaw[*kmsg.OffsetFetchResponse](t, groupNode.addr, of); r.ErrorCode == 0 && len(r.Topics) == 1 {
			committed = r.Topics[0].Partitions[0].Offset
		}
	}
	if committed != 3 {
		t.Fatalf("committed offset after EndTxn: %d, want 3", committed)
	}
}
