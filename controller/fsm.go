package controller

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// fsm is the Raft state machine: it applies metadata entries to the Image on every node.
//
// Raft calls Apply, Snapshot and Restore from one goroutine; Image readers never lock: they
// load the atomic pointer. Apply is deterministic — it depends only on the image and the
// entry — so every node that applied the same entries holds an identical Image.
//
// An entry is atomic: its records are applied to a builder in order and the result is
// published only when every record applied; otherwise the image is unchanged (but for its
// applied index) and the first error goes back to the proposer as the Apply response. Such
// an entry is "stale" (its preconditions no longer hold); the leader, which validates before
// proposing, does not write them in normal operation.
type fsm struct {
	log   *slog.Logger
	image atomic.Pointer[Image]
	// failed holds the first entry that could not be decoded. From then on nothing is
	// applied (a node must never skip an entry that others applied), snapshots are refused,
	// and the controller reports the error. A restore from a snapshot clears it.
	failed atomic.Pointer[error]

	subMu sync.Mutex
	subs  map[chan struct{}]struct{} // guarded by subMu
}

func newFSM(log *slog.Logger) *fsm {
	f := &fsm{log: log, subs: map[chan struct{}]struct{}{}}
	f.image.Store(emptyImage())
	return f
}

func (f *fsm) err() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if err := f.err(); err != nil {
		return err
	}
	recs, err := DecodeEntry(l.Data)
	if err != nil {
		err = fmt.Errorf("FATAL: metadata entry %d cannot be applied: %w", l.Index, err)
		f.log.Error(err.Error())
		f.failed.Store(&err)
		return err
	}
	base := f.image.Load()
	b := newImageBuilder(base)
	for _, rec := range recs {
		if err = b.apply(rec, l.Index); err != nil {
			break
		}
	}
	next := b.img
	if err != nil {
		f.log.Warn("metadata entry not applied", "index", l.Index, "err", err)
		cp := *base
		next = &cp
	}
	next.appliedIndex = l.Index
	f.publish(next)
	return err
}

func (f *fsm) publish(img *Image) {
	f.image.Store(img)
	f.subMu.Lock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default: // a notification is already pending: coalesce
		}
	}
	f.subMu.Unlock()
}

func (f *fsm) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.subMu.Lock()
	f.subs[ch] = struct{}{}
	f.subMu.Unlock()
	return ch, func() {
		f.subMu.Lock()
		delete(f.subs, ch)
		f.subMu.Unlock()
	}
}

// Snapshot implements raft.FSM: it captures the current image; Persist encodes it.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return imageSnapshot{f.image.Load()}, nil
}

// Restore implements raft.FSM: it replaces the image with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("read metadata snapshot: %w", err)
	}
	if len(data) > maxSnapshotBytes {
		return fmt.Errorf("%w: metadata snapshot larger than %d bytes", ErrCorrupt, maxSnapshotBytes)
	}
	img, err := DecodeImage(data)
	if err != nil {
		return fmt.Errorf("restore metadata snapshot: %w", err)
	}
	f.failed.Store(nil)
	f.publish(img)
	return nil
}

type imageSnapshot struct{ img *Image }

func (s imageSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(AppendImage(nil, s.img)); err != nil {
		sink.Cancel()
		return fmt.Errorf("write metadata snapshot: %w", err)
	}
	return sink.Close()
}

func (imageSnapshot) Release() {}

func stale(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errStaleRecord, fmt.Sprintf(format, args...))
}

// apply applies one record to the builder's image. index is the Raft index of its entry.
func (b *imageBuilder) apply(rec Record, index uint64) error {
	img := b.img
	switch r := rec.(type) {
	case *RegisterBrokerRecord:
		if r.BrokerID < 0 {
			return stale("broker id %d", r.BrokerID)
		}
		b.putBroker(&BrokerInfo{ID: r.BrokerID, Epoch: int64(index), IncarnationID: r.IncarnationID,
			Endpoints: r.Endpoints, Rack: r.Rack, Fenced: true})
	case *RegisterControllerRecord:
		if r.ControllerID < 0 {
			return stale("controller id %d", r.ControllerID)
		}
		b.putController(&ControllerInfo{ID: r.ControllerID, IncarnationID: r.IncarnationID, Endpoints: r.Endpoints})
	case *FenceBrokerRecord:
		return b.setFenced(r.BrokerID, r.BrokerEpoch, true)
	case *UnfenceBrokerRecord:
		return b.setFenced(r.BrokerID, r.BrokerEpoch, false)
	case *UnregisterBrokerRecord:
		if bi := img.brokers[r.BrokerID]; bi == nil || bi.Epoch != r.BrokerEpoch {
			return stale("unregister broker %d epoch %d", r.BrokerID, r.BrokerEpoch)
		}
		b.deleteBroker(r.BrokerID)
	case *CreateTopicRecord:
		if !validTopicName(r.Name) || img.topics[r.Name] != nil || r.TopicID == ([16]byte{}) || img.topicsByID[r.TopicID] != nil {
			return stale("create topic %q", r.Name)
		}
		parts, err := newPartitions(r.Partitions)
		if err != nil || len(parts) == 0 {
			return stale("create topic %q: bad partitions", r.Name)
		}
		b.putTopic(&TopicInfo{Name: r.Name, ID: r.TopicID, Partitions: parts, Configs: r.Configs})
	case *CreatePartitionsRecord:
		t := img.topicsByID[r.TopicID]
		parts, err := newPartitions(r.Partitions)
		if t == nil || err != nil || len(parts) == 0 {
			return stale("create partitions of topic %x", r.TopicID)
		}
		nt := *t
		nt.Partitions = slices.Concat(t.Partitions, parts)
		b.putTopic(&nt)
	case *DeleteTopicRecord:
		t := img.topicsByID[r.TopicID]
		if t == nil {
			return stale("delete topic %x", r.TopicID)
		}
		b.deleteTopic(t)
	case *AlterConfigsRecord:
		return b.alterConfigs(r)
	case *PartitionChangeRecord:
		return b.changePartition(r)
	case *AllocateProducerIDsRecord:
		if r.FirstID != img.nextProducerID || r.Size <= 0 || r.FirstID > 1<<63-1-int64(r.Size) {
			return stale("producer ids %d+%d, next is %d", r.FirstID, r.Size, img.nextProducerID)
		}
		b.img.nextProducerID = r.FirstID + int64(r.Size)
	default:
		panic(fmt.Sprintf("BUG: no apply for record %T", rec))
	}
	return nil
}

func (b *imageBuilder) setFenced(id int32, epoch int64, fenced bool) error {
	bi := b.img.brokers[id]
	if bi == nil || bi.Epoch != epoch {
		return stale("fence=%v broker %d epoch %d", fenced, id, epoch)
	}
	nb := *bi
	nb.Fenced = fenced
	b.putBroker(&nb)
	return nil
}

func (b *imageBuilder) alterConfigs(r *AlterConfigsRecord) error {
	apply := func(cur map[string]string) map[string]string {
		m := maps.Clone(cur)
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, r.Set)
		for _, k := range r.Delete {
			delete(m, k)
		}
		if len(m) == 0 {
			return nil
		}
		return m
	}
	switch r.ResourceType {
	case ConfigTopic:
		t := b.img.topics[r.ResourceName]
		if t == nil {
			return stale("configs of unknown topic %q", r.ResourceName)
		}
		nt := *t
		nt.Configs = apply(t.Configs)
		b.putTopic(&nt)
	case ConfigBroker:
		if !validBrokerResource(r.ResourceName) {
			return stale("configs of broker %q", r.ResourceName)
		}
		b.putBrokerConfigs(r.ResourceName, apply(b.img.brokerConfigs[r.ResourceName]))
	default:
		return stale("config resource type %d", r.ResourceType)
	}
	return nil
}

func (b *imageBuilder) changePartition(r *PartitionChangeRecord) error {
	t := b.img.topicsByID[r.TopicID]
	if t == nil || r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
		return stale("change of unknown partition %x-%d", r.TopicID, r.Partition)
	}
	cur := t.Partitions[r.Partition]
	next := PartitionState{Replicas: r.Replicas, ISR: r.ISR, Leader: r.Leader, LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch}
	wantLeaderEpoch := cur.LeaderEpoch
	if r.Leader != cur.Leader {
		wantLeaderEpoch++
	}
	if r.PartitionEpoch != cur.PartitionEpoch+1 || r.LeaderEpoch != wantLeaderEpoch || validPartition(next) != nil {
		return stale("change of %s-%d from epoch %d/%d to %d/%d", t.Name, r.Partition,
			cur.LeaderEpoch, cur.PartitionEpoch, r.LeaderEpoch, r.PartitionEpoch)
	}
	b.putTopic(t.withPartition(r.Partition, next))
	return nil
}

// newPartitions turns PartitionRecords into partition states at epoch 0.
func newPartitions(recs []PartitionRecord) ([]PartitionState, error) {
	out := make([]PartitionState, len(recs))
	for i, p := range recs {
		out[i] = PartitionState{Replicas: p.Replicas, ISR: p.ISR, Leader: p.Leader}
		if err := validPartition(out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// validPartition checks the invariants of PartitionState that need no other state.
func validPartition(p PartitionState) error {
	if len(p.Replicas) == 0 || len(p.ISR) == 0 {
		return errors.New("empty replicas or ISR")
	}
	for i, r := range p.Replicas {
		if r < 0 || slices.Contains(p.Replicas[:i], r) {
			return errors.New("bad replica")
		}
	}
	for i, r := range p.ISR {
		if !contains(p.Replicas, r) || slices.Contains(p.ISR[:i], r) {
			return errors.New("ISR not a subset of replicas")
		}
	}
	if p.Leader != NoLeader && !contains(p.ISR, p.Leader) {
		return errors.New("leader not in ISR")
	}
	if p.LeaderEpoch < 0 || p.PartitionEpoch < 0 {
		return errors.New("negative epoch")
	}
	return nil
}

// validBrokerResource accepts "" (cluster default) or a decimal broker id.
func validBrokerResource(name string) bool {
	if name == "" {
		return true
	}
	id, err := strconv.ParseInt(name, 10, 32)
	return err == nil && id >= 0 && strconv.FormatInt(id, 10) == name
}

// validTopicName applies Kafka's rules: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
func validTopicName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
