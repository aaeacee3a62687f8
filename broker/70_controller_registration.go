package broker

// ControllerRegistration v0 (KIP-919; cluster mode, controller to the active controller):
// a node with the controller role registers its Kafka endpoint, so that the others can
// forward to it when it is the active controller (forward.go) and DescribeCluster sent to a
// controller lists it. NOT_CONTROLLER when this node's controller is not the active one.
//
// As with BrokerRegistration, a listener named "RAFT" carries the node's Raft address: a
// registering node that is not yet a Raft server (a controller-only node started outside
// the initial voters) is added as a non-voter, so it follows the metadata log and the
// operator can promote it with AddRaftVoter. Both steps are idempotent; the node sends its
// registration until its Image holds it.

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

// controllerListenerName names a controller's Kafka endpoint in its registration.
const controllerListenerName = "CONTROLLER"

func init() {
	register(kmsg.ControllerRegistration, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.ControllerRegistrationRequest) kmsg.Response {
		resp := kmsg.NewPtrControllerRegistrationResponse()
		fail := func(code int16, msg string) kmsg.Response {
			b.metrics.failed(h.key)
			resp.ErrorCode, resp.ErrorMessage = code, &msg
			return resp
		}
		c := b.cluster
		if c == nil {
			return fail(errUnsupportedVersion, "This node is not part of a cluster.")
		}
		reg := controller.ControllerRegistration{ID: req.ControllerID, IncarnationID: req.IncarnationID}
		var raftAddr string
		for _, l := range req.Listeners {
			reg.Endpoints, raftAddr = addListener(reg.Endpoints, raftAddr, l.Name, l.Host, l.Port)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
		defer cancel()
		err := c.ctl.RegisterController(ctx, reg)
		if err == nil && raftAddr != "" {
			if err = c.ensureRaftMember(ctx, req.ControllerID, raftAddr); err != nil {
				c.b.log.Warn("adding a controller to the metadata quorum", "controller", req.ControllerID, "err", err)
			}
		}
		if err != nil {
			return fail(controller.ErrorCode(err), err.Error())
		}
		return resp
	})
}

// controllerRegistrationLoop registers this controller (see the file comment) until its
// Image holds the registration, or the cluster stops.
func (c *cluster) controllerRegistrationLoop() {
	defer c.wg.Done()
	var inc [16]byte
	rand.Read(inc[:])
	reg := controller.ControllerRegistration{ID: c.self, IncarnationID: inc, Endpoints: []controller.Endpoint{{
		Name: controllerListenerName, Host: c.b.cfg.AdvertisedHost, Port: c.b.cfg.AdvertisedPort, Protocol: "PLAINTEXT"}}}
	for !c.stopped() {
		if ci := c.ctl.Image().Controller(c.self); ci != nil && ci.IncarnationID == inc {
			c.b.log.Info("registered as a controller")
			return
		}
		if err := c.registerController(reg); err != nil {
			c.b.log.Debug("controller registration", "err", err)
			if !c.sleep(200 * time.Millisecond) {
				return
			}
			continue
		}
		// Registered: wait for the entry to reach this node's Image.
		if !c.sleep(50 * time.Millisecond) {
			return
		}
	}
}

// registerController registers with the active controller, here or forwarded.
func (c *cluster) registerController(reg controller.ControllerRegistration) error {
	ctx, cancel := context.WithTimeout(c.base, c.opTimeout())
	defer cancel()
	err := c.ctl.RegisterController(ctx, reg)
	var nl *controller.NotLeaderError
	if errors.As(err, &nl) {
		return c.fwd.registerController(ctx, nl.LeaderID, reg)
	}
	return err
}

func (f *forwarder) registerController(ctx context.Context, leader int32, reg controller.ControllerRegistration) error {
	req := kmsg.NewPtrControllerRegistrationRequest()
	req.SetVersion(0)
	req.ControllerID, req.IncarnationID = reg.ID, reg.IncarnationID
	for _, ep := range reg.Endpoints {
		l := kmsg.NewControllerRegistrationRequestListener()
		l.Name, l.Host, l.Port = ep.Name, ep.Host, uint16(ep.Port)
		req.Listeners = append(req.Listeners, l)
	}
	if l, ok := raftListener(f.c.raftAddr); ok {
		cl := kmsg.NewControllerRegistrationRequestListener()
		cl.Name, cl.Host, cl.Port = l.Name, l.Host, l.Port
		req.Listeners = append(req.Listeners, cl)
	}
	var out *kmsg.ControllerRegistrationResponse
	err := f.toLeader(ctx, leader, func(id int32) (int16, error) {
		r, err := f.request(ctx, id, req)
		if err != nil {
			return 0, err
		}
		out = r.(*kmsg.ControllerRegistrationResponse)
		return out.ErrorCode, nil
	})
	if err != nil {
		return err
	}
	if out.ErrorCode != 0 {
		msg := "controller registration refused"
		if out.ErrorMessage != nil {
			msg = *out.ErrorMessage
		}
		return &controller.Error{Code: out.ErrorCode, Message: msg}
	}
	return nil
}
