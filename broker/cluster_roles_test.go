package broker

import (
	"fmt"
	"io"
	"net"
	"os"
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
// node that does not follow the log), INCONSISTENT_CLUSTER_ID, UNKNOWN_TOPIC_OR_PARTITION
// (DescribeQuorum of another topic). Last, the active controller removes itself: leadership
// moves, and it stays an observer that still serves.
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
	tc.waitControllers(1, 2, 3)
	epoch := tc.nodes[leader-1].b.cluster.ctl.Term()
	// A combined voter's nodes entry: its registered controller endpoint (its Kafka
	// listener), then its Raft address.
	var raftNodes []string
	for i, v := range tc.voters {
		raftNodes = append(raftNodes, fmt.Sprintf("%d:CONTROLLER://%s %d:RAFT://%s", v.ID, tc.nodes[i].addr, v.ID, v.Addr))
	}
	want := fmt.Sprintf("leader=%d epoch=%d voters=[1 2 3] observers=[4] nodes=%v", leader, epoch, raftNodes)
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
	want = fmt.Sprintf("leader=%d epoch=%d voters=[1 2 3 4] observers=[] nodes=%v", leader, epoch, append(raftNodes, "4:RAFT://"+raft4))
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
	want = fmt.Sprintf("leader=%d epoch=%d voters=%v observers=[%d] nodes=%v", leader, epoch, voters, removed, nodes)
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

	// Remove the active controller itself (sent to it): it hands leadership over first, and
	// the new active controller removes it; as a registered broker it stays an observer.
	if r := removeRaftVoter(t, tc.nodes[leader-1].addr, clusterID, leader); r.ErrorCode != 0 || r.ErrorMessage != nil {
		t.Fatalf("RemoveRaftVoter %d (the active controller): %d %s", leader, r.ErrorCode, errMsg(r.ErrorMessage))
	}
	newLeader, _ := tc.nodes[leader-1].b.cluster.ctl.Leader()
	if newLeader == leader || newLeader < 0 {
		t.Fatalf("leader after removing the active controller %d: %d", leader, newLeader)
	}
	voters = slices.DeleteFunc(voters, func(id int32) bool { return id == leader })
	observers := slices.Sorted(slices.Values([]int32{removed, leader}))
	for _, addr := range []string{n4.addr, tc.nodes[leader-1].addr} {
		got, p := quorumView(t, addr)
		if !strings.Contains(got, fmt.Sprintf("leader=%d ", newLeader)) || !strings.Contains(got, fmt.Sprintf("voters=%v observers=%v", voters, observers)) ||
			p.LeaderEpoch <= int32(epoch) {
			t.Fatalf("DescribeQuorum from %s after removing the active controller: %s (epoch before %d)", addr, got, epoch)
		}
	}
	if code, msg := createTopicOn(t, tc.nodes[leader-1].addr, "after-remove-leader", 2, 4, nil); code != 0 {
		t.Fatalf("create through the removed controller %d: %d %s", leader, code, msg)
	}
	for i := range tc.nodes {
		tc.waitISR(i, "after-remove-leader", nil)
	}
	produceConsume(t, tc.nodes[leader-1].addr, "after-remove-leader", 50)
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
			"cluster: node 4 is not among the voters and needs its own raft address (-controller-listen)"},
		{ClusterConfig{Voters: []controller.Voter{{ID: 1, Addr: "127.0.0.1:1"}}, RaftAddr: "127.0.0.1:0"},
			"cluster: node 4 is not among the voters and needs controller bootstrap servers (-controller-bootstrap-servers)"},
		{ClusterConfig{Roles: RoleController, RaftAddr: "127.0.0.1:0"},
			"cluster: node 4 is not among the voters and needs controller bootstrap servers (-controller-bootstrap-servers)"},
		{ClusterConfig{Roles: RoleBroker, Voters: []controller.Voter{{ID: 4, Addr: "127.0.0.1:0"}}},
			"cluster: node 4 is among the controller quorum voters, so it must have the controller role"},
		{ClusterConfig{Roles: 4, Voters: []controller.Voter{{ID: 4, Addr: "127.0.0.1:0"}}},
			"cluster: node 4 has no valid roles (4)"},
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

// TestClusterRolesControllerOnlyNodes: three controller-only voters (process.roles
// =controller) and three broker-only nodes started with just the controllers as bootstrap
// servers (no voters, no cluster id). The controllers register (KIP-919) and are reached
// through their controller endpoints: the brokers learn the cluster id from them
// (DescribeCluster for CONTROLLER endpoints), register, follow the log and serve an RF 3
// topic created through a broker (forwarded to the controller-only active controller) with
// acks=all, byte for byte on every replica. A controller's listener offers only the
// controller APIs (ApiVersions lists exactly them; a Metadata request closes the
// connection) and answers DescribeCluster for controllers, not brokers; Metadata from a
// broker lists only brokers and names a broker as controller. Stopping the active
// controller elects another controller-only node, and topics are still created and used. A
// fourth controller-only node started outside the voters registers through the bootstrap
// servers, becomes an observer and is promoted by AddRaftVoter.
func TestClusterRolesControllerOnlyNodes(t *testing.T) {
	start := time.Now()
	tc := &testCluster{t: t}
	ctlMod := func(c *Config) {
		c.Cluster = ClusterConfig{Roles: RoleController, Voters: tc.voters, SessionTimeout: 2 * time.Second,
			ReplicaLagTimeMax: 3 * time.Second, RaftTimeout: 300 * time.Millisecond, ControllerOpTimeout: 10 * time.Second}
	}
	for i := 0; i < 3; i++ {
		tc.voters = append(tc.voters, controller.Voter{ID: int32(i + 1), Addr: "127.0.0.1:" + strconv.Itoa(freePort(t))})
	}
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		n := startBroker(t, dir, func(c *Config) { c.NodeID = int32(i + 1); ctlMod(c) })
		tc.nodes, tc.dirs = append(tc.nodes, n), append(tc.dirs, dir)
	}
	ctlAddrs := tc.addrs()
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		n := startBroker(t, dir, func(c *Config) {
			c.NodeID = int32(i + 4)
			c.Cluster = ClusterConfig{ControllerBootstrap: ctlAddrs, RaftAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
				SessionTimeout: 2 * time.Second, ReplicaLagTimeMax: 3 * time.Second,
				RaftTimeout: 300 * time.Millisecond, ControllerOpTimeout: 10 * time.Second}
			c.Groups.InitialRebalanceDelay = 0
		})
		tc.nodes, tc.dirs = append(tc.nodes, n), append(tc.dirs, dir)
	}
	tc.waitBrokers(3)
	tc.waitControllers(1, 2, 3)
	t.Logf("cluster up after %v", time.Since(start))
	clusterID := tc.nodes[0].b.ClusterID()
	for i, n := range tc.nodes {
		if n.b.ClusterID() != clusterID {
			t.Fatalf("node %d cluster id %q, want %q", i+1, n.b.ClusterID(), clusterID)
		}
	}
	if ids := brokerIDs(tc.nodes[0].b.cluster.ctl.Image()); fmt.Sprint(ids) != "[4 5 6]" {
		t.Fatalf("registered brokers %v, want [4 5 6]", ids)
	}

	// A controller's listener: the controller APIs only.
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(2) // admRaw reads v3's header as flexible, which ApiVersions' is not
	var keys []int16
	for _, k := range admRaw[*kmsg.ApiVersionsResponse](t, ctlAddrs[0], av).ApiKeys {
		keys = append(keys, k.ApiKey)
	}
	var want []int16
	for k := range controllerAPIs {
		want = append(want, k)
	}
	slices.Sort(want)
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("controller ApiVersions keys %v, want %v", keys, want)
	}
	if n := len(admRaw[*kmsg.ApiVersionsResponse](t, tc.nodes[3].addr, av).ApiKeys); n <= len(want) {
		t.Fatalf("broker ApiVersions lists %d keys", n)
	}
	assertClosesOn(t, ctlAddrs[1], kmsg.NewPtrMetadataRequest())
	for addr, want := range map[string]string{ctlAddrs[0]: "controller", tc.nodes[3].addr: "broker"} {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.SetVersion(4)
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeBroker
		r.ResourceName = map[bool]string{true: "1", false: "4"}[want == "controller"]
		r.ConfigNames = []string{"process.roles"}
		req.Resources = append(req.Resources, r)
		resp := admRaw[*kmsg.DescribeConfigsResponse](t, addr, req)
		if len(resp.Resources) != 1 || len(resp.Resources[0].Configs) != 1 || resp.Resources[0].Configs[0].Value == nil ||
			*resp.Resources[0].Configs[0].Value != want {
			t.Fatalf("process.roles from %s: %+v, want %s", addr, resp.Resources, want)
		}
	}

	// DescribeCluster: controllers on a controller's listener, brokers on a broker's.
	leader, _ := tc.nodes[0].b.cluster.ctl.Leader()
	describe := func(addr string, typ int8) *kmsg.DescribeClusterResponse {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.SetVersion(1)
		req.EndpointType = typ
		return admRaw[*kmsg.DescribeClusterResponse](t, addr, req)
	}
	dc := describe(ctlAddrs[2], 2)
	var nodes []string
	for _, b := range dc.Brokers {
		nodes = append(nodes, fmt.Sprintf("%d@%s:%d", b.NodeID, b.Host, b.Port))
	}
	wantNodes := fmt.Sprintf("[1@%s 2@%s 3@%s]", ctlAddrs[0], ctlAddrs[1], ctlAddrs[2])
	if dc.ErrorCode != 0 || dc.ClusterID != clusterID || dc.ControllerID != leader || dc.EndpointType != 2 || fmt.Sprint(nodes) != wantNodes {
		t.Fatalf("DescribeCluster(CONTROLLER) from a controller: %+v %v, want controller %d nodes %s", dc, nodes, leader, wantNodes)
	}
	if dc := describe(ctlAddrs[2], 1); dc.ErrorCode != errMismatchedEndpointType {
		t.Fatalf("DescribeCluster(BROKER) from a controller: %d", dc.ErrorCode)
	}
	if dc := describe(tc.nodes[4].addr, 2); dc.ErrorCode != errMismatchedEndpointType {
		t.Fatalf("DescribeCluster(CONTROLLER) from a broker: %d", dc.ErrorCode)
	}
	if dc := describe(tc.nodes[4].addr, 1); dc.ErrorCode != 0 || len(dc.Brokers) != 3 || dc.ControllerID < 4 {
		t.Fatalf("DescribeCluster(BROKER) from a broker: %+v", dc)
	}

	// An RF 3 topic through a broker, acks=all, identical replicas.
	if code, msg := createTopicOn(t, tc.nodes[3].addr, "ctl-only", 3, 3, nil); code != 0 {
		t.Fatalf("create through a broker: %d %s", code, msg)
	}
	for i := range tc.nodes {
		tc.waitISR(i, "ctl-only", nil)
	}
	md, err := kadm.NewClient(newClient(t, tc.nodes[5].addr)).Metadata(admCtx(t), "ctl-only")
	if err != nil {
		t.Fatal(err)
	}
	if ids := md.Brokers.NodeIDs(); fmt.Sprint(ids) != "[4 5 6]" || md.Controller < 4 || md.Cluster != clusterID {
		t.Fatalf("Metadata from a broker: brokers %v, controller %d, cluster %q", ids, md.Controller, md.Cluster)
	}
	produceConsume(t, tc.nodes[3].addr, "ctl-only", 300)
	if hws := tc.checkReplicasIdentical("ctl-only", 3); hws[0]+hws[1]+hws[2] != 300 {
		t.Fatalf("ctl-only high watermarks %v, want 300 records in all", hws)
	}
	for i := 0; i < 3; i++ {
		if entries, _ := os.ReadDir(tc.dirs[i]); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), "ctl-only") }) {
			t.Fatalf("controller-only node %d holds a replica", i+1)
		}
	}

	// The active controller stops: another controller-only node leads, and the cluster
	// still creates and serves topics.
	tc.nodes[leader-1].stop()
	var next int32 = -1
	deadline := time.Now().Add(20 * time.Second)
	for next < 0 || next == leader {
		if time.Now().After(deadline) {
			t.Fatalf("no new active controller after node %d stopped", leader)
		}
		time.Sleep(50 * time.Millisecond)
		next, _ = tc.nodes[3].b.cluster.ctl.Leader()
	}
	if next > 3 {
		t.Fatalf("broker-only node %d leads the quorum", next)
	}
	if code, msg := createTopicOn(t, tc.nodes[4].addr, "after-failover", 2, 3, nil); code != 0 {
		t.Fatalf("create after the controller failover: %d %s", code, msg)
	}
	for i := 3; i < 6; i++ {
		tc.waitISR(i, "after-failover", nil)
	}
	produceConsume(t, tc.nodes[5].addr, "after-failover", 100)
	tc.checkReplicasIdentical("after-failover", 2)
	t.Logf("failover done after %v", time.Since(start))

	// A new controller-only node outside the voters: an observer until promoted.
	raft7 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	live := []string{tc.nodes[next-1].addr}
	n7 := startBroker(t, "", func(c *Config) {
		c.NodeID = 7
		c.Cluster = ClusterConfig{Roles: RoleController, ControllerBootstrap: live, RaftAddr: raft7,
			SessionTimeout: 2 * time.Second, RaftTimeout: 300 * time.Millisecond, ControllerOpTimeout: 10 * time.Second}
	})
	tc.nodes = append(tc.nodes, n7)
	tc.waitControllers(7)
	servers, err := tc.nodes[next-1].b.cluster.ctl.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := findServer(servers, 7); !ok || s.Voter || s.Addr != raft7 {
		t.Fatalf("node 7 in the Raft configuration: %+v", servers)
	}
	if r := addRaftVoter(t, tc.nodes[3].addr, clusterID, 7, raft7); r.ErrorCode != 0 {
		t.Fatalf("AddRaftVoter 7: %d %s", r.ErrorCode, errMsg(r.ErrorMessage))
	}
	got, p := quorumView(t, n7.addr)
	if term := tc.nodes[next-1].b.cluster.ctl.Term(); p.LeaderID != next || p.LeaderEpoch != int32(term) || term == 0 ||
		!strings.Contains(got, "voters=[1 2 3 7] observers=[4 5 6]") ||
		!strings.Contains(got, fmt.Sprintf("7:CONTROLLER://%s 7:RAFT://%s", n7.addr, raft7)) {
		t.Fatalf("DescribeQuorum after promoting 7: %s (leader term %d)", got, term)
	}
	dc = describe(n7.addr, 2)
	nodes = nodes[:0]
	for _, b := range dc.Brokers {
		nodes = append(nodes, fmt.Sprint(b.NodeID))
	}
	if fmt.Sprint(nodes) != "[1 2 3 7]" || dc.ControllerID != next {
		t.Fatalf("DescribeCluster(CONTROLLER) from node 7: controllers %v, controller %d", nodes, dc.ControllerID)
	}
	t.Logf("done after %v", time.Since(start))
}

func brokerIDs(img *controller.Image) []int32 {
	var ids []int32
	for _, b := range img.Brokers() {
		ids = append(ids, b.ID)
	}
	return ids
}

// assertClosesOn sends req and expects the connection closed without an answer.
func assertClosesOn(t *testing.T, addr string, req kmsg.Request) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("roles-test")).AppendRequest(nil, req, 1)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := conn.Read(b[:]); err != io.EOF {
		t.Fatalf("%s: read %d bytes, err %v; want the connection closed", kmsg.NameForKey(req.Key()), n, err)
	}
}
