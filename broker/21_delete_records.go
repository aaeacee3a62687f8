package broker

// DeleteRecords v0–v2: moves a partition's log start offset forward to the requested offset
// (records below it become invisible; whole segments below it are deleted) and answers with
// the new log start offset as low_watermark. As the Java broker
// (Partition.deleteRecordsOnLeader):
//
//   - offset -1 means the high watermark;
//   - another negative offset, or one above the high watermark: OFFSET_OUT_OF_RANGE;
//   - an offset below the current log start offset changes nothing (the answer is the
//     current one);
//   - a topic whose cleanup.policy lacks "delete" (compact only): POLICY_VIOLATION;
//   - an internal topic (__consumer_offsets, __transaction_state): INVALID_TOPIC_EXCEPTION;
//   - an unknown partition: UNKNOWN_TOPIC_OR_PARTITION.
//
// A failed partition answers low_watermark -1. The new start offset reaches the
// log-start-offset checkpoint with the store's next checkpoint, as in Kafka. It runs on a
// goroutine: deleting segments touches the disk.

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

func init() {
	register(kmsg.DeleteRecords, 0, 2, true, func(b *Broker, h *reqHeader, req *kmsg.DeleteRecordsRequest) kmsg.Response {
		resp := kmsg.NewPtrDeleteRecordsResponse()
		for _, rt := range req.Topics {
			out := kmsg.NewDeleteRecordsResponseTopic()
			out.Topic = rt.Topic
			deletable := cleanupPolicyDeletes(b.topics, rt.Topic)
			for _, rp := range rt.Partitions {
				po := kmsg.NewDeleteRecordsResponseTopicPartition()
				po.Partition = rp.Partition
				low, code, err := b.deleteRecords(rt.Topic, rp.Partition, rp.Offset, deletable)
				po.LowWatermark, po.ErrorCode = low, code
				if code != 0 {
					b.metrics.failed(h.key)
					if err != nil {
						b.log.Debug("delete records", "topic", rt.Topic, "partition", rp.Partition, "offset", rp.Offset, "err", err)
					}
				}
				out.Partitions = append(out.Partitions, po)
			}
			resp.Topics = append(resp.Topics, out)
		}
		return resp
	})
}

// deleteRecords moves one partition's log start offset to offset (-1: the high watermark) and
// returns the new log start offset, or -1 and an error code.
func (b *Broker) deleteRecords(topic string, partition int32, offset int64, deletable bool) (int64, int16, error) {
	p := b.topics.partition(topic, partition)
	if p == nil {
		return -1, errUnknownTopicOrPartition, nil
	}
	if isInternalTopic(topic) {
		return -1, errInvalidTopicException, nil
	}
	if !deletable {
		return -1, errPolicyViolation, nil
	}
	hw := p.highWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, errOffsetOutOfRange, fmt.Errorf("offset %d is outside [0, high watermark %d]", offset, hw)
	}
	start, err := p.log.DeleteRecordsBefore(offset)
	if err != nil {
		return -1, logstore.CodeOf(err), err
	}
	return start, 0, nil
}

// cleanupPolicyDeletes reports whether a topic's cleanup.policy includes "delete" (Kafka's
// LogConfig.delete); an unknown topic answers true (its partitions are unknown anyway).
func cleanupPolicyDeletes(tm *topicManager, topic string) bool {
	configs, ok := tm.configsOf(topic)
	if !ok {
		return true
	}
	policy, ok := configs["cleanup.policy"]
	if !ok {
		policy = configDefsByName["cleanup.policy"].def
	}
	for _, p := range strings.Split(policy, ",") {
		if strings.TrimSpace(p) == "delete" {
			return true
		}
	}
	return false
}
