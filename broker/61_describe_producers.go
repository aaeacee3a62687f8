package broker

// DescribeProducers v0 (KIP-664): the producers with state on each partition — id, epoch, last
// sequence and timestamp, the coordinator epoch of their last marker and the first offset of
// their ongoing transaction (-1 when none). Sorted by producer id.
//
// Only a partition's leader keeps producer state (replica.go), so a follower answers
// NOT_LEADER_OR_FOLLOWER rather than an empty or stale list (Kafka's followers keep the state
// and answer; its admin client asks the leader unless told a broker, and retries this code
// against the leader).

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeProducers, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.DescribeProducersRequest) kmsg.Response {
		resp := kmsg.NewPtrDescribeProducersResponse()
		for _, t := range req.Topics {
			rt := kmsg.NewDescribeProducersResponseTopic()
			rt.Topic = t.Topic
			for _, pi := range t.Partitions {
				rp := kmsg.NewDescribeProducersResponseTopicPartition()
				rp.Partition = pi
				if p := b.topics.partition(t.Topic, pi); p == nil {
					rp.ErrorCode = errUnknownTopicOrPartition
				} else if !p.isLeader() {
					rp.ErrorCode = errNotLeaderOrFollower
				} else {
					rp.ActiveProducers = p.describeProducers()
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	})
}

func (p *partition) describeProducers() []kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}
	for id, st := range p.producers {
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch, ap.CoordinatorEpoch = id, int32(st.Epoch), st.CoordinatorEpoch
		if l := st.last(); l != nil {
			ap.LastSequence, ap.LastTimestamp = l.LastSeq, l.Timestamp
		}
		if st.InTxn {
			ap.CurrentTxnStartOffset = st.TxnFirst
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}
