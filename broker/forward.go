package broker

// Forwarding of metadata writes to the active controller (cluster mode). A node whose own
// controller is not the Raft leader sends the request over the Kafka protocol to the node
// that is, which handles it as its own: BrokerRegistration (62), BrokerHeartbeat (63) and
// AlterPartition (56) for its own needs, and a client's admin request (CreateTopics, ...) as
// it came. One connection per target address, one request at a time on it; a request that
// meets NOT_CONTROLLER (leadership moved) is retried against the new leader until its
// deadline or until the cluster stops.
//
// Targets: the leader's Kafka endpoint comes from the local Image. When the leader or its
// endpoint is unknown — a broker-only node before it follows the metadata log, or one whose
// Image does not hold the leader's registration yet — the request goes to the controller
// bootstrap servers (ClusterConfig.ControllerBootstrap), each in turn until one answers
// without NOT_CONTROLLER or a connection error. A Raft voter that knows no leader (an
// election is going on) does not use them: it waits for the election, so that two voters
// never bounce a request between each other. Bootstrap server i is addressed as the pseudo
// node id bootstrapID(i), so the callers' func(id) signature covers both.
//
// A node receiving a forwarded request (client id fwdClientID) that is not the active
// controller answers NOT_CONTROLLER instead of forwarding it again, where the handler can
// tell (AddRaftVoter, RemoveRaftVoter, DescribeQuorum).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

// fwdClientID is the client id of forwarded requests.
const fwdClientID = "spate-forward"

// bootstrapIDBase is bootstrapID(0); bootstrap server i is bootstrapIDBase-i (real node ids
// are never negative, and -1 means "no leader").
const bootstrapIDBase int32 = -1000

func bootstrapID(i int) int32 { return bootstrapIDBase - int32(i) }

type forwarder struct {
	c  *cluster
	mu sync.Mutex
	// conns holds idle connections by address; guarded by mu. A request takes one (or
	// dials) and gives it back, so a slow request (markers waiting for replication) never
	// holds up another (a heartbeat) to the same node.
	conns map[string][]*fwdConn
	corr  int32 // guarded by mu
	// goodBootstrap is the index of the bootstrap server that last answered; the next
	// request tries it first.
	goodBootstrap atomic.Int32
}

type fwdConn struct {
	mu   sync.Mutex
	conn net.Conn
	addr string
	buf  []byte
}

func newForwarder(c *cluster) *forwarder {
	return &forwarder{c: c, conns: map[string][]*fwdConn{}}
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, idle := range f.conns {
		for _, fc := range idle {
			fc.mu.Lock()
			if fc.conn != nil {
				fc.conn.Close()
			}
			fc.mu.Unlock()
		}
		delete(f.conns, addr)
	}
}

// addrOf returns the Kafka address of a node id or bootstrap pseudo id.
func (f *forwarder) addrOf(id int32) (string, bool) {
	if id <= bootstrapIDBase {
		bs := f.c.b.cfg.Cluster.ControllerBootstrap
		if i := int(bootstrapIDBase - id); i < len(bs) {
			return bs[i], true
		}
		return "", false
	}
	return f.c.leaderEndpoint(id)
}

// request sends req to node id (or bootstrap server, see bootstrapID) and returns its
// response (decoded at req's version).
func (f *forwarder) request(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, error) {
	addr, ok := f.addrOf(id)
	if !ok {
		return nil, fmt.Errorf("forward: no endpoint for node %d", id)
	}
	f.mu.Lock()
	var fc *fwdConn
	if idle := f.conns[addr]; len(idle) > 0 {
		fc = idle[len(idle)-1]
		f.conns[addr] = idle[:len(idle)-1]
	} else {
		fc = &fwdConn{addr: addr}
	}
	f.corr++
	corr := f.corr
	f.mu.Unlock()
	resp, err := fc.roundTrip(ctx, req, corr)
	if err == nil {
		f.mu.Lock()
		if len(f.conns[addr]) < maxIdleForwardConns {
			f.conns[addr] = append(f.conns[addr], fc)
			fc = nil
		}
		f.mu.Unlock()
	}
	if fc != nil && fc.conn != nil {
		fc.conn.Close()
	}
	return resp, err
}

const maxIdleForwardConns = 4

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
	fc.buf = kmsg.NewRequestFormatter(kmsg.FormatterClientID(fwdClientID)).AppendRequest(fc.buf[:0], req, corr)
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

// toLeader runs fn against the active controller's node (leader; -1 when unknown) until
// it answers with something other than NOT_CONTROLLER, ctx ends or the cluster stops. fn
// returns the response's top-level code. When the leader's endpoint is unknown, fn is tried
// on each bootstrap server in turn (see targets).
func (f *forwarder) toLeader(ctx context.Context, leader int32, fn func(id int32) (int16, error)) error {
	var lastErr error
	for {
		for _, id := range f.targets(leader) {
			code, err := fn(id)
			if err == nil && code != controller.CodeNotController {
				if id <= bootstrapIDBase {
					f.goodBootstrap.Store(bootstrapIDBase - id)
				}
				return nil
			}
			if err == nil {
				err = &controller.Error{Code: code, Message: "no active controller answered"}
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = &controller.NotLeaderError{LeaderID: -1}
			}
			return lastErr
		case <-f.c.stop:
			return controller.ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
		leader, _ = f.c.ctl.Leader()
		if leader == f.c.self {
			return &controller.NotLeaderError{LeaderID: leader} // the caller retries locally
		}
	}
}

// targets returns whom to send a request for the active controller to: the leader when its
// endpoint is known; else the bootstrap servers (as pseudo ids, the last one that answered
// first), except on a Raft voter that knows no leader, which waits for the election.
func (f *forwarder) targets(leader int32) []int32 {
	if leader >= 0 {
		if _, ok := f.c.leaderEndpoint(leader); ok {
			return []int32{leader}
		}
	}
	bs := f.c.b.cfg.Cluster.ControllerBootstrap
	if len(bs) == 0 || (leader < 0 && f.c.isVoter()) {
		return nil
	}
	first := int(f.goodBootstrap.Load())
	out := make([]int32, 0, len(bs))
	for k := range bs {
		out = append(out, bootstrapID((first+k)%len(bs)))
	}
	return out
}

// forwardToActive sends a client's request to the active controller's node and returns its
// answer; code extracts the answer's top-level error code, so that a NOT_CONTROLLER answer
// (the target lost or never had leadership) is retried elsewhere.
func (f *forwarder) forwardToActive(ctx context.Context, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, error) {
	leader, _ := f.c.ctl.Leader()
	if leader == f.c.self {
		leader = -1 // leader by Raft, but not serving yet: wait
	}
	var out kmsg.Response
	err := f.toLeader(ctx, leader, func(id int32) (int16, error) {
		r, err := f.request(ctx, id, req)
		if err != nil {
			return 0, err
		}
		out = r
		return code(r), nil
	})
	return out, err
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
	// The node's Raft address, so that the active controller can make it a non-voter that
	// follows the metadata log (62_broker_registration.go).
	if l, ok := raftListener(f.c.raftAddr); ok {
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
