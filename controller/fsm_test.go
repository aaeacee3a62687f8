package controller

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

func applyEntry(t *testing.T, f *fsm, index uint64, recs ...Record) error {
	t.Helper()
	resp := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: AppendEntry(nil, recs...)})
	err, _ := resp.(error)
	return err
}

// TestFSMSnapshotRestoreIdentical: an image rebuilt from its snapshot equals the original,
// field for field, and encodes to the same bytes.
func TestFSMSnapshotRestoreIdentical(t *testing.T) {
	f := newFSM(testLogger(t))
	id := [16]byte{0xaa}
	steps := [][]Record{
		{&RegisterBrokerRecord{BrokerID: 1, IncarnationID: [16]byte{1}, Rack: strp("a"), Endpoints: []Endpoint{{"PLAINTEXT", "h1", 9092, "PLAINTEXT"}}}},
		{&RegisterBrokerRecord{BrokerID: 2, IncarnationID: [16]byte{2}}},
		{&UnfenceBrokerRecord{BrokerID: 1, BrokerEpoch: 1}, &UnfenceBrokerRecord{BrokerID: 2, BrokerEpoch: 2}},
		{&CreateTopicRecord{Name: "t", TopicID: id, Configs: map[string]string{"retention.ms": "5"},
			Partitions: []PartitionRecord{{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1}}}},
		{&CreatePartitionsRecord{TopicID: id, Partitions: []PartitionRecord{{Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Leader: 2}}}},
		{&PartitionChangeRecord{TopicID: id, Partition: 1, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1, ISR: []int32{1}, Replicas: []int32{2, 1}},
			&FenceBrokerRecord{BrokerID: 2, BrokerEpoch: 2}},
		{&AlterConfigsRecord{ResourceType: ConfigBroker, ResourceName: "", Set: map[string]string{"x": "y"}}},
		{&AllocateProducerIDsRecord{BrokerID: 1, BrokerEpoch: 1, FirstID: 0, Size: 1000}},
		{&RegisterControllerRecord{ControllerID: 7, IncarnationID: [16]byte{7}, Endpoints: []Endpoint{{"CONTROLLER", "h7", 9093, "PLAINTEXT"}}},
			&RegisterControllerRecord{ControllerID: 1, IncarnationID: [16]byte{1}}},
	}
	for i, recs := range steps {
		if err := applyEntry(t, f, uint64(i+1), recs...); err != nil {
			t.Fatalf("entry %d: %v", i+1, err)
		}
	}
	img := f.image.Load()
	if img.AppliedIndex() != uint64(len(steps)) || img.NextProducerID() != 1000 || !img.Broker(2).Fenced || img.Broker(1).Fenced ||
		len(img.Controllers()) != 2 || img.Controller(7).Endpoints[0].Host != "h7" {
		t.Fatalf("image:\n%s", dumpImage(img))
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v", err)
	}
	g := newFSM(testLogger(t))
	notify, cancel := g.subscribe()
	defer cancel()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-notify:
	default:
		t.Fatal("restore did not notify subscribers")
	}
	if got := g.image.Load(); !reflect.DeepEqual(got, img) {
		t.Fatalf("restored:\n%s\nwant:\n%s", dumpImage(got), dumpImage(img))
	}
	if !bytes.Equal(AppendImage(nil, g.image.Load()), sink.Bytes()) {
		t.Fatal("restored image encodes differently")
	}
	// Every flipped byte is detected.
	data := sink.Bytes()
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, err := DecodeImage(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
}

// TestDecodeImageVersion0: a snapshot written before controller registrations existed
// (version 0: no controllers section) still restores, with no controllers.
func TestDecodeImageVersion0(t *testing.T) {
	img := emptyImage()
	img.appliedIndex, img.nextProducerID = 12, 3000
	img.brokers[1] = &BrokerInfo{ID: 1, Epoch: 4, IncarnationID: [16]byte{1}, Endpoints: []Endpoint{{"PLAINTEXT", "h1", 9092, "PLAINTEXT"}}}
	v1 := AppendImage(nil, img)
	// Version 0 is version 1 less the trailing (empty) controllers count, with its own CRC.
	body := bytes.Clone(v1[:len(v1)-4-1])
	body[len(imageMagic)] = 0
	v0 := binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
	got, err := DecodeImage(v0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, img) {
		t.Fatalf("decoded:\n%s\nwant:\n%s", dumpImage(got), dumpImage(img))
	}
	// A version from the future is refused.
	future := bytes.Clone(v1[:len(v1)-4])
	future[len(imageMagic)] = imageVersion + 1
	future = binary.BigEndian.AppendUint32(future, crc32.Checksum(future, castagnoli))
	if _, err := DecodeImage(future); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("future version: %v", err)
	}
}

// TestFSMEntriesAreAtomic: an entry with a stale record changes nothing but the applied
// index, on every node alike.
func TestFSMEntriesAreAtomic(t *testing.T) {
	f := newFSM(testLogger(t))
	if err := applyEntry(t, f, 1, &RegisterBrokerRecord{BrokerID: 1}); err != nil {
		t.Fatal(err)
	}
	before := f.image.Load()
	err := applyEntry(t, f, 2, &UnfenceBrokerRecord{BrokerID: 1, BrokerEpoch: 1}, &FenceBrokerRecord{BrokerID: 1, BrokerEpoch: 99})
	if !errors.Is(err, errStaleRecord) {
		t.Fatalf("err %v", err)
	}
	after := f.image.Load()
	if after.AppliedIndex() != 2 || !after.Broker(1).Fenced || after.Broker(1) != before.Broker(1) {
		t.Fatalf("partial apply:\n%s", dumpImage(after))
	}
	stale := [][]Record{
		{&AllocateProducerIDsRecord{FirstID: 5, Size: 1000}},
		{&PartitionChangeRecord{TopicID: [16]byte{1}}},
		{&CreateTopicRecord{Name: "bad name", TopicID: [16]byte{1}, Partitions: []PartitionRecord{{Replicas: []int32{1}, ISR: []int32{1}, Leader: 1}}}},
		{&CreateTopicRecord{Name: "t", TopicID: [16]byte{1}, Partitions: []PartitionRecord{{Replicas: []int32{1}, ISR: []int32{2}, Leader: 1}}}},
		{&AlterConfigsRecord{ResourceType: ConfigBroker, ResourceName: "01"}},
	}
	for i, recs := range stale {
		if err := applyEntry(t, f, uint64(3+i), recs...); !errors.Is(err, errStaleRecord) {
			t.Errorf("stale entry %d applied: %v", i, err)
		}
	}
	// An entry that does not decode stops the FSM for good.
	f.Apply(&raft.Log{Index: 10, Type: raft.LogCommand, Data: []byte{0, 1, 99, 0, 0}})
	if f.err() == nil || !strings.Contains(f.err().Error(), "FATAL") {
		t.Fatalf("err %v", f.err())
	}
	if err := applyEntry(t, f, 11, &RegisterBrokerRecord{BrokerID: 2}); err == nil || f.image.Load().Broker(2) != nil {
		t.Fatal("applied after a fatal entry")
	}
	if _, err := f.Snapshot(); err == nil {
		t.Fatal("snapshot after a fatal entry")
	}
}

func TestBoltStore(t *testing.T) {
	s, err := openBoltStore(filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get([]byte("k")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v", err)
	}
	if err := s.SetUint64([]byte("term"), 7); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("term")); err != nil || v != 7 {
		t.Fatalf("term %d %v", v, err)
	}
	at := time.Unix(0, 1234567)
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte{byte(i)}, AppendedAt: at})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(3, &l); err != nil || !reflect.DeepEqual(&l, logs[2]) {
		t.Fatalf("log 3 = %+v %v", l, err)
	}
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 4 || last != 5 {
		t.Fatalf("range %d..%d", first, last)
	}
	if err := s.GetLog(2, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted log: %v", err)
	}
}

func TestErrorCodesMatchKafka(t *testing.T) {
	for code, want := range map[int16]*kerr.Error{
		CodeUnknownTopicOrPartition: kerr.UnknownTopicOrPartition, CodeRequestTimedOut: kerr.RequestTimedOut, CodeInvalidTopicException: kerr.InvalidTopicException,
		CodeTopicAlreadyExists: kerr.TopicAlreadyExists, CodeInvalidPartitions: kerr.InvalidPartitions,
		CodeInvalidReplicationFactor: kerr.InvalidReplicationFactor, CodeInvalidReplicaAssignment: kerr.InvalidReplicaAssignment,
		CodeInvalidConfig: kerr.InvalidConfig, CodeNotController: kerr.NotController, CodeInvalidRequest: kerr.InvalidRequest,
		CodeFencedLeaderEpoch: kerr.FencedLeaderEpoch, CodeStaleBrokerEpoch: kerr.StaleBrokerEpoch,
		CodePreferredLeaderNotAvailable: kerr.PreferredLeaderNotAvailable, CodeEligibleLeadersNotAvailable: kerr.EligibleLeadersNotAvailable,
		CodeElectionNotNeeded: kerr.ElectionNotNeeded, CodeInvalidUpdateVersion: kerr.InvalidUpdateVersion,
		CodeUnknownTopicID: kerr.UnknownTopicID, CodeDuplicateBrokerRegistration: kerr.DuplicateBrokerRegistration,
		CodeBrokerIDNotRegistered: kerr.BrokerIDNotRegistered, CodeIneligibleReplica: kerr.IneligibleReplica,
		CodeUnknownServerError: kerr.UnknownServerError,
	} {
		if code != want.Code {
			t.Errorf("%s is %d here, %d in kerr", want.Message, code, want.Code)
		}
	}
}

// DESIGN.md: controller sits above netio, logstore and index, and below everything else.
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v: %s", err, out)
	}
	const mod = "github.com/spate-broker/spate/"
	allowed := []string{mod + "controller", mod + "netio", mod + "logstore", mod + "index", mod + "internal/"}
	for _, dep := range strings.Fields(string(out)) {
		if !strings.HasPrefix(dep, mod) {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || dep == a || strings.HasSuffix(a, "/") && strings.HasPrefix(dep, a)
		}
		if !ok {
			t.Errorf("controller depends on %s", dep)
		}
	}
}
