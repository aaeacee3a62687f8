package broker

// OffsetForLeaderEpoch v0–v4: for each partition and requested leader epoch, the end offset
// of that epoch, i.e. the start offset of the next larger epoch, or the log end offset for
// the current one (KIP-101, KIP-279). Followers use it to find where to truncate after a
// leader change; consumers (KIP-320) to detect log truncation after a leader change. v1+
// answers the epoch the end offset belongs to; v2+ carries current_leader_epoch (fencing);
// v3+ replica_id, which is any value (-1 consumer, -2 debugging, a broker id): the answer is
// the same, as in Kafka.
//
// Fencing, as the Java broker's Partition.checkCurrentLeaderEpoch: current_leader_epoch -1
// checks nothing; one below this leader's epoch is FENCED_LEADER_EPOCH, one above it
// UNKNOWN_LEADER_EPOCH. An unknown partition is UNKNOWN_TOPIC_OR_PARTITION.
//
// The lookup is Kafka's LeaderEpochFileCache.endOffsetFor over this partition's epoch cache.
// A single node has only ever led with one epoch, p.leaderEpoch (0), and the cache is the one
// entry {p.leaderEpoch: log start offset}: the leader records its epoch at election from the
// log end offset, and moving the log start offset (retention, DeleteRecords) moves the first
// entry's start with it. So, for a requested epoch E:
//
//   - E = -1 (undefined, an old follower or message format): epoch -1, offset -1.
//   - E = the current epoch: (E, log end offset). The epoch is still being written, so its
//     end is the log end offset (the truncation check of KIP-320 works on it).
//   - E > the current epoch: the cache has no epoch above E to end it, so the answer is
//     undefined: epoch -1, offset -1, error NONE (the asker knows an epoch this leader does
//     not; Kafka answers the same).
//   - E < the current epoch (with epoch 0, only a negative E other than -1): there is no
//     known epoch at or below E, and the first known epoch above it starts at the log start
//     offset. Kafka answers (E, that start offset): everything from the log start offset on
//     belongs to a later epoch, so a follower holding E-era data keeps nothing past it, and
//     the data before it was deleted anyway (the cache's rule for an epoch smaller than any
//     it knows, as KIP-279 left it).
//
// When leader epochs move (replication, a later issue), the leader-epoch-checkpoint file of
// DESIGN.md replaces this one-entry cache; the rules above stay Kafka's.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.OffsetForLeaderEpoch, 0, 4, false, func(b *Broker, h *reqHeader, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
		resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
		for _, rt := range req.Topics {
			out := kmsg.NewOffsetForLeaderEpochResponseTopic()
			out.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				po := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				po.Partition = rp.Partition
				po.ErrorCode = b.offsetForLeaderEpoch(rt.Topic, &rp, &po)
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

func (b *Broker) offsetForLeaderEpoch(topic string, rp *kmsg.OffsetForLeaderEpochRequestTopicPartition, out *kmsg.OffsetForLeaderEpochResponseTopicPartition) int16 {
	p := b.topics.partition(topic, rp.Partition)
	if p == nil {
		return errUnknownTopicOrPartition
	}
	if cur := rp.CurrentLeaderEpoch; cur != -1 {
		switch {
		case cur < p.leaderEpoch.Load():
			return errFencedLeaderEpoch
		case cur > p.leaderEpoch.Load():
			return errUnknownLeaderEpoch
		}
	}
	if b.cluster != nil {
		// Cluster mode: the leader's epoch cache (replication.EpochCache), as Kafka's.
		if !p.isLeader() || p.repl.epochs == nil {
			return errNotLeaderOrFollower
		}
		out.LeaderEpoch, out.EndOffset = p.repl.epochs.EndOffsetFor(rp.LeaderEpoch, p.log.LogEndOffset())
		return 0
	}
	out.LeaderEpoch, out.EndOffset = endOffsetForEpoch(p.leaderEpoch.Load(), p.log.LogStartOffset(), p.log.LogEndOffset(), rp.LeaderEpoch)
	return 0
}

// endOffsetForEpoch is LeaderEpochFileCache.endOffsetFor over the one-entry cache
// {latest: start} (see the file comment).
func endOffsetForEpoch(latest int32, start, logEnd int64, requested int32) (int32, int64) {
	switch {
	case requested == -1:
		return -1, -1
	case requested == latest:
		return requested, logEnd
	case requested > latest:
		return -1, -1
	default:
		return requested, start
	}
}
