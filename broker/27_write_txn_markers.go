package broker

// WriteTxnMarkers v0–v1: a transaction coordinator asks this broker, the leader of the
// partitions named, to append commit or abort markers. Each partition answers on its own:
// UNKNOWN_TOPIC_OR_PARTITION when it does not exist here, INVALID_PRODUCER_EPOCH for a marker
// older than the producer's epoch, TRANSACTION_COORDINATOR_FENCED for an older coordinator
// epoch.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.WriteTxnMarkers, 0, 1, true, func(b *Broker, h *reqHeader, req *kmsg.WriteTxnMarkersRequest) kmsg.Response {
		resp := kmsg.NewPtrWriteTxnMarkersResponse()
		for _, m := range req.Markers {
			rm := kmsg.NewWriteTxnMarkersResponseMarker()
			rm.ProducerID = m.ProducerID
			for _, t := range m.Topics {
				rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
				rt.Topic = t.Topic
				for _, pi := range t.Partitions {
					rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
					rp.Partition = pi
					if p := b.topics.partition(t.Topic, pi); p == nil {
						rp.ErrorCode = errUnknownTopicOrPartition
					} else {
						rp.ErrorCode = p.writeMarker(m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch)
					}
					rt.Partitions = append(rt.Partitions, rp)
				}
				rm.Topics = append(rm.Topics, rt)
			}
			resp.Markers = append(resp.Markers, rm)
		}
		return resp
	})
}
