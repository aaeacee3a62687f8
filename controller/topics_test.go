package controller

import (
	"reflect"
	"strings"
	"testing"
)

// Topic operations validated as Kafka's controller validates CreateTopics,
// CreatePartitions, DeleteTopics and IncrementalAlterConfigs. One controller suffices.

func TestCreateTopicsErrorCodes(t *testing.T) {
	cl := newCluster(t, 1)
	cl.registerBrokers([]int32{1, 2, 3}, nil)
	c := cl.leader().c
	if res := cl.createTopics(TopicSpec{Name: "exists", NumPartitions: 1, ReplicationFactor: 1}); res[0].ErrorCode != CodeNone {
		t.Fatal(res)
	}
	a := func(m map[int32][]int32) TopicSpec {
		return TopicSpec{Name: "manual", NumPartitions: -1, ReplicationFactor: -1, Assignments: m}
	}
	cases := []struct {
		name string
		spec TopicSpec
		code int16
		msg  string
	}{
		{"already exists", TopicSpec{Name: "exists", NumPartitions: 1, ReplicationFactor: 1}, CodeTopicAlreadyExists, "Topic 'exists' already exists."},
		{"rf above brokers", TopicSpec{Name: "big", NumPartitions: 1, ReplicationFactor: 4}, CodeInvalidReplicationFactor,
			"Unable to replicate the partition 4 time(s): The target replication factor of 4 cannot be reached because only 3 broker(s) are registered."},
		{"rf zero", TopicSpec{Name: "z", NumPartitions: 1, ReplicationFactor: 0}, CodeInvalidReplicationFactor, ""},
		{"partitions zero", TopicSpec{Name: "z", NumPartitions: 0, ReplicationFactor: 1}, CodeInvalidPartitions, ""},
		{"partitions over limit", TopicSpec{Name: "z", NumPartitions: maxPartitionsPerCreate + 1, ReplicationFactor: 1}, CodeInvalidPartitions, ""},
		{"bad name", TopicSpec{Name: "a/b", NumPartitions: 1, ReplicationFactor: 1}, CodeInvalidTopicException, ""},
		{"dot name", TopicSpec{Name: "..", NumPartitions: 1, ReplicationFactor: 1}, CodeInvalidTopicException, ""},
		{"long name", TopicSpec{Name: strings.Repeat("x", 250), NumPartitions: 1, ReplicationFactor: 1}, CodeInvalidTopicException, ""},
		{"unregistered broker", a(map[int32][]int32{0: {1, 9}}), CodeInvalidReplicaAssignment,
			"The manual partition assignment includes broker 9, but no such broker is registered."},
		{"broker twice", a(map[int32][]int32{0: {1, 1}}), CodeInvalidReplicaAssignment, ""},
		{"empty replicas", a(map[int32][]int32{0: {}}), CodeInvalidReplicaAssignment, ""},
		{"gap in partitions", a(map[int32][]int32{0: {1}, 2: {2}}), CodeInvalidReplicaAssignment, ""},
		{"inconsistent rf", a(map[int32][]int32{0: {1, 2}, 1: {3}}), CodeInvalidReplicaAssignment, ""},
		{"assignment with rf", TopicSpec{Name: "m", NumPartitions: -1, ReplicationFactor: 2, Assignments: map[int32][]int32{0: {1, 2}}}, CodeInvalidRequest, ""},
	}
	for _, tc := range cases {
		res, err := c.CreateTopics(ctxT(t), []TopicSpec{tc.spec}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].ErrorCode != tc.code || (tc.msg != "" && res[0].ErrorMessage != tc.msg) || res[0].TopicID != ([16]byte{}) {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, res[0].ErrorCode, res[0].ErrorMessage, tc.code, tc.msg)
		}
	}

	// One call: duplicates are refused, a '.'/'_' collision too, the rest are created.
	res, err := c.CreateTopics(ctxT(t), []TopicSpec{
		{Name: "dup", NumPartitions: 1, ReplicationFactor: 1},
		{Name: "a.b", NumPartitions: 1, ReplicationFactor: 1},
		{Name: "dup", NumPartitions: 1, ReplicationFactor: 1},
		{Name: "a_b", NumPartitions: 1, ReplicationFactor: 1},
		{Name: "dflt", NumPartitions: -1, ReplicationFactor: -1},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	codes := []int16{res[0].ErrorCode, res[1].ErrorCode, res[2].ErrorCode, res[3].ErrorCode, res[4].ErrorCode}
	if want := []int16{CodeInvalidRequest, CodeNone, CodeInvalidRequest, CodeInvalidTopicException, CodeNone}; !reflect.DeepEqual(codes, want) {
		t.Fatalf("codes %v, want %v (%+v)", codes, want, res)
	}
	if res[4].NumPartitions != 1 || res[4].ReplicationFactor != 1 {
		t.Fatalf("defaults: %+v", res[4])
	}

	// validateOnly answers without creating.
	res, err = c.CreateTopics(ctxT(t), []TopicSpec{{Name: "dry", NumPartitions: 2, ReplicationFactor: 3}}, true)
	if err != nil || res[0].ErrorCode != CodeNone || res[0].NumPartitions != 2 || res[0].ReplicationFactor != 3 {
		t.Fatalf("validateOnly: %+v %v", res, err)
	}
	if c.Image().Topic("dry") != nil {
		t.Fatal("validateOnly created the topic")
	}

	// A manual assignment: ISR = the unfenced replicas, leader = the first of them.
	if err := c.ControlledShutdown(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	res, err = c.CreateTopics(ctxT(t), []TopicSpec{a(map[int32][]int32{0: {2, 3}, 1: {1, 2}})}, false)
	if err != nil || res[0].ErrorCode != CodeNone {
		t.Fatalf("manual: %+v %v", res, err)
	}
	img := c.Image()
	wantPartition(t, img, "manual", 0, PartitionState{Replicas: []int32{2, 3}, ISR: []int32{3}, Leader: 3})
	wantPartition(t, img, "manual", 1, PartitionState{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1})
	res, _ = c.CreateTopics(ctxT(t), []TopicSpec{{Name: "fenced", NumPartitions: -1, ReplicationFactor: -1, Assignments: map[int32][]int32{0: {2}}}}, false)
	if res[0].ErrorCode != CodeInvalidReplicaAssignment {
		t.Fatalf("all-fenced assignment: %+v", res[0])
	}
	// Placement uses unfenced brokers only.
	res, _ = c.CreateTopics(ctxT(t), []TopicSpec{{Name: "three", NumPartitions: 1, ReplicationFactor: 3}}, false)
	if res[0].ErrorCode != CodeInvalidReplicationFactor {
		t.Fatalf("rf 3 with a fenced broker: %+v", res[0])
	}
}

func TestCreatePartitions(t *testing.T) {
	cl := newCluster(t, 1)
	cl.registerBrokers([]int32{1, 2, 3}, nil)
	c := cl.leader().c
	cl.createTopics(TopicSpec{Name: "grow", NumPartitions: 2, ReplicationFactor: 2})
	res, err := c.CreatePartitions(ctxT(t), []PartitionsSpec{
		{Topic: "grow", Count: 4},
		{Topic: "missing", Count: 2},
	}, false)
	if err != nil || res[0].ErrorCode != CodeNone || res[1].ErrorCode != CodeUnknownTopicOrPartition {
		t.Fatalf("%+v %v", res, err)
	}
	img := c.Image()
	// Partitions 2 and 3 continue the stripe (start 2 of 3 brokers, shift 0).
	wantPartition(t, img, "grow", 2, PartitionState{Replicas: []int32{3, 1}, ISR: []int32{3, 1}, Leader: 3})
	wantPartition(t, img, "grow", 3, PartitionState{Replicas: []int32{1, 3}, ISR: []int32{1, 3}, Leader: 1})

	cases := []struct {
		spec PartitionsSpec
		code int16
	}{
		{PartitionsSpec{Topic: "grow", Count: 4}, CodeInvalidPartitions},
		{PartitionsSpec{Topic: "grow", Count: 3}, CodeInvalidPartitions},
		{PartitionsSpec{Topic: "grow", Count: 6, Assignments: [][]int32{{1, 2}}}, CodeInvalidReplicaAssignment},
		{PartitionsSpec{Topic: "grow", Count: 5, Assignments: [][]int32{{1}}}, CodeInvalidReplicaAssignment},
		{PartitionsSpec{Topic: "grow", Count: 5, Assignments: [][]int32{{1, 7}}}, CodeInvalidReplicaAssignment},
	}
	for _, tc := range cases {
		res, err := c.CreatePartitions(ctxT(t), []PartitionsSpec{tc.spec}, false)
		if err != nil || res[0].ErrorCode != tc.code {
			t.Errorf("%+v: %+v %v, want code %d", tc.spec, res, err, tc.code)
		}
	}
	res, err = c.CreatePartitions(ctxT(t), []PartitionsSpec{{Topic: "grow", Count: 5, Assignments: [][]int32{{2, 3}}}}, false)
	if err != nil || res[0].ErrorCode != CodeNone {
		t.Fatalf("%+v %v", res, err)
	}
	wantPartition(t, c.Image(), "grow", 4, PartitionState{Replicas: []int32{2, 3}, ISR: []int32{2, 3}, Leader: 2})
	if n := len(c.Image().Topic("grow").Partitions); n != 5 {
		t.Fatalf("%d partitions", n)
	}
}

func TestDeleteTopicsAndAlterConfigs(t *testing.T) {
	cl := newCluster(t, 1)
	cl.registerBrokers([]int32{1}, nil)
	c := cl.leader().c
	created := cl.createTopics(TopicSpec{Name: "d1", NumPartitions: 1, ReplicationFactor: 1}, TopicSpec{Name: "d2", NumPartitions: 1, ReplicationFactor: 1})

	res, err := c.AlterConfigs(ctxT(t), []ConfigChange{
		{ResourceType: ConfigTopic, ResourceName: "d1", Set: map[string]string{"retention.ms": "10", "segment.ms": "20"}},
		{ResourceType: ConfigTopic, ResourceName: "nope", Set: map[string]string{"retention.ms": "10"}},
		{ResourceType: ConfigBroker, ResourceName: "1", Set: map[string]string{"log.retention.ms": "7"}},
		{ResourceType: ConfigBroker, ResourceName: "x", Set: map[string]string{"a": "b"}},
		{ResourceType: 3, ResourceName: "g"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	codes := []int16{res[0].ErrorCode, res[1].ErrorCode, res[2].ErrorCode, res[3].ErrorCode, res[4].ErrorCode}
	if want := []int16{CodeNone, CodeUnknownTopicOrPartition, CodeNone, CodeInvalidRequest, CodeInvalidRequest}; !reflect.DeepEqual(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if _, err := c.AlterConfigs(ctxT(t), []ConfigChange{{ResourceType: ConfigTopic, ResourceName: "d1", Delete: []string{"segment.ms"}}}, false); err != nil {
		t.Fatal(err)
	}
	img := c.Image()
	if got := img.Topic("d1").Configs; !reflect.DeepEqual(got, map[string]string{"retention.ms": "10"}) {
		t.Fatalf("topic configs %v", got)
	}
	if got := img.BrokerConfigs("1"); !reflect.DeepEqual(got, map[string]string{"log.retention.ms": "7"}) {
		t.Fatalf("broker configs %v", got)
	}

	del, err := c.DeleteTopics(ctxT(t), []TopicRef{{Name: "d1"}, {ID: created[1].TopicID}, {Name: "gone"}, {ID: [16]byte{9}}, {Name: "d1"}})
	if err != nil {
		t.Fatal(err)
	}
	codes = []int16{del[0].ErrorCode, del[1].ErrorCode, del[2].ErrorCode, del[3].ErrorCode, del[4].ErrorCode}
	if want := []int16{CodeNone, CodeNone, CodeUnknownTopicOrPartition, CodeUnknownTopicID, CodeNone}; !reflect.DeepEqual(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if del[1].Name != "d2" || del[0].TopicID != created[0].TopicID {
		t.Fatalf("results %+v", del)
	}
	if img := c.Image(); img.NumTopics() != 0 || img.TopicByID(created[0].TopicID) != nil {
		t.Fatalf("topics left:\n%s", dumpImage(img))
	}
	// The name can be used again, with a new id.
	again := cl.createTopics(TopicSpec{Name: "d1", NumPartitions: 1, ReplicationFactor: 1})
	if again[0].ErrorCode != CodeNone || again[0].TopicID == created[0].TopicID || c.Image().Topic("d1").Configs != nil {
		t.Fatalf("recreate: %+v", again[0])
	}
}
