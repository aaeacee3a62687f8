package controller

import (
	"reflect"
	"testing"
	"time"
)

// Broker sessions: registration, heartbeats, fencing on session expiry, unfencing, and
// controlled shutdown (KIP-631's broker lifecycle).

func TestRegisterAndHeartbeatUnfences(t *testing.T) {
	cl := newCluster(t, 1)
	c := cl.leader().c
	reg := BrokerRegistration{ID: 7, IncarnationID: [16]byte{1}, Rack: strp("r"),
		Endpoints: []Endpoint{{Name: "PLAINTEXT", Host: "h", Port: 1, Protocol: "PLAINTEXT"}}}
	epoch, err := c.RegisterBroker(ctxT(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	want := &BrokerInfo{ID: 7, Epoch: epoch, IncarnationID: reg.IncarnationID, Endpoints: reg.Endpoints, Rack: reg.Rack, Fenced: true}
	if got := c.Image().Broker(7); !reflect.DeepEqual(got, want) || uint64(epoch) != c.Image().AppliedIndex() {
		t.Fatalf("registered %+v, want %+v", got, want)
	}
	if _, err := c.Heartbeat(ctxT(t), 7, epoch+1, false); ErrorCode(err) != CodeStaleBrokerEpoch {
		t.Fatalf("stale epoch: %v", err)
	}
	if _, err := c.Heartbeat(ctxT(t), 8, epoch, false); ErrorCode(err) != CodeBrokerIDNotRegistered {
		t.Fatalf("unknown broker: %v", err)
	}
	hr, err := c.Heartbeat(ctxT(t), 7, epoch, false)
	if err != nil || hr != (HeartbeatResult{}) || c.Image().Broker(7).Fenced {
		t.Fatalf("heartbeat: %+v %v", hr, err)
	}
	idx := c.Image().AppliedIndex()
	if hr, err := c.Heartbeat(ctxT(t), 7, epoch, false); err != nil || hr.Fenced || c.Image().AppliedIndex() != idx {
		t.Fatal("a heartbeat without a transition was logged")
	}
	// Retrying the same registration is idempotent; a new incarnation is refused while the
	// old one's session lives.
	if e, err := c.RegisterBroker(ctxT(t), reg); err != nil || e != epoch {
		t.Fatalf("re-register: %d %v", e, err)
	}
	reg2 := reg
	reg2.IncarnationID = [16]byte{2}
	if _, err := c.RegisterBroker(ctxT(t), reg2); ErrorCode(err) != CodeDuplicateBrokerRegistration {
		t.Fatalf("duplicate registration: %v", err)
	}
	// After a controlled shutdown the new incarnation registers, fenced, with a new epoch.
	hr, err = c.Heartbeat(ctxT(t), 7, epoch, true)
	if err != nil || hr != (HeartbeatResult{Fenced: true, ShouldShutDown: true}) {
		t.Fatalf("shutdown heartbeat: %+v %v", hr, err)
	}
	epoch2, err := c.RegisterBroker(ctxT(t), reg2)
	if err != nil || epoch2 <= epoch || !c.Image().Broker(7).Fenced || c.Image().Broker(7).IncarnationID != reg2.IncarnationID {
		t.Fatalf("new incarnation: %d %v", epoch2, err)
	}
	if err := c.UnregisterBroker(ctxT(t), 7); err != nil || c.Image().Broker(7) != nil {
		t.Fatalf("unregister: %v", err)
	}
}

func TestSessionExpiryFencesBrokerAndMovesLeadership(t *testing.T) {
	cl := newCluster(t, 3, func(c *Config) { c.SessionTimeout = time.Second })
	epochs := cl.registerBrokers([]int32{1, 2, 3}, nil)
	h := cl.heartbeat(map[int32]int64{1: epochs[1], 2: epochs[2], 3: epochs[3]})
	m := func(a map[int32][]int32) map[int32][]int32 { return a }
	res := cl.createTopics(
		TopicSpec{Name: "f", NumPartitions: -1, ReplicationFactor: -1, Assignments: m(map[int32][]int32{0: {3, 1, 2}, 1: {1, 3, 2}})},
		TopicSpec{Name: "solo", NumPartitions: -1, ReplicationFactor: -1, Assignments: m(map[int32][]int32{0: {3}})},
		TopicSpec{Name: "unclean", NumPartitions: -1, ReplicationFactor: -1, Assignments: m(map[int32][]int32{0: {3, 1}}),
			Configs: map[string]string{"unclean.leader.election.enable": "true"}},
	)
	cl.do(func(c *Controller) error { // the leader of unclean-0 shrinks its ISR to itself
		_, code, err := c.AlterPartition(ctxT(t), 3, epochs[3], res[2].TopicID, 0, 0, 0, []int32{3})
		if code != CodeNone {
			t.Fatalf("AlterPartition code %d", code)
		}
		return err
	})

	h.drop(3)
	start := time.Now()
	var img *Image
	for {
		img = cl.leader().c.Image()
		if img.Broker(3).Fenced {
			break
		}
		if time.Since(start) > waitFor {
			t.Fatal("broker 3 not fenced")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Fatalf("fenced after %v, before the session timeout", time.Since(start))
	}
	img = cl.converge()
	wantPartition(t, img, "f", 0, PartitionState{Replicas: []int32{3, 1, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1})
	wantPartition(t, img, "f", 1, PartitionState{Replicas: []int32{1, 3, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 0, PartitionEpoch: 1})
	// The last ISR member stays in the ISR; with no eligible leader the partition is offline.
	wantPartition(t, img, "solo", 0, PartitionState{Replicas: []int32{3}, ISR: []int32{3}, Leader: NoLeader, LeaderEpoch: 1, PartitionEpoch: 1})
	// unclean.leader.election.enable lets an out-of-sync replica lead; the ISR restarts.
	wantPartition(t, img, "unclean", 0, PartitionState{Replicas: []int32{3, 1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 2})
	if img.Broker(1).Fenced || img.Broker(2).Fenced {
		t.Fatal("live brokers fenced")
	}

	// A heartbeat unfences broker 3, which takes the leaderless partition back; it rejoins
	// other ISRs only through AlterPartition.
	cl.do(func(c *Controller) error {
		hr, err := c.Heartbeat(ctxT(t), 3, epochs[3], false)
		if err == nil && hr.Fenced {
			t.Fatalf("still fenced: %+v", hr)
		}
		return err
	})
	img = cl.converge()
	if img.Broker(3).Fenced {
		t.Fatal("broker 3 still fenced")
	}
	wantPartition(t, img, "solo", 0, PartitionState{Replicas: []int32{3}, ISR: []int32{3}, Leader: 3, LeaderEpoch: 2, PartitionEpoch: 2})
	wantPartition(t, img, "f", 0, PartitionState{Replicas: []int32{3, 1, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1})
}

func TestControlledShutdownMovesLeaders(t *testing.T) {
	cl := newCluster(t, 3)
	epochs := cl.registerBrokers([]int32{1, 2, 3}, nil)
	cl.createTopics(TopicSpec{Name: "cs", NumPartitions: -1, ReplicationFactor: -1,
		Assignments: map[int32][]int32{0: {1, 2, 3}, 1: {2, 3, 1}, 2: {3, 1, 2}}})
	cl.do(func(c *Controller) error {
		hr, err := c.Heartbeat(ctxT(t), 1, epochs[1], true)
		if err == nil && hr != (HeartbeatResult{Fenced: true, ShouldShutDown: true}) {
			t.Fatalf("shutdown heartbeat: %+v", hr)
		}
		return err
	})
	img := cl.converge()
	wantPartition(t, img, "cs", 0, PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3}, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 1})
	wantPartition(t, img, "cs", 1, PartitionState{Replicas: []int32{2, 3, 1}, ISR: []int32{2, 3}, Leader: 2, LeaderEpoch: 0, PartitionEpoch: 1})
	wantPartition(t, img, "cs", 2, PartitionState{Replicas: []int32{3, 1, 2}, ISR: []int32{3, 2}, Leader: 3, LeaderEpoch: 0, PartitionEpoch: 1})
	if !img.Broker(1).Fenced {
		t.Fatal("broker 1 not fenced")
	}
	// Asking again changes nothing.
	cl.do(func(c *Controller) error {
		hr, err := c.Heartbeat(ctxT(t), 1, epochs[1], true)
		if err == nil && (hr != HeartbeatResult{Fenced: true, ShouldShutDown: true} || c.Image().AppliedIndex() != img.AppliedIndex()) {
			t.Fatalf("second shutdown heartbeat: %+v", hr)
		}
		return err
	})
	// ControlledShutdown does the same for broker 2; the partitions it led move to 3.
	cl.do(func(c *Controller) error { return c.ControlledShutdown(ctxT(t), 2) })
	img = cl.converge()
	wantPartition(t, img, "cs", 0, PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{3}, Leader: 3, LeaderEpoch: 2, PartitionEpoch: 2})
	wantPartition(t, img, "cs", 1, PartitionState{Replicas: []int32{2, 3, 1}, ISR: []int32{3}, Leader: 3, LeaderEpoch: 1, PartitionEpoch: 2})
	wantPartition(t, img, "cs", 2, PartitionState{Replicas: []int32{3, 1, 2}, ISR: []int32{3}, Leader: 3, LeaderEpoch: 0, PartitionEpoch: 2})
	if leadsAny(img, 1) || leadsAny(img, 2) {
		t.Fatal("a shut-down broker still leads")
	}
}
