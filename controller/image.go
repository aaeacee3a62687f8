package controller

import (
	"maps"
	"slices"
	"strings"
)

// NoLeader is the Leader of a partition that has none.
const NoLeader int32 = -1

// Image is an immutable view of the cluster metadata after the records up to AppliedIndex.
// Nothing reachable from an Image may be modified, by the controller or by callers: the FSM
// builds a new Image for each Raft entry, sharing the parts that did not change
// (copy-on-write), and publishes it with an atomic pointer store.
type Image struct {
	appliedIndex   uint64
	nextProducerID int64
	brokers        map[int32]*BrokerInfo
	topics         map[string]*TopicInfo   // by name
	topicsByID     map[[16]byte]*TopicInfo // same values as topics
	brokerConfigs  map[string]map[string]string
	controllers    map[int32]*ControllerInfo
}

// ControllerInfo is a controller's registration (a node with the controller role).
type ControllerInfo struct {
	ID            int32
	IncarnationID [16]byte
	// Endpoints are the Kafka listeners that answer the controller APIs.
	Endpoints []Endpoint
}

// BrokerInfo is a broker's registration.
type BrokerInfo struct {
	ID            int32
	Epoch         int64 // Raft index of the registration; changes on every registration
	IncarnationID [16]byte
	Endpoints     []Endpoint
	Rack          *string
	// Fenced brokers lead no partition and are not added to ISRs.
	Fenced bool
}

// TopicInfo is a topic and its partitions; partition i is Partitions[i].
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Partitions []PartitionState
	Configs    map[string]string // overrides only; nil when none
}

// PartitionState is a partition's replicas and leadership.
//
// Invariants (kept by the leader, checked by the FSM): Replicas is non-empty without
// duplicates; ISR is a non-empty subset of Replicas; Leader is NoLeader or a member of the
// ISR that was unfenced when elected; LeaderEpoch grows by one with each leader change and
// PartitionEpoch by one with any change.
type PartitionState struct {
	Replicas       []int32
	ISR            []int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
}

func emptyImage() *Image {
	return &Image{
		brokers:       map[int32]*BrokerInfo{},
		topics:        map[string]*TopicInfo{},
		topicsByID:    map[[16]byte]*TopicInfo{},
		brokerConfigs: map[string]map[string]string{},
		controllers:   map[int32]*ControllerInfo{},
	}
}

// AppliedIndex is the Raft index of the last metadata entry in this image (0 before any).
func (img *Image) AppliedIndex() uint64 { return img.appliedIndex }

// NextProducerID is the first producer id not yet handed out.
func (img *Image) NextProducerID() int64 { return img.nextProducerID }

// Broker returns a broker's registration, or nil.
func (img *Image) Broker(id int32) *BrokerInfo { return img.brokers[id] }

// Brokers returns every registered broker, by ascending id.
func (img *Image) Brokers() []*BrokerInfo {
	out := make([]*BrokerInfo, 0, len(img.brokers))
	for _, id := range slices.Sorted(maps.Keys(img.brokers)) {
		out = append(out, img.brokers[id])
	}
	return out
}

// Controller returns a controller's registration, or nil.
func (img *Image) Controller(id int32) *ControllerInfo { return img.controllers[id] }

// Controllers returns every registered controller, by ascending id. A controller removed
// from the quorum keeps its registration.
func (img *Image) Controllers() []*ControllerInfo {
	out := make([]*ControllerInfo, 0, len(img.controllers))
	for _, id := range slices.Sorted(maps.Keys(img.controllers)) {
		out = append(out, img.controllers[id])
	}
	return out
}

// Topic returns a topic by name, or nil.
func (img *Image) Topic(name string) *TopicInfo { return img.topics[name] }

// TopicByID returns a topic by id, or nil.
func (img *Image) TopicByID(id [16]byte) *TopicInfo { return img.topicsByID[id] }

// Topics returns every topic, by ascending name.
func (img *Image) Topics() []*TopicInfo {
	out := make([]*TopicInfo, 0, len(img.topics))
	for _, name := range slices.Sorted(maps.Keys(img.topics)) {
		out = append(out, img.topics[name])
	}
	return out
}

// NumTopics is the number of topics.
func (img *Image) NumTopics() int { return len(img.topics) }

// Partition returns a partition's state.
func (img *Image) Partition(topic string, partition int32) (PartitionState, bool) {
	t := img.topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return PartitionState{}, false
	}
	return t.Partitions[partition], true
}

// BrokerConfigs returns the broker config overrides of a broker (decimal id) or, for "", the
// cluster-wide defaults; nil when none.
func (img *Image) BrokerConfigs(name string) map[string]string { return img.brokerConfigs[name] }

// brokerEligible reports whether id may lead or join an ISR: registered and unfenced.
func (img *Image) brokerEligible(id int32) bool {
	b := img.brokers[id]
	return b != nil && !b.Fenced
}

// uncleanElectionEnabled resolves unclean.leader.election.enable for a topic: the topic's
// override, else the cluster-wide broker config, else def.
func (img *Image) uncleanElectionEnabled(t *TopicInfo, def bool) bool {
	const key = "unclean.leader.election.enable"
	if v, ok := t.Configs[key]; ok {
		return strings.EqualFold(v, "true")
	}
	if v, ok := img.brokerConfigs[""][key]; ok {
		return strings.EqualFold(v, "true")
	}
	return def
}

// imageBuilder derives a new Image from a base, copying each map on its first change so the
// base stays untouched.
type imageBuilder struct {
	img                                                           *Image
	brokersCopied, topicsCopied, configsCopied, controllersCopied bool
}

func newImageBuilder(base *Image) *imageBuilder {
	img := *base
	return &imageBuilder{img: &img}
}

func (b *imageBuilder) putBroker(bi *BrokerInfo) {
	if !b.brokersCopied {
		b.img.brokers, b.brokersCopied = maps.Clone(b.img.brokers), true
	}
	b.img.brokers[bi.ID] = bi
}

func (b *imageBuilder) deleteBroker(id int32) {
	if !b.brokersCopied {
		b.img.brokers, b.brokersCopied = maps.Clone(b.img.brokers), true
	}
	delete(b.img.brokers, id)
}

func (b *imageBuilder) putController(ci *ControllerInfo) {
	if !b.controllersCopied {
		b.img.controllers, b.controllersCopied = maps.Clone(b.img.controllers), true
	}
	b.img.controllers[ci.ID] = ci
}

func (b *imageBuilder) copyTopics() {
	if !b.topicsCopied {
		b.img.topics, b.img.topicsByID, b.topicsCopied = maps.Clone(b.img.topics), maps.Clone(b.img.topicsByID), true
	}
}

func (b *imageBuilder) putTopic(t *TopicInfo) {
	b.copyTopics()
	b.img.topics[t.Name] = t
	b.img.topicsByID[t.ID] = t
}

func (b *imageBuilder) deleteTopic(t *TopicInfo) {
	b.copyTopics()
	delete(b.img.topics, t.Name)
	delete(b.img.topicsByID, t.ID)
}

func (b *imageBuilder) putBrokerConfigs(name string, m map[string]string) {
	if !b.configsCopied {
		b.img.brokerConfigs, b.configsCopied = maps.Clone(b.img.brokerConfigs), true
	}
	if len(m) == 0 {
		delete(b.img.brokerConfigs, name)
	} else {
		b.img.brokerConfigs[name] = m
	}
}

// withPartition returns a copy of t with partition p replaced.
func (t *TopicInfo) withPartition(p int32, ps PartitionState) *TopicInfo {
	nt := *t
	nt.Partitions = slices.Clone(t.Partitions)
	nt.Partitions[p] = ps
	return &nt
}

// contains reports whether id is in ids.
func contains(ids []int32, id int32) bool { return slices.Contains(ids, id) }

// without returns ids less id, as a new slice.
func without(ids []int32, id int32) []int32 {
	out := make([]int32, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}
