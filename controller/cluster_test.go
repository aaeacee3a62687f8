package controller

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

// Three-controller tests: replication of the metadata log, failover, restart from disk,
// snapshots, non-voters.

func TestRaftBootstrapElectsOneLeader(t *testing.T) {
	cl := newCluster(t, 3)
	ld := cl.leader()
	servers, err := ld.c.Servers()
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{{1, cl.voters[0].Addr, true}, {2, cl.voters[1].Addr, true}, {3, cl.voters[2].Addr, true}}
	if !reflect.DeepEqual(servers, want) {
		t.Fatalf("servers = %+v, want %+v", servers, want)
	}
	leaders := 0
	for _, nd := range cl.nodes {
		if nd.c.IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	// Followers know the leader, and refuse leader-side operations naming it.
	deadline := time.Now().Add(waitFor)
	for _, nd := range cl.nodes {
		if nd == ld {
			continue
		}
		for {
			_, err = nd.c.CreateTopics(ctxT(t), []TopicSpec{{Name: "x", NumPartitions: 1, ReplicationFactor: 1}}, false)
			var nle *NotLeaderError
			if !errors.As(err, &nle) {
				t.Fatalf("node %d: CreateTopics err = %v, want NotLeaderError", nd.id, err)
			}
			if nle.LeaderID == ld.id && nle.LeaderAddr == ld.addr {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: leader %d at %q, want %d at %q", nd.id, nle.LeaderID, nle.LeaderAddr, ld.id, ld.addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ErrorCode(err) != CodeNotController {
			t.Fatalf("ErrorCode = %d", ErrorCode(err))
		}
	}
}

func TestCreateTopicReplicatedToEveryNode(t *testing.T) {
	cl := newCluster(t, 3)
	epochs := cl.registerBrokers([]int32{1, 2, 3}, nil)
	res := cl.createTopics(TopicSpec{Name: "orders", NumPartitions: 6, ReplicationFactor: 3, Configs: map[string]string{"retention.ms": "1000"}})
	if res[0].ErrorCode != CodeNone || res[0].NumPartitions != 6 || res[0].ReplicationFactor != 3 || res[0].TopicID == ([16]byte{}) {
		t.Fatalf("result %+v", res[0])
	}
	img := cl.converge()
	for _, nd := range cl.nodes {
		if !reflect.DeepEqual(nd.c.Image(), img) {
			t.Fatalf("node %d image differs", nd.id)
		}
	}
	// The striped placement from start 0, shift 0 (zeroRand): first replicas round robin,
	// followers shifted by one more after each wrap.
	wantReplicas := [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}, {1, 3, 2}, {2, 1, 3}, {3, 2, 1}}
	top := img.Topic("orders")
	if top.ID != res[0].TopicID || img.TopicByID(top.ID) != top || !reflect.DeepEqual(top.Configs, map[string]string{"retention.ms": "1000"}) {
		t.Fatalf("topic %+v", top)
	}
	for p, r := range wantReplicas {
		wantPartition(t, img, "orders", int32(p), PartitionState{Replicas: r, ISR: r, Leader: r[0]})
	}
	for id, e := range epochs {
		b := img.Broker(id)
		if b.Fenced || b.Epoch != e || b.Endpoints[0].Port != 9090+id {
			t.Fatalf("broker %+v", b)
		}
	}
}

func TestLeaderFailoverKeepsMetadataAndAcceptsWrites(t *testing.T) {
	cl := newCluster(t, 3)
	cl.registerBrokers([]int32{1, 2, 3}, nil)
	cl.createTopics(TopicSpec{Name: "a", NumPartitions: 3, ReplicationFactor: 3})
	before := cl.converge()

	old := cl.leader()
	cl.stop(old)
	ld := cl.leader()
	if ld == old {
		t.Fatal("stopped node still leader")
	}
	if img := ld.c.Image(); !reflect.DeepEqual(img, before) {
		t.Fatalf("new leader's image differs:\n%s\nvs\n%s", dumpImage(img), dumpImage(before))
	}
	res := cl.createTopics(TopicSpec{Name: "b", NumPartitions: 2, ReplicationFactor: 2})
	if res[0].ErrorCode != CodeNone {
		t.Fatalf("create after failover: %+v", res[0])
	}
	cl.start(old)
	img := cl.converge()
	if img.Topic("a") == nil || img.Topic("b") == nil || !reflect.DeepEqual(img.Topic("a"), before.Topic("a")) {
		t.Fatalf("metadata after failover:\n%s", dumpImage(img))
	}
}

func TestFullRestartFromDiskRestoresIdenticalImage(t *testing.T) {
	cl := newCluster(t, 3)
	epochs := cl.registerBrokers([]int32{1, 2, 3}, []*string{strp("a"), strp("b"), nil})
	cl.createTopics(TopicSpec{Name: "t1", NumPartitions: 4, ReplicationFactor: 2}, TopicSpec{Name: "t2", NumPartitions: 1, ReplicationFactor: 3})
	cl.do(func(c *Controller) error {
		_, err := c.AlterConfigs(ctxT(t), []ConfigChange{{ResourceType: ConfigBroker, ResourceName: "", Set: map[string]string{"log.retention.ms": "5"}}}, false)
		return err
	})
	cl.do(func(c *Controller) error {
		_, _, err := c.AllocateProducerIDs(ctxT(t), 2, epochs[2])
		return err
	})
	before := cl.converge()
	for _, nd := range cl.nodes {
		cl.stop(nd)
	}
	for _, nd := range cl.nodes {
		cl.start(nd)
	}
	cl.leader()
	after := cl.converge()
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("image after restart:\n%s\nwant:\n%s", dumpImage(after), dumpImage(before))
	}
}

func TestSnapshotRestoresIdenticalImage(t *testing.T) {
	cl := newCluster(t, 3, func(c *Config) { c.TrailingLogs = 1 })
	epochs := cl.registerBrokers([]int32{1, 2, 3}, []*string{strp("r1"), strp("r2"), strp("r3")})
	cl.createTopics(TopicSpec{Name: "s", NumPartitions: 5, ReplicationFactor: 3, Configs: map[string]string{"cleanup.policy": "compact"}})
	cl.do(func(c *Controller) error {
		_, _, err := c.AllocateProducerIDs(ctxT(t), 1, epochs[1])
		return err
	})
	cl.do(func(c *Controller) error { return c.ControlledShutdown(ctxT(t), 3) })
	before := cl.converge()
	for _, nd := range cl.nodes {
		if err := nd.c.Snapshot(); err != nil {
			t.Fatalf("node %d: %v", nd.id, err)
		}
	}
	// A restarted node restores from its snapshot (its log is compacted to one entry).
	follower := cl.nodes[0]
	if follower == cl.leader() {
		follower = cl.nodes[1]
	}
	cl.stop(follower)
	cl.start(follower)
	if img := follower.c.Image(); !reflect.DeepEqual(img, before) {
		t.Fatalf("image restored from snapshot:\n%s\nwant:\n%s", dumpImage(img), dumpImage(before))
	}
	// A new node gets the snapshot over the network: the log it would need is gone.
	nv := cl.addNode(4)
	cl.do(func(c *Controller) error { return c.AddNonvoter(ctxT(t), 4, nv.addr) })
	img, err := nv.c.WaitForImage(ctxT(t), func(img *Image) bool { return img.AppliedIndex() >= before.AppliedIndex() })
	if err != nil || !reflect.DeepEqual(img, before) {
		t.Fatalf("non-voter image (%v):\n%s\nwant:\n%s", err, dumpImage(img), dumpImage(before))
	}
}

func TestNonVoterFollowsLogAndRejectsWrites(t *testing.T) {
	cl := newCluster(t, 3)
	cl.registerBrokers([]int32{1, 2, 3}, nil)
	nv := cl.addNode(4)
	cl.do(func(c *Controller) error { return c.AddNonvoter(ctxT(t), 4, nv.addr) })
	cl.createTopics(TopicSpec{Name: "followed", NumPartitions: 2, ReplicationFactor: 3})
	want := cl.converge() // includes node 4
	if nv.c.Image().Topic("followed") == nil {
		t.Fatal("non-voter did not apply the topic")
	}
	servers, err := cl.leader().c.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(servers, func(s Server) bool { return s.ID == 4 }); i < 0 || servers[i].Voter || servers[i].Addr != nv.addr {
		t.Fatalf("servers %+v", servers)
	}
	ld := cl.leader()
	_, err = nv.c.CreateTopics(ctxT(t), []TopicSpec{{Name: "nope", NumPartitions: 1, ReplicationFactor: 1}}, false)
	var nle *NotLeaderError
	if !errors.As(err, &nle) || nle.LeaderID != ld.id || nle.LeaderAddr != ld.addr {
		t.Fatalf("non-voter CreateTopics err = %v, want NotLeaderError naming node %d", err, ld.id)
	}
	if _, err := nv.c.RegisterBroker(ctxT(t), BrokerRegistration{ID: 4}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("non-voter RegisterBroker err = %v", err)
	}
	if err := nv.c.AddVoter(ctxT(t), 5, "127.0.0.1:1"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("non-voter AddVoter err = %v", err)
	}
	if !reflect.DeepEqual(nv.c.Image(), want) {
		t.Fatal("non-voter image changed")
	}
	// It never becomes leader, even when it is the only node left with the leader gone.
	cl.stop(ld)
	time.Sleep(time.Second)
	if nv.c.IsLeader() {
		t.Fatal("non-voter became leader")
	}
}

func TestProducerIDBlocksNeverOverlapAcrossFailover(t *testing.T) {
	cl := newCluster(t, 3)
	epochs := cl.registerBrokers([]int32{1, 2, 3}, nil)
	var firsts []int64
	alloc := func(broker int32) {
		cl.do(func(c *Controller) error {
			first, size, err := c.AllocateProducerIDs(ctxT(t), broker, epochs[broker])
			if err == nil {
				if size != 1000 {
					t.Fatalf("size %d", size)
				}
				firsts = append(firsts, first)
			}
			return err
		})
	}
	alloc(1)
	alloc(2)
	alloc(3)
	cl.converge()
	cl.stop(cl.leader())
	alloc(1)
	alloc(2)
	if want := []int64{0, 1000, 2000, 3000, 4000}; !reflect.DeepEqual(firsts, want) {
		t.Fatalf("blocks start at %v, want %v", firsts, want)
	}
	if got := cl.leader().c.Image().NextProducerID(); got != 5000 {
		t.Fatalf("next producer id %d", got)
	}
	// A stale broker epoch is refused.
	cl.do(func(c *Controller) error {
		_, _, err := c.AllocateProducerIDs(ctxT(t), 1, epochs[1]+1)
		if ErrorCode(err) != CodeStaleBrokerEpoch {
			t.Fatalf("stale epoch: %v", err)
		}
		return nil
	})
}

// TestRegisterControllerReplicatedAndIdempotent: a controller registration reaches every
// node's Image and survives a snapshot restore; a retry writes nothing; a new incarnation
// replaces it; only the leader takes it; the Raft term is known everywhere.
func TestRegisterControllerReplicatedAndIdempotent(t *testing.T) {
	cl := newCluster(t, 3)
	reg := ControllerRegistration{ID: 2, IncarnationID: [16]byte{2},
		Endpoints: []Endpoint{{Name: "CONTROLLER", Host: "127.0.0.1", Port: 19093, Protocol: "PLAINTEXT"}}}
	cl.do(func(c *Controller) error { return c.RegisterController(ctxT(t), reg) })
	img := cl.converge()
	ci := img.Controller(2)
	if ci == nil || ci.IncarnationID != reg.IncarnationID || !reflect.DeepEqual(ci.Endpoints, reg.Endpoints) {
		t.Fatalf("controller 2 = %+v", ci)
	}
	ld := cl.leader()
	applied := ld.c.Image().AppliedIndex()
	if err := ld.c.RegisterController(ctxT(t), reg); err != nil {
		t.Fatal(err)
	}
	if got := ld.c.Image().AppliedIndex(); got != applied {
		t.Fatalf("a retried registration wrote an entry: applied %d -> %d", applied, got)
	}
	reg.IncarnationID = [16]byte{2, 2}
	cl.do(func(c *Controller) error { return c.RegisterController(ctxT(t), reg) })
	if img := cl.converge(); img.Controller(2).IncarnationID != reg.IncarnationID || len(img.Controllers()) != 1 {
		t.Fatalf("after re-registration:\n%+v", img.Controllers())
	}
	for _, nd := range cl.running() {
		if nd == cl.leader() {
			continue
		}
		if err := nd.c.RegisterController(ctxT(t), reg); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("follower RegisterController err = %v", err)
		}
		if nd.c.Term() == 0 || nd.c.Term() != cl.leader().c.Term() {
			t.Fatalf("follower term %d, leader term %d", nd.c.Term(), cl.leader().c.Term())
		}
	}
	if err := cl.leader().c.RegisterController(ctxT(t), ControllerRegistration{ID: -1}); ErrorCode(err) != CodeInvalidRequest {
		t.Fatalf("negative id err = %v", err)
	}
}
