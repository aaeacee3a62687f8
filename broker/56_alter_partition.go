package broker

// AlterPartition v2–v3 (cluster mode, broker to controller): a partition leader asks the
// active controller to change its ISR. Answered here only when this node's controller is
// the active one (else NOT_CONTROLLER: the sender retries against the leader). Topics by id
// (v2+); v3's new_isr_with_epochs is read for its broker ids.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

func init() {
	register(kmsg.AlterPartition, 2, 3, true, func(b *Broker, h *reqHeader, req *kmsg.AlterPartitionRequest) kmsg.Response {
		resp := kmsg.NewPtrAlterPartitionResponse()
		if b.cluster == nil {
			resp.ErrorCode = errUnsupportedVersion
			return resp
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cluster.opTimeout())
		defer cancel()
		for _, t := range req.Topics {
			rt := kmsg.NewAlterPartitionResponseTopic()
			rt.TopidID = t.TopicID
			for _, p := range t.Partitions {
				isr := p.NewISR
				if h.version >= 3 {
					isr = isr[:0:0]
					for _, e := range p.NewEpochISR {
						isr = append(isr, e.BrokerID)
					}
				}
				st, code, err := b.cluster.ctl.AlterPartition(ctx, req.BrokerID, req.BrokerEpoch, t.TopicID, p.Partition, p.LeaderEpoch, p.PartitionEpoch, isr)
				if err != nil {
					resp.ErrorCode = controller.ErrorCode(err)
					return resp
				}
				rp := kmsg.NewAlterPartitionResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				if code == 0 {
					rp.LeaderID, rp.LeaderEpoch, rp.ISR, rp.PartitionEpoch = st.Leader, st.LeaderEpoch, st.ISR, st.PartitionEpoch
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	})
}
