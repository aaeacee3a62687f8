package broker

// AllocateProducerIds v0 (cluster mode, broker to controller): a block of producer ids for a
// broker's idempotent and transactional producers, unique across the cluster.
// NOT_CONTROLLER when this node's controller is not the active one.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

func init() {
	register(kmsg.AllocateProducerIDs, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.AllocateProducerIDsRequest) kmsg.Response {
		resp := kmsg.NewPtrAllocateProducerIDsResponse()
		if b.cluster == nil {
			resp.ErrorCode = errUnsupportedVersion
			return resp
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cluster.opTimeout())
		defer cancel()
		first, size, err := b.cluster.ctl.AllocateProducerIDs(ctx, req.BrokerID, req.BrokerEpoch)
		resp.ErrorCode = controller.ErrorCode(err)
		resp.ProducerIDStart, resp.ProducerIDLen = first, int32(size)
		return resp
	})
}
