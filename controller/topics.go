package controller

import (
	"context"
	"crypto/rand"
	"maps"
	"slices"
	"strings"
)

// Topic operations on the leader: CreateTopics, CreatePartitions, DeleteTopics,
// AlterConfigs. Each validates every item against the Image (and the items before it in the
// same call), answers per item with the Kafka error code the Java controller would, and
// proposes the valid items' records as one Raft entry.
//
// Config values are stored as given: the broker validates config names and values (it owns
// the config table) before calling.

// TopicSpec is a topic to create (a CreateTopics request topic).
type TopicSpec struct {
	Name string
	// NumPartitions and ReplicationFactor: -1 takes Config.DefaultNumPartitions /
	// DefaultReplicationFactor. Both must be -1 when Assignments is set.
	NumPartitions     int32
	ReplicationFactor int16
	// Assignments optionally places partitions by hand: partition → replicas (the first is
	// the preferred leader). Partitions must be 0..n-1.
	Assignments map[int32][]int32
	Configs     map[string]string
}

// TopicResult is the outcome of creating one topic.
type TopicResult struct {
	Name              string
	TopicID           [16]byte // zero when validateOnly or on error
	ErrorCode         int16
	ErrorMessage      string
	NumPartitions     int32
	ReplicationFactor int16
}

// CreateTopics creates topics, placing replicas on unfenced brokers (placement.go) unless
// assigned by hand. New partitions have ISR = the unfenced replicas, leader = the first of
// them, epochs 0. The error is non-nil only when the controller could not answer (not the
// leader, closed, Raft failure); results are then nil. Leader only.
func (c *Controller) CreateTopics(ctx context.Context, topics []TopicSpec, validateOnly bool) ([]TopicResult, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return nil, err
	}
	img := c.Image()
	names := map[string]int{}
	for _, t := range topics {
		names[t.Name]++
	}
	normalized := map[string]string{} // '.' → '_', of existing and accepted topics
	for name := range img.topics {
		normalized[strings.ReplaceAll(name, ".", "_")] = name
	}
	results := make([]TopicResult, len(topics))
	var recs []Record
	for i, spec := range topics {
		res := &results[i]
		res.Name = spec.Name
		if names[spec.Name] > 1 {
			res.ErrorCode, res.ErrorMessage = CodeInvalidRequest, "Duplicate topic name."
			continue
		}
		rec, err := c.newTopic(img, spec, normalized)
		if err != nil {
			res.ErrorCode, res.ErrorMessage = err.Code, err.Message
			continue
		}
		normalized[strings.ReplaceAll(spec.Name, ".", "_")] = spec.Name
		res.NumPartitions, res.ReplicationFactor = int32(len(rec.Partitions)), int16(len(rec.Partitions[0].Replicas))
		if !validateOnly {
			res.TopicID = rec.TopicID
			recs = append(recs, rec)
		}
	}
	if len(recs) > 0 {
		if _, err := c.propose(ctx, recs...); err != nil {
			return nil, err
		}
		c.log.Info("created topics", "count", len(recs))
	}
	return results, nil
}

func (c *Controller) newTopic(img *Image, spec TopicSpec, normalized map[string]string) (*CreateTopicRecord, *Error) {
	if !validTopicName(spec.Name) {
		return nil, kafkaErr(CodeInvalidTopicException, "Topic name %q is illegal, it must be 1-249 characters of [a-zA-Z0-9._-], and not '.' or '..'.", spec.Name)
	}
	if img.topics[spec.Name] != nil {
		return nil, kafkaErr(CodeTopicAlreadyExists, "Topic '%s' already exists.", spec.Name)
	}
	if other, ok := normalized[strings.ReplaceAll(spec.Name, ".", "_")]; ok {
		return nil, kafkaErr(CodeInvalidTopicException, "Topic '%s' collides with existing topic: %s", spec.Name, other)
	}
	var parts []PartitionRecord
	if spec.Assignments != nil {
		if spec.ReplicationFactor != -1 {
			return nil, kafkaErr(CodeInvalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.")
		}
		if spec.NumPartitions != -1 {
			return nil, kafkaErr(CodeInvalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.")
		}
		var err *Error
		if parts, err = manualPartitions(img, spec.Assignments); err != nil {
			return nil, err
		}
	} else {
		n, rf := spec.NumPartitions, spec.ReplicationFactor
		if rf == -1 {
			rf = c.cfg.DefaultReplicationFactor
		}
		if n == -1 {
			n = c.cfg.DefaultNumPartitions
		}
		switch {
		case rf <= 0:
			return nil, kafkaErr(CodeInvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.")
		case n <= 0:
			return nil, kafkaErr(CodeInvalidPartitions, "Number of partitions was set to an invalid non-positive value.")
		case n > maxPartitionsPerCreate:
			return nil, kafkaErr(CodeInvalidPartitions, "Number of partitions %d is larger than the limit of %d.", n, maxPartitionsPerCreate)
		}
		placed, err := placeReplicas(img, 0, n, rf, c.cfg.rand)
		if err != nil {
			return nil, kafkaErr(CodeInvalidReplicationFactor, "Unable to replicate the partition %d time(s): %s", rf, err)
		}
		parts = make([]PartitionRecord, len(placed))
		for i, r := range placed {
			parts[i] = PartitionRecord{Replicas: r, ISR: r, Leader: r[0]}
		}
	}
	return &CreateTopicRecord{Name: spec.Name, TopicID: newTopicID(img), Partitions: parts, Configs: maps.Clone(spec.Configs)}, nil
}

// manualPartitions validates a hand-made assignment as Kafka does.
func manualPartitions(img *Image, assignments map[int32][]int32) ([]PartitionRecord, *Error) {
	n := int32(len(assignments))
	if n == 0 || n > maxPartitionsPerCreate {
		return nil, kafkaErr(CodeInvalidReplicaAssignment, "The manual partition assignment must have 1 to %d partitions.", maxPartitionsPerCreate)
	}
	parts := make([]PartitionRecord, n)
	rf := -1
	for pid := range n {
		replicas, ok := assignments[pid]
		if !ok {
			return nil, kafkaErr(CodeInvalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
		}
		if err := validateManualReplicas(img, replicas, rf); err != nil {
			return nil, err
		}
		rf = len(replicas)
		isr := eligibleOf(img, replicas)
		if len(isr) == 0 {
			return nil, kafkaErr(CodeInvalidReplicaAssignment, "All brokers specified in the manual partition assignment for partition %d are fenced or in controlled shutdown.", pid)
		}
		parts[pid] = PartitionRecord{Replicas: slices.Clone(replicas), ISR: isr, Leader: isr[0]}
	}
	return parts, nil
}

func validateManualReplicas(img *Image, replicas []int32, rf int) *Error {
	if len(replicas) == 0 {
		return kafkaErr(CodeInvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
	}
	for i, b := range replicas {
		if img.brokers[b] == nil {
			return kafkaErr(CodeInvalidReplicaAssignment, "The manual partition assignment includes broker %d, but no such broker is registered.", b)
		}
		if slices.Contains(replicas[:i], b) {
			return kafkaErr(CodeInvalidReplicaAssignment, "The manual partition assignment includes the broker %d more than once.", b)
		}
	}
	if rf >= 0 && len(replicas) != rf {
		return kafkaErr(CodeInvalidReplicaAssignment, "The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).", len(replicas), rf)
	}
	return nil
}

// eligibleOf returns the unfenced brokers of replicas, in order.
func eligibleOf(img *Image, replicas []int32) []int32 {
	var out []int32
	for _, r := range replicas {
		if img.brokerEligible(r) {
			out = append(out, r)
		}
	}
	return out
}

// newTopicID returns a random (version 4) UUID that no topic has.
func newTopicID(img *Image) [16]byte {
	for {
		var id [16]byte
		rand.Read(id[:])
		id[6] = id[6]&0x0f | 0x40
		id[8] = id[8]&0x3f | 0x80
		if img.topicsByID[id] == nil {
			return id
		}
	}
}

// PartitionsSpec grows a topic to Count partitions (a CreatePartitions request topic).
type PartitionsSpec struct {
	Topic string
	Count int32
	// Assignments optionally places the new partitions by hand, one replica list per new
	// partition, each as long as the topic's replication factor.
	Assignments [][]int32
}

// PartitionsResult is the outcome of growing one topic.
type PartitionsResult struct {
	Topic        string
	ErrorCode    int16
	ErrorMessage string
}

// CreatePartitions adds partitions to topics. The replication factor is partition 0's.
// The error is non-nil only when the controller could not answer. Leader only.
func (c *Controller) CreatePartitions(ctx context.Context, specs []PartitionsSpec, validateOnly bool) ([]PartitionsResult, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return nil, err
	}
	img := c.Image()
	names := map[string]int{}
	for _, s := range specs {
		names[s.Topic]++
	}
	results := make([]PartitionsResult, len(specs))
	var recs []Record
	for i, spec := range specs {
		results[i].Topic = spec.Topic
		if names[spec.Topic] > 1 {
			results[i].ErrorCode, results[i].ErrorMessage = CodeInvalidRequest, "Duplicate topic name."
			continue
		}
		rec, err := c.newPartitions(img, spec)
		if err != nil {
			results[i].ErrorCode, results[i].ErrorMessage = err.Code, err.Message
			continue
		}
		if !validateOnly {
			recs = append(recs, rec)
		}
	}
	if len(recs) > 0 {
		if _, err := c.propose(ctx, recs...); err != nil {
			return nil, err
		}
	}
	return results, nil
}

func (c *Controller) newPartitions(img *Image, spec PartitionsSpec) (*CreatePartitionsRecord, *Error) {
	t := img.topics[spec.Topic]
	if t == nil {
		return nil, kafkaErr(CodeUnknownTopicOrPartition, "This server does not host this topic-partition.")
	}
	cur := int32(len(t.Partitions))
	switch {
	case spec.Count == cur:
		return nil, kafkaErr(CodeInvalidPartitions, "Topic already has %d partition(s).", cur)
	case spec.Count < cur:
		return nil, kafkaErr(CodeInvalidPartitions, "The topic %s currently has %d partition(s); %d would not be an increase.", spec.Topic, cur, spec.Count)
	case spec.Count-cur > maxPartitionsPerCreate:
		return nil, kafkaErr(CodeInvalidPartitions, "Adding %d partitions is more than the limit of %d.", spec.Count-cur, maxPartitionsPerCreate)
	}
	add := spec.Count - cur
	rf := len(t.Partitions[0].Replicas)
	rec := &CreatePartitionsRecord{TopicID: t.ID, Partitions: make([]PartitionRecord, add)}
	if spec.Assignments != nil {
		if int32(len(spec.Assignments)) != add {
			return nil, kafkaErr(CodeInvalidReplicaAssignment, "Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", add, len(spec.Assignments))
		}
		for i, replicas := range spec.Assignments {
			if err := validateManualReplicas(img, replicas, rf); err != nil {
				return nil, err
			}
			isr := eligibleOf(img, replicas)
			if len(isr) == 0 {
				return nil, kafkaErr(CodeInvalidReplicaAssignment, "All brokers specified in the manual partition assignment for partition %d are fenced or in controlled shutdown.", int(cur)+i)
			}
			rec.Partitions[i] = PartitionRecord{Replicas: slices.Clone(replicas), ISR: isr, Leader: isr[0]}
		}
		return rec, nil
	}
	placed, err := placeReplicas(img, cur, add, int16(rf), c.cfg.rand)
	if err != nil {
		return nil, kafkaErr(CodeInvalidReplicationFactor, "Unable to replicate the partition %d time(s): %s", rf, err)
	}
	for i, r := range placed {
		rec.Partitions[i] = PartitionRecord{Replicas: r, ISR: r, Leader: r[0]}
	}
	return rec, nil
}

// TopicRef names a topic to delete: by ID when ID is non-zero, else by Name.
type TopicRef struct {
	Name string
	ID   [16]byte
}

// DeleteTopicResult is the outcome of deleting one topic.
type DeleteTopicResult struct {
	Name         string
	TopicID      [16]byte
	ErrorCode    int16
	ErrorMessage string
}

// DeleteTopics deletes topics (UNKNOWN_TOPIC_OR_PARTITION for an unknown name,
// UNKNOWN_TOPIC_ID for an unknown id). The error is non-nil only when the controller could
// not answer. Leader only.
func (c *Controller) DeleteTopics(ctx context.Context, refs []TopicRef) ([]DeleteTopicResult, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return nil, err
	}
	img := c.Image()
	results := make([]DeleteTopicResult, len(refs))
	var recs []Record
	deleting := map[[16]byte]bool{}
	for i, ref := range refs {
		res := &results[i]
		res.Name, res.TopicID = ref.Name, ref.ID
		var t *TopicInfo
		if ref.ID != ([16]byte{}) {
			if t = img.topicsByID[ref.ID]; t == nil {
				res.ErrorCode, res.ErrorMessage = CodeUnknownTopicID, "This server does not host this topic ID."
				continue
			}
		} else if t = img.topics[ref.Name]; t == nil {
			res.ErrorCode, res.ErrorMessage = CodeUnknownTopicOrPartition, "This server does not host this topic-partition."
			continue
		}
		res.Name, res.TopicID = t.Name, t.ID
		if !deleting[t.ID] {
			deleting[t.ID] = true
			recs = append(recs, &DeleteTopicRecord{TopicID: t.ID})
		}
	}
	if len(recs) > 0 {
		if _, err := c.propose(ctx, recs...); err != nil {
			return nil, err
		}
		c.log.Info("deleted topics", "count", len(recs))
	}
	return results, nil
}

// ConfigChange sets and deletes config overrides of one resource (incremental). For
// ConfigBroker, ResourceName is a decimal broker id or "" for the cluster-wide default.
type ConfigChange struct {
	ResourceType ConfigResourceType
	ResourceName string
	Set          map[string]string
	Delete       []string
}

// ConfigResult is the outcome of one ConfigChange.
type ConfigResult struct {
	ResourceType ConfigResourceType
	ResourceName string
	ErrorCode    int16
	ErrorMessage string
}

// AlterConfigs applies config changes. Values are not validated here (the broker does);
// the resource must exist (topics) or be well-formed (brokers). The error is non-nil only
// when the controller could not answer. Leader only.
func (c *Controller) AlterConfigs(ctx context.Context, changes []ConfigChange, validateOnly bool) ([]ConfigResult, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if _, err := c.lead(); err != nil {
		return nil, err
	}
	img := c.Image()
	type resource struct {
		typ  ConfigResourceType
		name string
	}
	seen := map[resource]int{}
	for _, ch := range changes {
		seen[resource{ch.ResourceType, ch.ResourceName}]++
	}
	results := make([]ConfigResult, len(changes))
	var recs []Record
	for i, ch := range changes {
		res := &results[i]
		res.ResourceType, res.ResourceName = ch.ResourceType, ch.ResourceName
		if err := validateConfigChange(img, ch, seen[resource{ch.ResourceType, ch.ResourceName}] > 1); err != nil {
			res.ErrorCode, res.ErrorMessage = err.Code, err.Message
			continue
		}
		if !validateOnly && (len(ch.Set) > 0 || len(ch.Delete) > 0) {
			recs = append(recs, &AlterConfigsRecord{ResourceType: ch.ResourceType, ResourceName: ch.ResourceName,
				Set: maps.Clone(ch.Set), Delete: slices.Clone(ch.Delete)})
		}
	}
	if len(recs) > 0 {
		if _, err := c.propose(ctx, recs...); err != nil {
			return nil, err
		}
	}
	return results, nil
}

func validateConfigChange(img *Image, ch ConfigChange, duplicate bool) *Error {
	if duplicate {
		return kafkaErr(CodeInvalidRequest, "Duplicate resource in the request.")
	}
	switch ch.ResourceType {
	case ConfigTopic:
		if img.topics[ch.ResourceName] == nil {
			return kafkaErr(CodeUnknownTopicOrPartition, "Topic %s does not exist.", ch.ResourceName)
		}
	case ConfigBroker:
		if !validBrokerResource(ch.ResourceName) {
			return kafkaErr(CodeInvalidRequest, "Invalid broker name %q.", ch.ResourceName)
		}
	default:
		return kafkaErr(CodeInvalidRequest, "Unsupported resource type %d.", ch.ResourceType)
	}
	for k := range ch.Set {
		if k == "" || slices.Contains(ch.Delete, k) {
			return kafkaErr(CodeInvalidRequest, "Error due to duplicate or empty config key %q.", k)
		}
	}
	return nil
}
