package broker

// CreatePartitions v0–v3: grows topics to the requested partition count. Every topic of the
// request gets a result (compat-traps.md), in the request's order. As the Java broker (KRaft,
// ControllerApis.createPartitions and ReplicationControlManager.createPartitions):
//
//   - a topic named more than once: one INVALID_REQUEST "Duplicate topic name." result;
//   - an unknown topic: UNKNOWN_TOPIC_OR_PARTITION (no message);
//   - a count equal to the current one: INVALID_PARTITIONS "Topic already has N
//     partition(s)."; below it: INVALID_PARTITIONS "The topic T currently has N partition(s);
//     M would not be an increase.";
//   - manual assignments (assignment non-null) must number exactly the new partitions and
//     each list this node once: anything else is INVALID_REPLICA_ASSIGNMENT with Kafka's
//     message (a single node has replication factor 1, so each list is [node id]);
//   - more than 10,000 new partitions in one request (Kafka's MAX_RECORDS_PER_USER_OP bound
//     on one controller operation): POLICY_VIOLATION "Unable to perform excessively large
//     batch operation." for the topic that passes it — a bound on the folders one request
//     makes.
//
// validate_only checks everything and creates nothing. New partitions start empty, with the
// topic's configs. It runs on a goroutine: it creates folders and writes the topics file.

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxNewPartitionsPerRequest is Kafka's QuorumController.MAX_RECORDS_PER_USER_OP.
const maxNewPartitionsPerRequest = 10000

func init() {
	register(kmsg.CreatePartitions, 0, 3, true, func(b *Broker, h *reqHeader, req *kmsg.CreatePartitionsRequest) kmsg.Response {
		resp := kmsg.NewPtrCreatePartitionsResponse()
		count := map[string]int{}
		for _, rt := range req.Topics {
			count[rt.Topic]++
		}
		answered := map[string]bool{}
		budget := maxNewPartitionsPerRequest
		for i := range req.Topics {
			rt := &req.Topics[i]
			if answered[rt.Topic] {
				continue
			}
			answered[rt.Topic] = true
			out := kmsg.NewCreatePartitionsResponseTopic()
			out.Topic = rt.Topic
			code, msg := errInvalidRequest, "Duplicate topic name."
			if count[rt.Topic] == 1 {
				code, msg = b.createPartitions(rt, req.ValidateOnly, &budget)
			}
			if code != 0 {
				b.metrics.failed(h.key)
				out.ErrorCode = code
				if msg != "" {
					out.ErrorMessage = &msg
				}
			}
			resp.Topics = append(resp.Topics, out)
		}
		return resp
	})
}

// createPartitions grows one topic; budget is what is left of the request's new partitions.
func (b *Broker) createPartitions(rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool, budget *int) (int16, string) {
	t := b.topics.get(rt.Topic)
	if t == nil {
		return errUnknownTopicOrPartition, ""
	}
	cur := int32(len(t.partitions))
	switch {
	case rt.Count == cur:
		return errInvalidPartitions, fmt.Sprintf("Topic already has %d partition(s).", cur)
	case rt.Count < cur:
		return errInvalidPartitions, fmt.Sprintf("The topic %s currently has %d partition(s); %d would not be an increase.", rt.Topic, cur, rt.Count)
	}
	add := int(rt.Count - cur)
	if rt.Assignment != nil {
		if len(rt.Assignment) != add {
			return errInvalidReplicaAssignment, fmt.Sprintf("Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", add, len(rt.Assignment))
		}
		for _, a := range rt.Assignment {
			if code, msg := b.checkManualAssignment(a.Replicas); code != 0 {
				return code, msg
			}
		}
	}
	if add > *budget {
		return errPolicyViolation, "Unable to perform excessively large batch operation."
	}
	*budget -= add
	return b.topics.addPartitions(rt.Topic, rt.Count, validateOnly)
}

// checkManualAssignment applies Kafka's validateManualPartitionAssignment to one new
// partition's replica list, against a cluster of this node with replication factor 1.
func (b *Broker) checkManualAssignment(replicas []int32) (int16, string) {
	if len(replicas) == 0 {
		return errInvalidReplicaAssignment, "The manual partition assignment includes an empty replica list."
	}
	sorted := append([]int32(nil), replicas...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for i, id := range sorted {
		if id != b.cfg.NodeID {
			return errInvalidReplicaAssignment, fmt.Sprintf("The manual partition assignment includes broker %d, but no such broker is registered.", id)
		}
		if i > 0 && sorted[i-1] == id {
			return errInvalidReplicaAssignment, fmt.Sprintf("The manual partition assignment includes the broker %d more than once.", id)
		}
	}
	if len(sorted) != 1 {
		return errInvalidReplicaAssignment, fmt.Sprintf("The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have 1 replica(s).", len(sorted))
	}
	return 0, ""
}
