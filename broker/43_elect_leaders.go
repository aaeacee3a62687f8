package broker

// ElectLeaders v0–v2 (KIP-183, KIP-460): preferred (0) or unclean (1, v1+) leader election
// for the partitions named, or for every partition when topics is null. Cluster mode asks the
// active controller (forwarding the request when another node's controller is active); a
// single node leads every partition already, so each partition is ELECTION_NOT_NEEDED.
// v0 has no top-level error code; its election type is preferred.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

const errElectionNotNeeded int16 = 84

func init() {
	register(kmsg.ElectLeaders, 0, 2, true, func(b *Broker, h *reqHeader, req *kmsg.ElectLeadersRequest) kmsg.Response {
		resp := kmsg.NewPtrElectLeadersResponse()
		typ := controller.ElectPreferred
		if h.version >= 1 {
			typ = controller.ElectionType(req.ElectionType)
		}
		var parts []controller.TopicPartition
		if req.Topics != nil {
			parts = []controller.TopicPartition{}
			for _, t := range req.Topics {
				for _, p := range t.Partitions {
					parts = append(parts, controller.TopicPartition{Topic: t.Topic, Partition: p})
				}
			}
		}
		var results []controller.ElectionResult
		if c := b.cluster; c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
			defer cancel()
			var err error
			results, err = c.ctl.ElectLeaders(ctx, typ, parts)
			if leader, ok := leaderOf(err); ok {
				var r kmsg.Response
				if r, err = c.fwd.forwardAdmin(ctx, leader, req); err == nil {
					return r
				}
			}
			if err != nil {
				resp.ErrorCode = controller.ErrorCode(err)
				return resp
			}
		} else {
			if parts == nil {
				for _, name := range b.topics.names() {
					if t := b.topics.get(name); t != nil {
						for i := range t.partitions {
							parts = append(parts, controller.TopicPartition{Topic: name, Partition: int32(i)})
						}
					}
				}
			}
			for _, tp := range parts {
				r := controller.ElectionResult{TopicPartition: tp, ErrorCode: errElectionNotNeeded, ErrorMessage: "Leader election not needed for topic partition."}
				if b.topics.partition(tp.Topic, tp.Partition) == nil {
					r.ErrorCode, r.ErrorMessage = errUnknownTopicOrPartition, "The partition does not exist."
				}
				results = append(results, r)
			}
		}
		byTopic := map[string]int{}
		for _, r := range results {
			i, ok := byTopic[r.Topic]
			if !ok {
				i = len(resp.Topics)
				byTopic[r.Topic] = i
				rt := kmsg.NewElectLeadersResponseTopic()
				rt.Topic = r.Topic
				resp.Topics = append(resp.Topics, rt)
			}
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition, rp.ErrorCode = r.Partition, r.ErrorCode
			if r.ErrorCode != 0 && r.ErrorMessage != "" {
				msg := r.ErrorMessage
				rp.ErrorMessage = &msg
			}
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
		}
		return resp
	})
}
