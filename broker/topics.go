package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/logstore"
)

// Local metadata of a single node: meta.properties (Kafka's format: cluster and node id) and
// spate-topics.json (topics, their ids, partition counts and config overrides), both written
// atomically. The Raft controller (a later issue) replaces the topics file with its log.
const (
	metaPropertiesFile = "meta.properties"
	topicsFile         = "spate-topics.json"
)

type topicMeta struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type clusterMeta struct {
	ClusterID string                `json:"-"`
	NodeID    int32                 `json:"-"`
	Topics    map[string]*topicMeta `json:"topics"`
}

func loadMeta(dir, clusterID string, nodeID int32) (*clusterMeta, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m := &clusterMeta{Topics: map[string]*topicMeta{}}
	props, err := os.ReadFile(filepath.Join(dir, metaPropertiesFile))
	switch {
	case err == nil:
		for _, line := range strings.Split(string(props), "\n") {
			if v, ok := strings.CutPrefix(line, "cluster.id="); ok {
				m.ClusterID = strings.TrimSpace(v)
			}
		}
		if clusterID != "" && m.ClusterID != clusterID {
			return nil, fmt.Errorf("data dir %s belongs to cluster %q, not %q", dir, m.ClusterID, clusterID)
		}
	case errors.Is(err, os.ErrNotExist):
		m.ClusterID = clusterID
		if m.ClusterID == "" {
			var id [16]byte
			rand.Read(id[:])
			m.ClusterID = base64.RawURLEncoding.EncodeToString(id[:])
		}
		body := fmt.Sprintf("#Spate\nversion=1\ncluster.id=%s\nnode.id=%d\n", m.ClusterID, nodeID)
		if err := writeFileAtomic(filepath.Join(dir, metaPropertiesFile), []byte(body)); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	m.NodeID = nodeID
	raw, err := os.ReadFile(filepath.Join(dir, topicsFile))
	if err == nil {
		if err := json.Unmarshal(raw, m); err != nil {
			return nil, fmt.Errorf("read %s: %w", topicsFile, err)
		}
		if m.Topics == nil {
			m.Topics = map[string]*topicMeta{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return m, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// topic is a topic's in-memory state. partitions only grows (CreatePartitions).
type topic struct {
	meta       topicMeta
	partitions []*partition          // in cluster mode, nil for partitions hosted elsewhere
	info       *controller.TopicInfo // cluster mode: the controller's view (replicas, leaders)
}

// topicView is an immutable snapshot of the topics: readers load it without locks, writers
// publish a new one (copy-on-write). A *topic in a published view is never modified either:
// a change (partitions added, configs altered) publishes a new *topic sharing the partitions.
type topicView struct {
	byName map[string]*topic
	byID   map[[16]byte]*topic
}

// topicManager owns topics and partitions. Lookups (every request, on the event loops) load
// the current view and never wait; creation, deletion and config changes serialize on mu,
// do their disk work, persist the metadata file and then publish a new view.
type topicManager struct {
	b    *Broker
	mu   sync.Mutex // writers only
	meta *clusterMeta
	view atomic.Pointer[topicView]
}

func newTopicManager(b *Broker, meta *clusterMeta) *topicManager {
	tm := &topicManager{b: b, meta: meta}
	v := &topicView{byName: map[string]*topic{}, byID: map[[16]byte]*topic{}}
	for name, tmeta := range meta.Topics {
		t := &topic{meta: *tmeta}
		v.byName[name] = t
		v.byID[tmeta.ID] = t
	}
	tm.view.Store(v)
	return tm
}

// edit returns a copy of the current view for a writer (holding mu) to change and publish.
func (tm *topicManager) editLocked() *topicView {
	cur := tm.view.Load()
	v := &topicView{byName: make(map[string]*topic, len(cur.byName)+1), byID: make(map[[16]byte]*topic, len(cur.byID)+1)}
	for k, t := range cur.byName {
		v.byName[k] = t
	}
	for k, t := range cur.byID {
		v.byID[k] = t
	}
	return v
}

func (v *topicView) put(t *topic) {
	v.byName[t.meta.Name] = t
	v.byID[t.meta.ID] = t
}

// logConfigFor is the config source for logstore.OpenStore.
func (tm *topicManager) logConfigFor(tp logstore.TopicPartition) logstore.Config {
	if t := tm.view.Load().byName[tp.Topic]; t != nil {
		return logConfig(tm.b.cfg.Log, t.meta.Configs)
	}
	return tm.b.cfg.Log
}

// attachLogs opens or creates the log of every known partition and deletes logs of unknown
// topics (left by a deletion interrupted by a crash).
func (tm *topicManager) attachLogs() error {
	known := map[logstore.TopicPartition]bool{}
	for _, t := range tm.view.Load().byName {
		for p := int32(0); p < t.meta.Partitions; p++ {
			tp := logstore.TopicPartition{Topic: t.meta.Name, Partition: p}
			known[tp] = true
			part, err := tm.openPartition(t, p)
			if err != nil {
				return err
			}
			t.partitions = append(t.partitions, part)
		}
	}
	for _, tp := range tm.b.store.Logs() {
		if !known[tp] {
			tm.b.log.Warn("deleting log of unknown topic", "partition", tp.String())
			tm.b.store.DeleteLog(tp)
		}
	}
	return nil
}

func (tm *topicManager) openPartition(t *topic, p int32) (*partition, error) {
	tp := logstore.TopicPartition{Topic: t.meta.Name, Partition: p}
	l, err := tm.b.store.CreateLog(tp, logConfig(tm.b.cfg.Log, t.meta.Configs))
	if err != nil {
		return nil, fmt.Errorf("open partition %s: %w", tp, err)
	}
	part := newPartition(tm.b, tp, t.meta.ID, l)
	part.minISR = int(parseLong(configOr(t.meta.Configs, "min.insync.replicas", "1")))
	part.logAppendTime = configOr(t.meta.Configs, "message.timestamp.type", "CreateTime") == "LogAppendTime"
	if err := part.loadProducerState(); err != nil {
		return nil, fmt.Errorf("load producer state of %s: %w", tp, err)
	}
	tm.b.metrics.addPartition(part)
	return part, nil
}

func configOr(m map[string]string, k, def string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return def
}

// saveLocked writes the topics file for view v. Caller holds mu.
func (tm *topicManager) saveLocked(v *topicView) error {
	tm.meta.Topics = map[string]*topicMeta{}
	for name, t := range v.byName {
		m := t.meta
		m.Partitions = int32(len(t.partitions))
		tm.meta.Topics[name] = &m
	}
	raw, err := json.MarshalIndent(tm.meta, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(tm.b.cfg.DataDir, topicsFile), raw)
}

// get returns a topic by name, or nil.
func (tm *topicManager) get(name string) *topic { return tm.view.Load().byName[name] }

// getBytes is get for a name that is a view of a request (no allocation).
func (tm *topicManager) getBytes(name []byte) *topic { return tm.view.Load().byName[string(name)] }

// getByID returns a topic by id, or nil.
func (tm *topicManager) getByID(id [16]byte) *topic { return tm.view.Load().byID[id] }

// partition returns a topic's partition, or nil.
func (tm *topicManager) partition(name string, p int32) *partition {
	return tm.get(name).partition(p)
}

// partitionBytes is partition for a name that is a view of a request (no allocation).
func (tm *topicManager) partitionBytes(name []byte, p int32) *partition {
	return tm.getBytes(name).partition(p)
}

func (t *topic) partition(p int32) *partition {
	if t == nil || p < 0 || int(p) >= len(t.partitions) {
		return nil
	}
	return t.partitions[p]
}

// names returns every topic name, sorted.
func (tm *topicManager) names() []string {
	v := tm.view.Load()
	out := make([]string, 0, len(v.byName))
	for n := range v.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// validTopicName applies Kafka's rules: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
func validTopicName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// createTopic creates a topic with its logs. It returns a Kafka error code and message.
func (tm *topicManager) create(name string, partitions int32, configs map[string]string, validateOnly bool) (*topic, int16, string) {
	return tm.createRF(name, partitions, -1, nil, configs, validateOnly)
}

// createRF is create with a replication factor (-1: the default) and optional manual
// assignments (cluster mode only).
func (tm *topicManager) createRF(name string, partitions int32, rf int16, assignments map[int32][]int32, configs map[string]string, validateOnly bool) (*topic, int16, string) {
	if !validTopicName(name) {
		return nil, errInvalidTopicException, fmt.Sprintf("Topic name %q is illegal", name)
	}
	if partitions <= 0 {
		return nil, errInvalidPartitions, "Number of partitions must be larger than 0."
	}
	for k, v := range configs {
		v := v
		if code, msg := validateTopicConfig(k, &v); code != 0 {
			return nil, code, msg
		}
	}
	if c := tm.b.cluster; c != nil {
		return c.createTopic(name, partitions, rf, assignments, configs, validateOnly)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.get(name) != nil {
		return nil, errTopicAlreadyExists, fmt.Sprintf("Topic '%s' already exists.", name)
	}
	if collides := tm.collidingLocked(name); collides != "" {
		return nil, errInvalidTopicException, fmt.Sprintf("Topic '%s' collides with existing topic: %s", name, collides)
	}
	if validateOnly {
		return &topic{meta: topicMeta{Name: name, Partitions: partitions, Configs: configs}}, 0, ""
	}
	t := &topic{meta: topicMeta{Name: name, Partitions: partitions, Configs: configs}}
	rand.Read(t.meta.ID[:])
	for p := int32(0); p < partitions; p++ {
		part, err := tm.openPartition(t, p)
		if err != nil {
			for _, q := range t.partitions {
				tm.b.store.DeleteLog(q.tp)
			}
			return nil, errKafkaStorageError, err.Error()
		}
		t.partitions = append(t.partitions, part)
	}
	v := tm.editLocked()
	v.put(t)
	if err := tm.saveLocked(v); err != nil {
		return nil, errKafkaStorageError, err.Error()
	}
	tm.view.Store(v)
	tm.b.log.Info("created topic", "topic", name, "partitions", partitions)
	return t, 0, ""
}

// collidingLocked reports an existing topic that differs only by '.' versus '_' (Kafka
// forbids such pairs because metric names would collide).
func (tm *topicManager) collidingLocked(name string) string {
	norm := strings.ReplaceAll(name, ".", "_")
	for n := range tm.view.Load().byName {
		if n != name && strings.ReplaceAll(n, ".", "_") == norm {
			return n
		}
	}
	return ""
}

// delete removes a topic and its logs. A non-zero id must be the topic's (DeleteTopics by id),
// else UNKNOWN_TOPIC_ID.
func (tm *topicManager) delete(name string, id [16]byte) int16 {
	if c := tm.b.cluster; c != nil {
		return c.deleteTopic(name, id)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	t := tm.get(name)
	if t == nil {
		if id != ([16]byte{}) {
			return errUnknownTopicID
		}
		return errUnknownTopicOrPartition
	}
	if id != ([16]byte{}) && t.meta.ID != id {
		return errUnknownTopicID
	}
	v := tm.editLocked()
	delete(v.byName, name)
	delete(v.byID, t.meta.ID)
	if err := tm.saveLocked(v); err != nil {
		return errKafkaStorageError
	}
	tm.view.Store(v)
	for _, p := range t.partitions {
		p.deleted()
		tm.b.metrics.removePartition(p)
		tm.b.store.DeleteLog(p.tp)
	}
	tm.b.log.Info("deleted topic", "topic", name)
	return 0
}

// addPartitions grows a topic to count partitions.
func (tm *topicManager) addPartitions(name string, count int32, validateOnly bool) (int16, string) {
	if c := tm.b.cluster; c != nil {
		return c.createPartitions(name, count, validateOnly)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	t := tm.get(name)
	if t == nil {
		return errUnknownTopicOrPartition, "This server does not host this topic-partition."
	}
	cur := int32(len(t.partitions))
	if count < cur {
		return errInvalidPartitions, fmt.Sprintf("Topic currently has %d partitions, which is higher than the requested %d.", cur, count)
	}
	if count == cur {
		return errInvalidPartitions, fmt.Sprintf("Topic already has %d partitions.", cur)
	}
	if validateOnly {
		return 0, ""
	}
	nt := &topic{meta: t.meta, partitions: append([]*partition(nil), t.partitions...)}
	for p := cur; p < count; p++ {
		part, err := tm.openPartition(nt, p)
		if err != nil {
			return errKafkaStorageError, err.Error()
		}
		nt.partitions = append(nt.partitions, part)
	}
	nt.meta.Partitions = count
	v := tm.editLocked()
	v.put(nt)
	if err := tm.saveLocked(v); err != nil {
		return errKafkaStorageError, err.Error()
	}
	tm.view.Store(v)
	return 0, ""
}

// setConfigs replaces a topic's config overrides (already validated) and applies them.
func (tm *topicManager) setConfigs(name string, configs map[string]string) int16 {
	if c := tm.b.cluster; c != nil {
		return c.setTopicConfigs(name, configs)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	t := tm.get(name)
	if t == nil {
		return errUnknownTopicOrPartition
	}
	nt := &topic{meta: t.meta, partitions: t.partitions}
	nt.meta.Configs = configs
	v := tm.editLocked()
	v.put(nt)
	if err := tm.saveLocked(v); err != nil {
		return errKafkaStorageError
	}
	tm.view.Store(v)
	for _, p := range t.partitions {
		p.applyConfigs(configs)
	}
	return 0
}

// applyConfigs applies a topic's config overrides to one of its partitions.
func (p *partition) applyConfigs(configs map[string]string) {
	lc := logConfig(p.b.cfg.Log, configs)
	p.log.SetConfig(lc)
	p.mu.Lock()
	p.minISR = int(parseLong(configOr(configs, "min.insync.replicas", "1")))
	p.logAppendTime = lc.LogAppendTime
	p.mu.Unlock()
}

// configsOf returns a copy of a topic's overrides.
func (tm *topicManager) configsOf(name string) (map[string]string, bool) {
	t := tm.get(name)
	if t == nil {
		return nil, false
	}
	out := make(map[string]string, len(t.meta.Configs))
	for k, v := range t.meta.Configs {
		out[k] = v
	}
	return out, true
}

// saveProducerSnapshots writes every partition's producer state: all of them at a clean
// shutdown, and periodically (changedOnly) those whose log grew since their last snapshot, so
// that a restart after a crash replays only the tail of each log (Kafka snapshots at each
// segment roll).
func (tm *topicManager) saveProducerSnapshots(changedOnly bool) {
	for _, t := range tm.view.Load().byName {
		for _, p := range t.partitions {
			if p == nil || !p.isLeader() || changedOnly && p.log.LogEndOffset() == p.snapshotLEO.Load() {
				continue
			}
			if err := p.saveProducerSnapshot(); err != nil {
				tm.b.log.Warn("producer snapshot", "partition", p.tp.String(), "err", err)
			}
		}
	}
}
