package broker

// BrokerHeartbeat v0 (cluster mode, broker to controller): keeps a broker's session alive,
// unfences it, and carries its controlled-shutdown request. NOT_CONTROLLER when this node's
// controller is not the active one.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

func init() {
	register(kmsg.BrokerHeartbeat, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.BrokerHeartbeatRequest) kmsg.Response {
		resp := kmsg.NewPtrBrokerHeartbeatResponse()
		if b.cluster == nil {
			resp.ErrorCode = errUnsupportedVersion
			return resp
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cluster.opTimeout())
		defer cancel()
		res, err := b.cluster.ctl.Heartbeat(ctx, req.BrokerID, req.BrokerEpoch, req.WantShutdown)
		resp.ErrorCode = controller.ErrorCode(err)
		resp.IsFenced, resp.ShouldShutdown, resp.IsCaughtUp = res.Fenced, res.ShouldShutDown, err == nil
		return resp
	})
}
