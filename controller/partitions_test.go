package controller

import (
	"reflect"
	"testing"
	"time"
)

// AlterPartition (KIP-497/KIP-841 validation) and ElectLeaders (KIP-460).

func TestAlterPartitionValidation(t *testing.T) {
	cl := newCluster(t, 1)
	e := cl.registerBrokers([]int32{1, 2, 3}, nil)
	c := cl.leader().c
	res := cl.createTopics(TopicSpec{Name: "ap", NumPartitions: -1, ReplicationFactor: -1, Assignments: map[int32][]int32{0: {1, 2, 3}}})
	id := res[0].TopicID
	initial := PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1}

	type req struct {
		broker                 int32
		epoch                  int64
		topic                  [16]byte
		partition, leaderEpoch int32
		partitionEpoch         int32
		isr                    []int32
	}
	alter := func(r req) (PartitionState, int16) {
		t.Helper()
		ps, code, err := c.AlterPartition(ctxT(t), r.broker, r.epoch, r.topic, r.partition, r.leaderEpoch, r.partitionEpoch, r.isr)
		if err != nil {
			t.Fatal(err)
		}
		return ps, code
	}
	cases := []struct {
		name string
		r    req
		code int16
	}{
		{"stale broker epoch", req{1, e[1] + 1, id, 0, 0, 0, []int32{1, 2}}, CodeStaleBrokerEpoch},
		{"unregistered broker", req{9, e[1], id, 0, 0, 0, []int32{1, 2}}, CodeStaleBrokerEpoch},
		{"unknown topic id", req{1, e[1], [16]byte{7}, 0, 0, 0, []int32{1, 2}}, CodeUnknownTopicID},
		{"unknown partition", req{1, e[1], id, 5, 0, 0, []int32{1, 2}}, CodeUnknownTopicOrPartition},
		{"newer leader epoch", req{1, e[1], id, 0, 1, 0, []int32{1, 2}}, CodeNotController},
		{"newer partition epoch", req{1, e[1], id, 0, 0, 1, []int32{1, 2}}, CodeNotController},
		{"not the leader", req{2, e[2], id, 0, 0, 0, []int32{1, 2}}, CodeInvalidRequest},
		{"non-replica in ISR", req{1, e[1], id, 0, 0, 0, []int32{1, 4}}, CodeInvalidRequest},
		{"duplicate in ISR", req{1, e[1], id, 0, 0, 0, []int32{1, 1}}, CodeInvalidRequest},
		{"leader not in ISR", req{1, e[1], id, 0, 0, 0, []int32{2, 3}}, CodeInvalidRequest},
		{"empty ISR", req{1, e[1], id, 0, 0, 0, nil}, CodeInvalidRequest},
	}
	for _, tc := range cases {
		if _, code := alter(tc.r); code != tc.code {
			t.Errorf("%s: code %d, want %d", tc.name, code, tc.code)
		}
	}
	wantPartition(t, c.Image(), "ap", 0, initial)

	ps, code := alter(req{1, e[1], id, 0, 0, 0, []int32{1, 2}})
	want := PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 0, PartitionEpoch: 1}
	if code != CodeNone || !reflect.DeepEqual(ps, want) {
		t.Fatalf("shrink: %+v %d", ps, code)
	}
	wantPartition(t, c.Image(), "ap", 0, want)
	if _, code := alter(req{1, e[1], id, 0, 0, 0, []int32{1}}); code != CodeInvalidUpdateVersion {
		t.Fatalf("old partition epoch: code %d", code)
	}
	// The same ISR again: no change, no entry.
	idx := c.Image().AppliedIndex()
	if ps, code := alter(req{1, e[1], id, 0, 0, 1, []int32{1, 2}}); code != CodeNone || !reflect.DeepEqual(ps, want) || c.Image().AppliedIndex() != idx {
		t.Fatalf("no-op: %+v %d", ps, code)
	}
	// A fenced broker cannot join the ISR.
	if err := c.ControlledShutdown(ctxT(t), 3); err != nil {
		t.Fatal(err)
	}
	if _, code := alter(req{1, e[1], id, 0, 0, 1, []int32{1, 2, 3}}); code != CodeIneligibleReplica {
		t.Fatalf("fenced replica: code %d", code)
	}
	// Once the leader moves, the old leader's epoch is fenced.
	if err := c.ControlledShutdown(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	wantPartition(t, c.Image(), "ap", 0, PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 2})
	if _, code := alter(req{1, e[1], id, 0, 0, 2, []int32{1, 2}}); code != CodeFencedLeaderEpoch {
		t.Fatalf("old leader epoch: code %d", code)
	}
	c.Heartbeat(ctxT(t), 1, e[1], false) // unfence 1: the new leader adds it back
	ps, code = alter(req{2, e[2], id, 0, 1, 2, []int32{2, 1}})
	if want := (PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{2, 1}, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 3}); code != CodeNone || !reflect.DeepEqual(ps, want) {
		t.Fatalf("expand: %+v %d", ps, code)
	}
}

func TestElectLeadersPreferredAndUnclean(t *testing.T) {
	cl := newCluster(t, 1)
	e := cl.registerBrokers([]int32{1, 2, 3}, nil)
	c := cl.leader().c
	res := cl.createTopics(
		TopicSpec{Name: "el", NumPartitions: -1, ReplicationFactor: -1, Assignments: map[int32][]int32{0: {1, 2, 3}, 1: {2, 3, 1}}},
		TopicSpec{Name: "uc", NumPartitions: -1, ReplicationFactor: -1, Assignments: map[int32][]int32{0: {2, 3}}},
		TopicSpec{Name: "gone", NumPartitions: -1, ReplicationFactor: -1, Assignments: map[int32][]int32{0: {3}}},
	)
	elect := func(typ ElectionType, tps []TopicPartition) []ElectionResult {
		t.Helper()
		r, err := c.ElectLeaders(ctxT(t), typ, tps)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	codes := func(rs []ElectionResult) []int16 {
		var out []int16
		for _, r := range rs {
			out = append(out, r.ErrorCode)
		}
		return out
	}
	if got := codes(elect(ElectPreferred, []TopicPartition{{"el", 0}, {"el", 9}, {"nope", 0}})); !reflect.DeepEqual(got, []int16{CodeElectionNotNeeded, CodeUnknownTopicOrPartition, CodeUnknownTopicOrPartition}) {
		t.Fatalf("codes %v", got)
	}
	if got := elect(ElectPreferred, nil); len(got) != 0 {
		t.Fatalf("balanced cluster: %+v", got)
	}

	// Move el-0's leadership away from its preferred replica 1.
	if err := c.ControlledShutdown(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	c.Heartbeat(ctxT(t), 1, e[1], false)
	if got := codes(elect(ElectPreferred, []TopicPartition{{"el", 0}})); !reflect.DeepEqual(got, []int16{CodePreferredLeaderNotAvailable}) {
		t.Fatalf("preferred not in ISR: %v", got)
	}
	if _, code, err := c.AlterPartition(ctxT(t), 2, e[2], res[0].TopicID, 0, 1, 1, []int32{2, 3, 1}); err != nil || code != CodeNone {
		t.Fatalf("AlterPartition: %d %v", code, err)
	}
	got := elect(ElectPreferred, nil)
	if want := []ElectionResult{{TopicPartition: TopicPartition{"el", 0}}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("all partitions: %+v, want %+v", got, want)
	}
	wantPartition(t, c.Image(), "el", 0, PartitionState{Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3, 1}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 3})

	// Unclean: only for leaderless partitions; an out-of-sync replica may then lead.
	if got := codes(elect(ElectUnclean, []TopicPartition{{"el", 0}})); !reflect.DeepEqual(got, []int16{CodeElectionNotNeeded}) {
		t.Fatalf("unclean with a leader: %v", got)
	}
	if _, code, _ := c.AlterPartition(ctxT(t), 2, e[2], res[1].TopicID, 0, 0, 0, []int32{2}); code != CodeNone {
		t.Fatalf("shrink uc-0: %d", code)
	}
	if err := c.ControlledShutdown(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	wantPartition(t, c.Image(), "uc", 0, PartitionState{Replicas: []int32{2, 3}, ISR: []int32{2}, Leader: NoLeader, LeaderEpoch: 1, PartitionEpoch: 2})
	if got := codes(elect(ElectUnclean, []TopicPartition{{"uc", 0}})); !reflect.DeepEqual(got, []int16{CodeNone}) {
		t.Fatalf("unclean: %v", got)
	}
	wantPartition(t, c.Image(), "uc", 0, PartitionState{Replicas: []int32{2, 3}, ISR: []int32{3}, Leader: 3, LeaderEpoch: 2, PartitionEpoch: 3})
	if err := c.ControlledShutdown(ctxT(t), 3); err != nil {
		t.Fatal(err)
	}
	if got := codes(elect(ElectUnclean, []TopicPartition{{"gone", 0}})); !reflect.DeepEqual(got, []int16{CodeEligibleLeadersNotAvailable}) {
		t.Fatalf("no eligible replica: %v", got)
	}
}

func TestAutomaticPreferredLeaderElection(t *testing.T) {
	cl := newCluster(t, 1, func(c *Config) { c.LeaderImbalanceCheckInterval = 100 * time.Millisecond })
	e := cl.registerBrokers([]int32{1, 2}, nil)
	c := cl.leader().c
	res := cl.createTopics(TopicSpec{Name: "auto", NumPartitions: -1, ReplicationFactor: -1, Assignments: map[int32][]int32{0: {1, 2}}})
	if err := c.ControlledShutdown(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	c.Heartbeat(ctxT(t), 1, e[1], false)
	time.Sleep(300 * time.Millisecond) // 1 is unfenced but not in the ISR: no election
	wantPartition(t, c.Image(), "auto", 0, PartitionState{Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 1})
	if _, code, err := c.AlterPartition(ctxT(t), 2, e[2], res[0].TopicID, 0, 1, 1, []int32{2, 1}); err != nil || code != CodeNone {
		t.Fatalf("AlterPartition: %d %v", code, err)
	}
	img, err := c.WaitForImage(ctxT(t), func(img *Image) bool { p, _ := img.Partition("auto", 0); return p.Leader == 1 })
	if err != nil {
		t.Fatal(err)
	}
	wantPartition(t, img, "auto", 0, PartitionState{Replicas: []int32{1, 2}, ISR: []int32{2, 1}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 3})
}
