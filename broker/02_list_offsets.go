package broker

// ListOffsets v1–v8. Timestamps: -1 latest (the high watermark, or the last stable offset for
// read_committed), -2 earliest (log start offset), -3 the record with the largest timestamp
// (KIP-734, v7+), -4 earliest local (v8+, the log start offset here: no tiered storage);
// otherwise the first record whose timestamp is at or after the time, offset -1 when none.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ListOffsets, 1, 8, false, func(b *Broker, h *reqHeader, req *kmsg.ListOffsetsRequest) kmsg.Response {
		resp := kmsg.NewPtrListOffsetsResponse()
		for _, rt := range req.Topics {
			out := kmsg.NewListOffsetsResponseTopic()
			out.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				po := kmsg.NewListOffsetsResponseTopicPartition()
				po.Partition = rp.Partition
				po.Timestamp, po.Offset, po.LeaderEpoch = -1, -1, -1
				po.ErrorCode = b.listOffset(req, rt.Topic, &rp, &po)
				if po.ErrorCode != 0 {
					b.metrics.failed(h.key)
				}
				out.Partitions = append(out.Partitions, po)
			}
			resp.Topics = append(resp.Topics, out)
		}
		return resp
	})
}

func (b *Broker) listOffset(req *kmsg.ListOffsetsRequest, topic string, rp *kmsg.ListOffsetsRequestTopicPartition, out *kmsg.ListOffsetsResponseTopicPartition) int16 {
	p := b.topics.partition(topic, rp.Partition)
	if p == nil {
		if t := b.topics.get(topic); t != nil && t.info != nil && rp.Partition >= 0 && int(rp.Partition) < len(t.info.Partitions) {
			return errNotLeaderOrFollower // hosted elsewhere
		}
		return errUnknownTopicOrPartition
	}
	if !p.isLeader() {
		return errNotLeaderOrFollower
	}
	if e := rp.CurrentLeaderEpoch; e >= 0 && e != p.leaderEpoch.Load() {
		if e < p.leaderEpoch.Load() {
			return errFencedLeaderEpoch
		}
		return errUnknownLeaderEpoch
	}
	out.LeaderEpoch = p.leaderEpoch.Load()
	switch rp.Timestamp {
	case -1:
		out.Offset = p.highWatermark()
		if req.ReplicaID >= 0 {
			out.Offset = p.log.LogEndOffset() // a follower asks for the leader's log end
		}
		if req.IsolationLevel == 1 {
			out.Offset = p.lastStableOffset()
		}
	case -2, -4:
		out.Offset = p.log.LogStartOffset()
	case -3:
		r, ok, err := p.log.MaxTimestamp()
		if err != nil {
			return errKafkaStorageError
		}
		if ok && r.Offset < p.highWatermark() {
			out.Offset, out.Timestamp = r.Offset, r.Timestamp
		}
	default:
		if rp.Timestamp < 0 {
			return errInvalidRequest
		}
		r, ok, err := p.log.OffsetForTimestamp(rp.Timestamp)
		if err != nil {
			return errKafkaStorageError
		}
		if ok && r.Offset < p.highWatermark() {
			out.Offset, out.Timestamp = r.Offset, r.Timestamp
		}
	}
	return 0
}
