package broker

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

// quorumView is the content of a DescribeQuorum answer that does not move by itself (the high
// watermark does), as one comparable string: leader, epoch, voters, observers and the
// voters' RAFT listeners.
func quorumView(t *testing.T, addr string) (string, kmsg.DescribeQuorumResponseTopicPartition) {
	t.Helper()
	req := kmsg.NewPtrDescribeQuorumRequest()
	req.SetVersion(2)
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	req.Topics = append(req.Topics, rt)
	resp := admRaw[*kmsg.DescribeQuorumResponse](t, addr, req)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Topic != "__cluster_metadata" || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("DescribeQuorum from %s: %+v", addr, resp)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.Partition != 0 {
		t.Fatalf("DescribeQuorum from %s: partition %+v", addr, p)
	}
	ids := func(rs []kmsg.DescribeQuorumResponseTopicPartitionReplicaState) []int32 {
		out := []int32{}
		for _, r := range rs {
			out = append(out, r.ReplicaID)
		}
		return out
	}
	var nodes []string
	for _, n := range resp.Nodes {
		for _, l := range n.Listeners {
			nodes = append(nodes, fmt.Sprintf("%d:%s://%s", n.NodeID, l.Name, net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))))
		}
	}
	return fmt.Sprintf("leader=%d epoch=%d voters=%v observers=%v nodes=%v", p.LeaderID, p.LeaderEpoch, ids(p.CurrentVoters), ids(p.Observers), nodes), p
}

func addRaftVoter(t *testing.T, addr string, clusterID string, id int32, raftAddr string) *kmsg.AddRaftVoterResponse {
	t.Helper()
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.SetVersion(1)
	req.ClusterID, req.VoterID = &clusterID, id
	if raftAddr != "" {
		host, port, _ := net.SplitHostPort(raftAddr)
		p, _ := strconv.Atoi(port)
		l := kmsg.NewAddRaftVoterRequestListener()
		l.Name, l.Host, l.Port = "RAFT", host, uint16(p)
		req.Listeners = append(req.Listeners, l)
	}
	return admRaw[*kmsg.AddRaftVoterResponse](t, addr, req)
}

func removeRaftVoter(t *testing.T, addr string, clusterID string, id int32) *kmsg.RemoveRaftVoterResponse {
	t.Helper()
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.ClusterID, req.VoterID = &clusterID, id
	return admRaw[*kmsg.RemoveRaftVoterResponse](t, addr, req)
}

func errMsg(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// createTopicOn creates a topic through one node (CreateTopics v7 sent to it, not to the
// controller a client would pick) and returns its answer's code and message.
func createTopicOn(t *testing.T, addr, topic string, partitions int32, rf int16, assignment [][]int32) (int16, string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = 20000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, rf
	for p, rs := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), rs
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	req.Topics = append(req.Topics, rt)
	resp := admRaw[*kmsg.CreateTopicsResponse](t, addr, req)
	if len(resp.Topics) != 1 {
		t.Fatalf("CreateTopics %s: %+v", topic, resp)
	}
	return resp.Topics[0].ErrorCode, errMsg(resp.Topics[0].ErrorMessage)
}

// produceConsume produces n records to topic with acks=all through a client that knows only
// addr, and reads them back the same way; the values must come back exactly.
func produceConsume(t *testing.T, addr, topic string, n int) {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	var recs []*kgo.Record
	var want []string
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("%s-%04d", topic, i)
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i % 7)), Value: []byte(v)})
		want = append(want, v)
	}
	if err := cl.ProduceSync(admCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s through %s: %v", topic, addr, err)
	}
	cl.Close()
	got := consumeAll(t, addr, topic, false)
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("consumed from %s through %s: %d records %v..., want the %d produced", topic, addr, len(got), got[:min(len(got), 5)], n)
	}
}

// waitISR waits until node i's image shows every partition of topic with the full ISR and
// the given leaders (nil: any).
func (tc *testCluster) waitISR(i int, topic string, leaders []int32) *controller.TopicInfo {
	tc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ti := tc.nodes[i].b.cluster.ctl.Image().Topic(topic)
		ok := ti != nil
		for p := 0; ok && p < len(ti.Partitions); p++ {
			ps := ti.Partitions[p]
			ok = len(ps.ISR) == len(ps.Replicas) && (leaders == nil || ps.Leader == leaders[p])
		}
		if ok {
			return ti
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("node %d: %s did not reach its full ISR: %+v", i+1, topic, ti)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterRolesBrokerOnlyNodeAndVoterChanges: three combined nodes and a fourth,
// broker-only node started with nothing but the controller bootstrap servers (no voters,
// no cluster id). It learns the cluster id, registers through the bootstrap servers, is
// made a Raft non-voter (DescribeQuorum shows it as an observer, from any node), follows
// the metadata log, hosts replicas of topics created through it (RF 4, and an assignment
// where it leads partition 0), replicates them byte for byte, and serves produce and
// consume. AddRaftVoter (sent to another node, forwarded) promotes it: four voters;
// RemoveRaftVoter (sent to it) removes another voter, which stays an observer: three voters
// again; the demoted node still follows the log, and topics are created through it and used.
// Errors: DUPLICATE_VOTER, VOTER_NOT_FOUND (unknown id, an observer), REQUEST_TIMED_OUT (a
// node that does not follow the log), INCONSISTENT_CLUSTER_ID, INVALID_REQUEST (removing
// the active controller), UNKNOWN_TOPIC_OR_PARTITION (DescribeQuorum of another topic).
func TestClusterRolesBrokerOnlyNodeAndVoterChanges(t *testing.T) {
	start := time.Now()
	tc := startTestCluster(t, 3, nil)
	const clusterID = "spate-test-cluster"
	raft4 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	dir4 := t.TempDir()
	n4 := startBroker(t, dir4, func(c *Config) {
		c.NodeID = 4
		c.Cluster = ClusterConfig{
			ControllerBootstrap: tc.addrs(), RaftAddr: raft4,
			SessionTimeout: 2 * time.Second, ReplicaLagTimeMax: 3 * time.Second,
			RaftTimeout: 300 * time.Millisecond, ControllerOpTimeout: 10 * time.Second,
		}
		c.Groups.InitialRebalanceDelay = 0
	})
	tc.nodes, tc.dirs = append(tc.nodes, n4), append(tc.dirs, dir4)
	tc.waitBrokers(4)
	t.Logf("broker-only node registered and unfenced after %v", time.Since(start))

	if got := n4.b.ClusterID(); got != clusterID || tc.nodes[0].b.ClusterID() != clusterID {
		t.Fatalf("cluster ids: broker-only node %q, node 1 %q, want %q", got, tc.nodes[0].b.ClusterID(), clusterID)
	}
	if n4.b.cluster.isVoter() || n4.b.cluster.ctl.IsLeader() {
		t.Fatal("the broker-only node is a voter")
	}
	servers, err := n4.b.cluster.ctl.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := findServer(servers, 4); !ok || s.Voter || s.Addr != raft4 {
		t.Fatalf("the broker-only node's own Raft configuration: %+v", servers)
	}

	leader, _ := tc.nodes[0].b.cluster.ctl.Leader()
	var raftNodes []string
	for _, v := range tc.voters {
		raftNodes = append(raftNodes, fmt.Sprintf("%d:RAFT://%s", v.ID, v.Addr))
	}
	want := fmt.Sprintf("leader=%d epoch=-1 voters=[1 2 3] observers=[4] nodes=%v", leader, raftNodes)
	for _, addr := range []string{n4.addr, tc.nodes[leader-1].addr} {
		got, p := quorumView(t, addr)
		if got != want {
			t.Fatalf("DescribeQuorum from %s:\n got %s\nwant %s", addr, got, want)
		}
		for _, v := range p.CurrentVoters {
			if wantLEO := map[bool]int64{true: p.HighWatermark, false: -1}[v.ReplicaID == leader]; v.LogEndOffset != wantLEO || p.HighWatermark <= 0 {
				t.Fatalf("DescribeQuorum from %s: voter %+v, high watermark %d", addr, v, p.HighWatermark)
			}
		}
	}

	// Topics created through the broker-only node: RF 4 (so it hosts every partition), and a
	// manual assignment where it is the preferred leader of partition 0.
	if code, msg := createTopicOn(t, n4.addr, "rf4", 3, 4, nil); code != 0 {
		t.Fatalf("create rf4 through the broker-only node: %d %s", code, msg)
	}
	assignment := [][]int32{{4, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 1}}
	if code, msg := createTopicOn(t, n4.addr, "roles", -1, -1, assignment); code != 0 {
		t.Fatalf("create roles through the broker-only node: %d %s", code, msg)
	}
	for i := range tc.nodes {
		ti := tc.waitISR(i, "rf4", nil)
		for p, ps := range ti.Partitions {
			if r := slices.Sorted(slices.Values(ps.Replicas)); fmt.Sprint(r) != "[1 2 3 4]" {
				t.Fatalf("node %d: rf4-%d replicas %v", i+1, p, ps.Replicas)
			}
		}
		ti = tc.waitISR(i, "roles", []int32{4, 1, 2})
		for p, ps := range ti.Partitions {
			if fmt.Sprint(ps.Replicas) != fmt.Sprint(assignment[p]) {
				t.Fatalf("node %d: roles-%d replicas %v, want %v", i+1, p, ps.Replicas, assignment[p])
			}
		}
	}
	md, err := kadm.NewClient(newClient(t, n4.addr)).Metadata(admCtx(t), "roles")
	if err != nil {
		t.Fatal(err)
	}
	if ids := md.Brokers.NodeIDs(); fmt.Sprint(ids) != "[1 2 3 4]" || md.Controller != leader || md.Cluster != clusterID {
		t.Fatalf("Metadata from the broker-only node: brokers %v, controller %d, cluster %q", ids, md.Controller, md.Cluster)
	}
	if p := md.Topics["roles"].Partitions[0]; p.Leader != 4 || fmt.Sprint(p.Replicas) != "[4 1 2 3]" || len(p.ISR) != 4 {
		t.Fatalf("Metadata from the broker-only node: roles-0 %+v", p)
	}
	produceConsume(t, n4.addr, "roles", 300)
	produceConsume(t, n4.addr, "rf4", 200)
	hws := tc.checkReplicasIdentical("roles", 3)
	if total := hws[0] + hws[1] + hws[2]; total != 300 {
		t.Fatalf("roles high watermarks %v, want 300 records in all", hws)
	}
	tc.checkReplicasIdentical("rf4", 3)
	if p := tc.partitionOn(3, "roles", 0); p == nil || !p.isLeader() {
		t.Fatal("the broker-only node does not lead roles-0")
	}

	// Promote the broker-only node, through a combined node that is not the leader.
	other := leader%3 + 1
	if r := addRaftVoter(t, tc.nodes[other-1].addr, clusterID, 4, raft4); r.ErrorCode != 0 || r.ErrorMessage != nil {
		t.Fatalf("AddRaftVoter 4 through node %d: %d %s", other, r.ErrorCode, errMsg(r.ErrorMessage))
	}
	want = fmt.Sprintf("leader=%d epoch=-1 voters=[1 2 3 4] observers=[] nodes=%v", leader, append(raftNodes, "4:RAFT://"+raft4))
	for _, addr := range []string{n4.addr, tc.nodes[other-1].addr} {
		if got, _ := quorumView(t, addr); got != want {
			t.Fatalf("DescribeQuorum from %s after AddRaftVoter:\n got %s\nwant %s", addr, got, want)
		}
	}
	if r := addRaftVoter(t, n4.addr, clusterID, 4, raft4); r.ErrorCode != errDuplicateVoter ||
		errMsg(r.ErrorMessage) != "The voter id 4 is already part of the set of voters [1 2 3 4]." {
		t.Fatalf("AddRaftVoter 4 again: %d %s, want DUPLICATE_VOTER", r.ErrorCode, errMsg(r.ErrorMessage))
	}
	if r := addRaftVoter(t, n4.addr, clusterID, 9, "127.0.0.1:1"); r.ErrorCode != errRequestTimedOut ||
		!strings.HasPrefix(errMsg(r.ErrorMessage), "Node 9 does not follow the metadata log") {
		t.Fatalf("AddRaftVoter 9 (unknown): %d %s, want REQUEST_TIMED_OUT", r.ErrorCode, errMsg(r.ErrorMessage))
	}
	if r := addRaftVoter(t, n4.addr, "another-cluster", 4, raft4); r.ErrorCode != errInconsistentClusterID {
		t.Fatalf("AddRaftVoter with another cluster id: %d %s, want INCONSISTENT_CLUSTER_ID", r.ErrorCode, errMsg(r.ErrorMessage))
	}

	// Remove a combined voter that is not the leader, through the new voter: it stays an
	// observer, as it is a registered broker.
	removed := other
	if r := removeRaftVoter(t, n4.addr, clusterID, removed); r.ErrorCode != 0 || r.ErrorMessage != nil {
		t.Fatalf("RemoveRaftVoter %d: %d %s", removed, r.ErrorCode, errMsg(r.ErrorMessage))
	}
	var voters []int32
	var nodes []string
	for id := int32(1); id <= 4; id++ {
		if id != removed {
			voters = append(voters, id)
			nodes = append(nodes, map[bool]string{true: "4:RAFT://" + raft4, false: raftNodes[min(id, 3)-1]}[id == 4])
		}
	}
	want = fmt.Sprintf("leader=%d epoch=-1 voters=%v observers=[%d] nodes=%v", leader, voters, removed, nodes)
	for _, addr := range []string{n4.addr, tc.nodes[leader-1].addr, tc.nodes[removed-1].addr} {
		if got, _ := quorumView(t, addr); got != want {
			t.Fatalf("DescribeQuorum from %s after RemoveRaftVoter:\n got %s\nwant %s", addr, got, want)
		}
	}
	for _, c := range []struct {
		id   int32
		code int16
		msg  string
	}{
		{removed, errVoterNotFound, fmt.Sprintf("Node %d is not part of the set of voters %v.", removed, voters)},
		{99, errVoterNotFound, fmt.Sprintf("Node 99 is not part of the set of voters %v.", voters)},
		{leader, errInvalidRequest, fmt.Sprintf("Node %d is the active controller, which cannot remove itself: retry once another voter leads.", leader)},
	} {
		if r := removeRaftVoter(t, tc.nodes[removed-1].addr, clusterID, c.id); r.ErrorCode != c.code || errMsg(r.ErrorMessage) != c.msg {
			t.Fatalf("RemoveRaftVoter %d: %d %q, want %d %q", c.id, r.ErrorCode, errMsg(r.ErrorMessage), c.code, c.msg)
		}
	}
	if r := removeRaftVoter(t, n4.addr, "another-cluster", 1); r.ErrorCode != errInconsistentClusterID {
		t.Fatalf("RemoveRaftVoter with another cluster id: %d, want INCONSISTENT_CLUSTER_ID", r.ErrorCode)
	}

	// DescribeQuorum of anything but __cluster_metadata-0.
	dq := kmsg.NewPtrDescribeQuorumRequest()
	dq.SetVersion(2)
	dt := kmsg.NewDescribeQuorumRequestTopic()
	dt.Topic = "rf4"
	dt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	dq.Topics = append(dq.Topics, dt)
	if r := admRaw[*kmsg.DescribeQuorumResponse](t, n4.addr, dq); len(r.Topics) != 1 || r.Topics[0].Topic != "rf4" ||
		len(r.Topics[0].Partitions) != 1 || r.Topics[0].Partitions[0].ErrorCode != errUnknownTopicOrPartition {
		t.Fatalf("DescribeQuorum of rf4: %+v", r)
	}

	// The cluster still creates topics, through the demoted node (its handler waits for its
	// own image: it still follows the log) and through the new voter, and uses them.
	if code, msg := createTopicOn(t, tc.nodes[removed-1].addr, "after-remove", 2, 4, nil); code != 0 {
		t.Fatalf("create through the demoted node %d: %d %s", removed, code, msg)
	}
	if code, msg := createTopicOn(t, n4.addr, "after-remove-3", 1, 3, nil); code != 0 {
		t.Fatalf("create through node 4: %d %s", code, msg)
	}
	for i := range tc.nodes {
		tc.waitISR(i, "after-remove", nil)
		tc.waitISR(i, "after-remove-3", nil)
	}
	produceConsume(t, tc.nodes[removed-1].addr, "after-remove", 100)
	produceConsume(t, n4.addr, "after-remove-3", 50)
	tc.checkReplicasIdentical("after-remove", 2)
	t.Logf("done after %v", time.Since(start))
}

// TestClusterRolesConfig: a broker-only node needs its own Raft address and controller
// bootstrap servers; a single node answers DescribeQuorum as its own quorum and refuses
// voter changes with UNSUPPORTED_VERSION.
func TestClusterRolesConfig(t *testing.T) {
	for _, c := range []struct {
		cc   ClusterConfig
		want string
	}{
		{ClusterConfig{ControllerBootstrap: []string{"127.0.0.1:1"}},
			"cluster: node 4 is broker-only (not among the voters) and needs its own raft address (-controller-listen)"},
		{ClusterConfig{Voters: []controller.Voter{{ID: 1, Addr: "127.0.0.1:1"}}, RaftAddr: "127.0.0.1:0"},
			"cluster: node 4 is broker-only (not among the voters) and needs controller bootstrap servers (-controller-bootstrap-servers)"},
	} {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.NodeID, cfg.ClusterID, cfg.Cluster = t.TempDir(), 4, "given", c.cc
		b, err := New(cfg)
		if err == nil {
			b.Close()
			t.Fatalf("%+v: started", c.cc)
		}
		if err.Error() != c.want {
			t.Fatalf("%+v:\n got %v\nwant %s", c.cc, err, c.want)
		}
	}

	tb := startBroker(t, "", nil)
	if got, _ := quorumView(t, tb.addr); got != "leader=1 epoch=-1 voters=[1] observers=[] nodes=[]" {
		t.Fatalf("single node DescribeQuorum: %s", got)
	}
	if r := addRaftVoter(t, tb.addr, tb.b.ClusterID(), 2, "127.0.0.1:1"); r.ErrorCode != errUnsupportedVersion {
		t.Fatalf("single node AddRaftVoter: %d", r.ErrorCode)
	}
	if r := removeRaftVoter(t, tb.addr, tb.b.ClusterID(), 1); r.ErrorCode != errUnsupportedVersion {
		t.Fatalf("single node RemoveRaftVoter: %d", r.ErrorCode)
	}
}
