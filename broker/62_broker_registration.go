package broker

// BrokerRegistration v0 (cluster mode, broker to controller): registers a broker with the
// active controller, which answers with its broker epoch. NOT_CONTROLLER when this node's
// controller is not the active one.
//
// A listener named "RAFT" (raftListenerName) is not a Kafka endpoint: it carries the
// registering node's Raft address. The active controller, once the registration is written,
// adds a node that is not yet a Raft server as a non-voter at that address, so that it
// follows the metadata log (a broker-only node). A retry (same incarnation) gets the same
// epoch and finds the node already a Raft server: both steps are idempotent. An error of the
// second step is the answer's error; the broker registers again.

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

// raftListenerName names the registration listener that carries the node's Raft address.
const raftListenerName = "RAFT"

// raftListener is the registration listener for a Raft address host:port.
func raftListener(addr string) (kmsg.BrokerRegistrationRequestListener, bool) {
	l := kmsg.NewBrokerRegistrationRequestListener()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return l, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return l, false
	}
	l.Name, l.Host, l.Port = raftListenerName, host, uint16(p)
	return l, true
}

// addListener adds a registration's listener to eps, or returns it as the Raft address when
// it is the "RAFT" one.
func addListener(eps []controller.Endpoint, raftAddr, name, host string, port uint16) ([]controller.Endpoint, string) {
	if name == raftListenerName {
		return eps, net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	return append(eps, controller.Endpoint{Name: name, Host: host, Port: int32(port), Protocol: "PLAINTEXT"}), raftAddr
}

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
		var raftAddr string
		for _, l := range req.Listeners {
			reg.Endpoints, raftAddr = addListener(reg.Endpoints, raftAddr, l.Name, l.Host, l.Port)
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cluster.opTimeout())
		defer cancel()
		epoch, err := b.cluster.ctl.RegisterBroker(ctx, reg)
		if err == nil && raftAddr != "" {
			if err = b.cluster.ensureRaftMember(ctx, req.BrokerID, raftAddr); err != nil {
				b.log.Warn("adding a broker to the metadata quorum", "broker", req.BrokerID, "err", err)
				epoch = -1
			}
		}
		resp.ErrorCode, resp.BrokerEpoch = controller.ErrorCode(err), epoch
		return resp
	})
}
