package broker

// Forwarding of metadata writes to the active controller (cluster mode). A node whose own
// controller is not the Raft leader sends the request over the Kafka protocol to the node
// that is, which handles it as its own: BrokerRegistration (62), BrokerHeartbeat (63) and
// AlterPartition (56) for its own needs, and a client's admin request (CreateTopics, ...) as
// it came. One connection per target node, one request at a time on it; a request that meets
// NOT_CONTROLLER (leadership moved) is retried against the new leader until its deadline.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

type forwarder struct {
	c     *cluster
	mu    sync.Mutex
	conns map[int32]*fwdConn // guarded by mu
	corr  int32              // guarded by mu
}

type fwdConn struct {
	mu   sync.Mutex
	conn net.Conn
	addr string
	buf  []byte
}

func newForwarder(c *cluster) *forwarder {
	return &forwarder{c: c, conns: map[int32]*fwdConn{}}
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, fc := range f.conns {
		fc.mu.Lock()
		if fc.conn != nil {
			fc.conn.Close()
		}
		fc.mu.Unlock()
		delete(f.conns, id)
	}
}

// request sends req to node id and returns its response (decoded at req's version).
func (f *forwarder) request(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	addr, ok := f.c.leaderEndpoint(id)
	if !ok {
		return nil, fmt.Errorf("forward: no endpoint for node %d", id)
	}
	f.mu.Lock()
	fc := f.conns[id]
	if fc == nil || fc.addr != addr {
		if fc != nil {
			fc.mu.Lock()
			if fc.conn != nil {
				fc.conn.Close()
			}
			fc.mu.Unlock()
		}
		fc = &fwdConn{addr: addr}
		f.conns[id] = fc
	}
	f.corr++
	corr := f.corr
	f.mu.Unlock()
	return fc.roundTrip(ctx, req, corr)
}

func (fc *fwdConn) roundTrip(ctx context.Context, req kmsg.Request, corr int32) (kmsg.Response, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", fc.addr)
		if err != nil {
			return nil, err
		}
		fc.conn = conn
	}
	fail := func(err error) (kmsg.Response, error) {
		fc.conn.Close()
		fc.conn = nil
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	fc.conn.SetDeadline(deadline)
	fc.buf = kmsg.NewRequestFormatter(kmsg.FormatterClientID("spate-forward")).AppendRequest(fc.buf[:0], req, corr)
	if _, err := fc.conn.Write(fc.buf); err != nil {
		return fail(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(fc.conn, size[:]); err != nil {
		return fail(err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 64<<20 {
		return fail(fmt.Errorf("forward: response size %d", n))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(fc.conn, body); err != nil {
		return fail(err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return fail(fmt.Errorf("forward: correlation %d, want %d", got, corr))
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		var ok bool
		if body, ok = skipTags(body); !ok {
			return fail(errors.New("forward: bad response header"))
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return fail(err)
	}
	return resp, nil
}

// toLeader runs fn against the active controller's node until it answers with something
// other than NOT_CONTROLLER or ctx ends. fn returns the response's top-level code.
func (f *forwarder) toLeader(ctx context.Context, leader int32, fn func(id int32) (int16, error)) error {
	for {
		code, err := fn(leader)
		if err == nil && code != controller.CodeNotController {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = &controller.Error{Code: code, Message: "no active controller answered"}
			}
			return err
		case <-time.After(100 * time.Millisecond):
		}
		if id, _ := f.c.ctl.Leader(); id >= 0 {
			leader = id
		}
		if leader == f.c.self {
			return &controller.NotLeaderError{LeaderID: leader} // the caller retries locally
		}
	}
}

func (f *forwarder) registerBroker(ctx context.Context, leader int32, reg controller.BrokerRegistration) (int64, error) {
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.SetVersion(0)
	req.BrokerID, req.ClusterID, req.IncarnationID, req.Rack = reg.ID, f.c.b.cfg.ClusterID, reg.IncarnationID, reg.Rack
	for _, ep := range reg.Endpoints {
		l := kmsg.NewBrokerRegistrationRequestListener()
		l.Name, l.Host, l.Port, l.SecurityProtocol = ep.Name, ep.Host, uint16(ep.Port), 0
		req.Listeners = append(req.Listeners, l)
	}
	var out *kmsg.BrokerRegistrationResponse
	err := f.toLeader(ctx, leader, func(id int32) (int16, error) {
		r, err := f.request(ctx, id, req)
		if err != nil {
			return 0, err
		}
		out = r.(*kmsg.BrokerRegistrationResponse)
		return out.ErrorCode, nil
	})
	if err != nil {
		return 0, err
	}
	if out.ErrorCode != 0 {
		return 0, &controller.Error{Code: out.ErrorCode, Message: "registration refused"}
	}
	return out.BrokerEpoch, nil
}

func (f *forwarder) brokerHeartbeat(ctx context.Context, leader, id int32, epoch int64, wantShutdown bool) (controller.HeartbeatResult, error) {
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.SetVersion(0)
	req.BrokerID, req.BrokerEpoch, req.WantShutdown = id, epoch, wantShutdown
	var out *kmsg.BrokerHeartbeatResponse
	err := f.toLeader(ctx, leader, func(to int32) (int16, error) {
		r, err := f.request(ctx, to, req)
		if err != nil {
			return 0, err
		}
		out = r.(*kmsg.BrokerHeartbeatResponse)
		return out.ErrorCode, nil
	})
	if err != nil {
		return controller.HeartbeatResult{}, err
	}
	if out.ErrorCode != 0 {
		return controller.HeartbeatResult{}, &controller.Error{Code: out.ErrorCode, Message: "heartbeat refused"}
	}
	return controller.HeartbeatResult{Fenced: out.IsFenced, ShouldShutDown: out.ShouldShutdown}, nil
}

// forwardAdmin sends a client's admin request to the active controller's node and returns
// its response, or nil and the error when none answered in time.
func (f *forwarder) forwardAdmin(ctx context.Context, leader int32, req kmsg.Request) (kmsg.Response, error) {
	var out kmsg.Response
	err := f.toLeader(ctx, leader, func(id int32) (int16, error) {
		r, err := f.request(ctx, id, req)
		if err != nil {
			return 0, err
		}
		out = r
		return 0, nil
	})
	return out, err
}
