package broker

// BrokerRegistration v0 (cluster mode, broker to controller): registers a broker with the
// active controller, which answers with its broker epoch. NOT_CONTROLLER when this node's
// controller is not the active one.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

func init() {
	register(kmsg.BrokerRegistration, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.BrokerRegistrationRequest) kmsg.Response {
		resp := kmsg.NewPtrBrokerRegistrationResponse()
		if b.cluster == nil {
			resp.ErrorCode = errUnsupportedVersion
			return resp
		}
		if req.ClusterID != b.cfg.ClusterID {
			resp.ErrorCode = errInconsistentClusterID
			return resp
		}
		reg := controller.BrokerRegistration{ID: req.BrokerID, IncarnationID: req.IncarnationID, Rack: req.Rack}
		for _, l := range req.Listeners {
			reg.Endpoints = append(reg.Endpoints, controller.Endpoint{Name: l.Name, Host: l.Host, Port: int32(l.Port), Protocol: "PLAINTEXT"})
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cluster.opTimeout())
		defer cancel()
		epoch, err := b.cluster.ctl.RegisterBroker(ctx, reg)
		resp.ErrorCode, resp.BrokerEpoch = controller.ErrorCode(err), epoch
		return resp
	})
}
