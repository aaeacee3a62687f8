package broker

// CreateTopics v0–v7. A single node accepts replication factor 1 (or -1 for the default);
// more is INVALID_REPLICATION_FACTOR, as Kafka answers when there are too few brokers. Manual
// assignments must name this node. v5+ returns the topic's partitions, replication factor and
// configs; v7 the topic id.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.CreateTopics, 0, 7, true, func(b *Broker, h *reqHeader, req *kmsg.CreateTopicsRequest) kmsg.Response {
		resp := kmsg.NewPtrCreateTopicsResponse()
		seen := map[string]int{}
		for _, rt := range req.Topics {
			seen[rt.Topic]++
		}
		for _, rt := range req.Topics {
			out := kmsg.NewCreateTopicsResponseTopic()
			out.Topic = rt.Topic
			out.NumPartitions, out.ReplicationFactor = -1, -1
			code, msg := b.createOne(&rt, req.ValidateOnly, seen[rt.Topic] > 1, &out)
			out.ErrorCode = code
			if code != 0 && msg != "" && h.version >= 1 {
				out.ErrorMessage = &msg
			}
			resp.Topics = append(resp.Topics, out)
		}
		return resp
	})
}

func (b *Broker) createOne(rt *kmsg.CreateTopicsRequestTopic, validateOnly, duplicate bool, out *kmsg.CreateTopicsResponseTopic) (int16, string) {
	if duplicate {
		return errInvalidRequest, "Create topics request from client contains duplicate topic " + rt.Topic
	}
	if b.cluster != nil {
		return b.createOneCluster(rt, validateOnly, out)
	}
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	if len(rt.ReplicaAssignment) > 0 {
		if partitions != -1 || rf != -1 {
			return errInvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set."
		}
		partitions = int32(len(rt.ReplicaAssignment))
		for i, a := range rt.ReplicaAssignment {
			if a.Partition != int32(i) {
				return errInvalidReplicaAssignment, "Partitions should be consecutive and start at 0."
			}
			for _, r := range a.Replicas {
				if r != b.cfg.NodeID {
					return errInvalidReplicaAssignment, fmt.Sprintf("Unknown broker %d in replica assignment.", r)
				}
			}
			if len(a.Replicas) != 1 {
				return errInvalidReplicationFactor, "Replication factor larger than the available brokers: 1."
			}
		}
		rf = 1
	}
	if partitions == -1 {
		partitions = b.cfg.NumPartitions
	}
	if rf == -1 {
		rf = b.cfg.DefaultReplication
	}
	if rf <= 0 {
		return errInvalidReplicationFactor, "Replication factor must be larger than 0."
	}
	if rf > 1 {
		return errInvalidReplicationFactor, fmt.Sprintf("Replication factor: %d larger than available brokers: 1.", rf)
	}
	configs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue
		}
		configs[c.Name] = *c.Value
	}
	if len(configs) == 0 {
		configs = nil
	}
	t, code, msg := b.topics.create(rt.Topic, partitions, configs, validateOnly)
	if code != 0 {
		return code, msg
	}
	out.NumPartitions, out.ReplicationFactor = partitions, rf
	out.TopicID = t.meta.ID
	b.createdConfigs(configs, out)
	return 0, ""
}

// createdConfigs fills a created topic's configs (v5+).
func (b *Broker) createdConfigs(configs map[string]string, out *kmsg.CreateTopicsResponseTopic) {
	brokers := b.brokerConfigsByName()
	for i := range topicConfigDefs {
		dc := describeTopicConfig(&topicConfigDefs[i], configs, brokers, false, false)
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value, c.Source = dc.Name, dc.Value, int8(dc.Source)
		c.ReadOnly, c.IsSensitive = dc.ReadOnly, dc.IsSensitive
		out.Configs = append(out.Configs, c)
	}
}

// createOneCluster creates a topic through the controller (cluster mode): the replication
// factor and manual assignments are the controller's to check against the brokers.
func (b *Broker) createOneCluster(rt *kmsg.CreateTopicsRequestTopic, validateOnly bool, out *kmsg.CreateTopicsResponseTopic) (int16, string) {
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	var assignments map[int32][]int32
	if len(rt.ReplicaAssignment) > 0 {
		if partitions != -1 || rf != -1 {
			return errInvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set."
		}
		assignments = map[int32][]int32{}
		for _, a := range rt.ReplicaAssignment {
			assignments[a.Partition] = a.Replicas
		}
	}
	configs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value != nil {
			configs[c.Name] = *c.Value
		}
	}
	if len(configs) == 0 {
		configs = nil
	}
	switch {
	case assignments != nil:
		partitions = int32(len(assignments))
	case partitions == -1:
		partitions = b.cfg.NumPartitions
	}
	t, code, msg := b.topics.createRF(rt.Topic, partitions, rf, assignments, configs, validateOnly)
	if code != 0 {
		return code, msg
	}
	out.NumPartitions, out.ReplicationFactor = partitions, rf
	if t.info != nil {
		out.NumPartitions = int32(len(t.info.Partitions))
		if len(t.info.Partitions) > 0 {
			out.ReplicationFactor = int16(len(t.info.Partitions[0].Replicas))
		}
	}
	out.TopicID = t.meta.ID
	b.createdConfigs(configs, out)
	return 0, ""
}
