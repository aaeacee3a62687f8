package broker

// The metadata quorum's voters, managed by the operator through Kafka's KIP-853 APIs:
// AddRaftVoter v0–v1 (here), RemoveRaftVoter v0 (81_remove_raft_voter.go), and
// DescribeQuorum v0–v2 (here too), in cluster mode. Any node takes them: a node whose
// controller is not the active one forwards the request to the node whose is (forward.go)
// and relays its answer; a forwarded request that meets a node that is not (or no longer)
// active is answered NOT_CONTROLLER (DescribeQuorum: NOT_LEADER_OR_FOLLOWER, as Kafka's
// controllers answer), and the forwarding node retries with the new leader until its
// deadline. A single node (no cluster mode) answers AddRaftVoter and RemoveRaftVoter with
// UNSUPPORTED_VERSION (Kafka's answer for a static quorum), and DescribeQuorum with itself
// as the one voter and leader.
//
// AddRaftVoter promotes a node that already follows the metadata log — a Raft non-voter,
// "observer": a broker-only node once registered — to voter (controller.AddVoter at the
// Raft address it follows from). Errors, chosen as Kafka's AddVoterHandler chooses them:
// DUPLICATE_VOTER (already a voter), REQUEST_TIMED_OUT (the node does not follow the log,
// so it cannot be caught up; or the change did not commit in time), INVALID_REQUEST (a
// negative id, or a "RAFT" listener naming another address than the one the node follows
// from; other listeners are ignored), INCONSISTENT_CLUSTER_ID, NOT_CONTROLLER. The answer
// comes once the new configuration is committed (AckWhenCommitted is always honoured).
//
// DescribeQuorum answers for __cluster_metadata-0 only (anything else:
// UNKNOWN_TOPIC_OR_PARTITION per requested partition, as Kafka does) from the active
// controller's Raft configuration: the leader, the voters (CurrentVoters) and the non-voters
// (Observers) by id, and in v2 the voters as nodes with their registered controller
// endpoint (listener "CONTROLLER", once registered) and their Raft address (listener
// "RAFT"). LeaderEpoch is the Raft term; HighWatermark and the leader's LogEndOffset are
// the leader's applied Raft index; other replicas' progress is not known (-1), nor are fetch timestamps (-1) or
// directory ids (zero).

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

// Kafka error codes of KIP-853 (they belong with the table in errors.go).
const (
	errDuplicateVoter int16 = 126
	errVoterNotFound  int16 = 127
)

// metadataTopic is the Raft log's topic name in DescribeQuorum.
const metadataTopic = "__cluster_metadata"

func init() {
	register(kmsg.AddRaftVoter, 0, 1, true, func(b *Broker, h *reqHeader, req *kmsg.AddRaftVoterRequest) kmsg.Response {
		resp := kmsg.NewPtrAddRaftVoterResponse()
		c := b.cluster
		fail := func(code int16, msg string) kmsg.Response {
			b.metrics.failed(h.key)
			resp.ErrorCode, resp.ErrorMessage = code, &msg
			return resp
		}
		if r, code, msg, done := b.voterChangeGate(h, req, req.ClusterID, func(r kmsg.Response) int16 {
			return r.(*kmsg.AddRaftVoterResponse).ErrorCode
		}); done {
			if r != nil {
				return r
			}
			return fail(code, msg)
		}
		d := c.opTimeout()
		if req.TimeoutMillis > 0 {
			d = min(d, time.Duration(req.TimeoutMillis)*time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if code, msg := c.addVoter(ctx, req); code != 0 {
			return fail(code, msg)
		}
		return resp
	})

	register(kmsg.DescribeQuorum, 0, 2, true, func(b *Broker, h *reqHeader, req *kmsg.DescribeQuorumRequest) kmsg.Response {
		resp := kmsg.NewPtrDescribeQuorumResponse()
		if !describesMetadataLog(req) {
			b.metrics.failed(h.key)
			for _, rt := range req.Topics {
				t := kmsg.NewDescribeQuorumResponseTopic()
				t.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					p := kmsg.NewDescribeQuorumResponseTopicPartition()
					p.Partition, p.ErrorCode, p.LeaderID, p.LeaderEpoch, p.HighWatermark = rp.Partition, errUnknownTopicOrPartition, -1, -1, -1
					t.Partitions = append(t.Partitions, p)
				}
				resp.Topics = append(resp.Topics, t)
			}
			return resp
		}
		c := b.cluster
		if c == nil {
			st := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
			st.ReplicaID, st.LogEndOffset = b.cfg.NodeID, -1
			p := quorumPartition()
			p.LeaderID, p.LeaderEpoch, p.HighWatermark = b.cfg.NodeID, -1, -1
			p.CurrentVoters = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{st}
			p.Observers = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
			resp.Topics = quorumTopics(p)
			return resp
		}
		if r, code, msg, forwarded := c.forwardIfNotActive(h, req, func(r kmsg.Response) int16 {
			dq := r.(*kmsg.DescribeQuorumResponse)
			if len(dq.Topics) == 1 && len(dq.Topics[0].Partitions) == 1 && dq.Topics[0].Partitions[0].ErrorCode == errNotLeaderOrFollower {
				return controller.CodeNotController
			}
			return dq.ErrorCode
		}); forwarded {
			if r != nil {
				return r
			}
			b.metrics.failed(h.key)
			p := quorumPartition()
			p.ErrorCode, p.LeaderID, p.LeaderEpoch, p.HighWatermark = errNotLeaderOrFollower, -1, -1, -1
			if code != controller.CodeNotController {
				p.ErrorCode = code
			}
			p.ErrorMessage = &msg
			resp.Topics = quorumTopics(p)
			return resp
		}
		servers, err := c.ctl.Servers()
		if err != nil {
			b.metrics.failed(h.key)
			msg := err.Error()
			resp.ErrorCode, resp.ErrorMessage = controller.ErrorCode(err), &msg
			return resp
		}
		c.describeQuorum(servers, resp)
		return resp
	})
}

// describesMetadataLog reports whether a DescribeQuorum request asks for exactly
// __cluster_metadata-0.
func describesMetadataLog(req *kmsg.DescribeQuorumRequest) bool {
	return len(req.Topics) == 1 && req.Topics[0].Topic == metadataTopic &&
		len(req.Topics[0].Partitions) == 1 && req.Topics[0].Partitions[0].Partition == 0
}

func quorumPartition() kmsg.DescribeQuorumResponseTopicPartition {
	p := kmsg.NewDescribeQuorumResponseTopicPartition()
	p.Partition = 0
	return p
}

func quorumTopics(p kmsg.DescribeQuorumResponseTopicPartition) []kmsg.DescribeQuorumResponseTopic {
	t := kmsg.NewDescribeQuorumResponseTopic()
	t.Topic = metadataTopic
	t.Partitions = []kmsg.DescribeQuorumResponseTopicPartition{p}
	return []kmsg.DescribeQuorumResponseTopic{t}
}

// voterChangeGate is what AddRaftVoter and RemoveRaftVoter check before acting: cluster
// mode (else UNSUPPORTED_VERSION), the cluster id, and that this node is the active
// controller (else the request is forwarded, and r is the answer to relay). done reports
// that the handler answers now: with r, or with code and msg.
func (b *Broker) voterChangeGate(h *reqHeader, req kmsg.Request, clusterID *string, topCode func(kmsg.Response) int16) (r kmsg.Response, code int16, msg string, done bool) {
	c := b.cluster
	switch {
	case c == nil:
		return nil, errUnsupportedVersion, "This node runs without a metadata quorum (not in cluster mode).", true
	case clusterID != nil && *clusterID != b.cfg.ClusterID:
		return nil, errInconsistentClusterID, fmt.Sprintf("The cluster id is %s, not %s.", b.cfg.ClusterID, *clusterID), true
	}
	return c.forwardIfNotActive(h, req, topCode)
}

// forwardIfNotActive sends a quorum request (AddRaftVoter, RemoveRaftVoter,
// DescribeQuorum) to the active controller when this node's controller is not it. forwarded is false when this node should answer itself (it is the
// active controller); otherwise the answer is r, or — when none came, or the request was
// itself forwarded here — code and msg. topCode extracts an answer's code, NOT_CONTROLLER
// meaning "try another node".
func (c *cluster) forwardIfNotActive(h *reqHeader, req kmsg.Request, topCode func(kmsg.Response) int16) (r kmsg.Response, code int16, msg string, forwarded bool) {
	if c.ctl.IsLeader() {
		return nil, 0, "", false
	}
	if h.clientID == fwdClientID {
		return nil, controller.CodeNotController, "This node's controller is not the active controller.", true
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
	defer cancel()
	r, err := c.fwd.forwardToActive(ctx, req, topCode)
	if err != nil {
		return nil, controller.ErrorCode(err), "No active controller answered: " + err.Error(), true
	}
	return r, 0, "", true
}

// voterIDs lists the voters' ids (messages).
func voterIDs(servers []controller.Server) []int32 {
	var ids []int32
	for _, s := range servers {
		if s.Voter {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func findServer(servers []controller.Server, id int32) (controller.Server, bool) {
	for _, s := range servers {
		if s.ID == id {
			return s, true
		}
	}
	return controller.Server{}, false
}

// quorumCode maps a controller error of a voter change to a Kafka code: NOT_CONTROLLER when
// leadership moved, REQUEST_TIMED_OUT when ctx ended.
func quorumCode(ctx context.Context, err error) int16 {
	if ctx.Err() != nil {
		return errRequestTimedOut
	}
	return controller.ErrorCode(err)
}

// addVoter promotes a non-voter to voter. Active controller only.
func (c *cluster) addVoter(ctx context.Context, req *kmsg.AddRaftVoterRequest) (int16, string) {
	id := req.VoterID
	if id < 0 {
		return errInvalidRequest, fmt.Sprintf("Invalid voter id %d.", id)
	}
	servers, err := c.ctl.Servers()
	if err != nil {
		return controller.ErrorCode(err), err.Error()
	}
	cur, ok := findServer(servers, id)
	switch {
	case ok && cur.Voter:
		return errDuplicateVoter, fmt.Sprintf("The voter id %d is already part of the set of voters %v.", id, voterIDs(servers))
	case !ok:
		return errRequestTimedOut, fmt.Sprintf("Node %d does not follow the metadata log: start it as a broker-only node (it registers and becomes an observer) before adding it as a voter.", id)
	}
	for _, l := range req.Listeners {
		if l.Name != raftListenerName {
			continue
		}
		if addr := net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port))); addr != cur.Addr {
			return errInvalidRequest, fmt.Sprintf("Node %d follows the metadata log from %s, not %s.", id, cur.Addr, addr)
		}
	}
	if err := c.ctl.AddVoter(ctx, id, cur.Addr); err != nil {
		return quorumCode(ctx, err), err.Error()
	}
	c.b.log.Info("added a voter to the metadata quorum", "node", id, "raft_addr", cur.Addr)
	return 0, ""
}

// describeQuorum fills a DescribeQuorum answer from the Raft configuration. Active
// controller only.
func (c *cluster) describeQuorum(servers []controller.Server, resp *kmsg.DescribeQuorumResponse) {
	slices.SortFunc(servers, func(a, b controller.Server) int { return int(a.ID) - int(b.ID) })
	applied := int64(c.ctl.Image().AppliedIndex())
	p := quorumPartition()
	p.LeaderID, p.LeaderEpoch, p.HighWatermark = c.self, int32(c.ctl.Term()), applied
	p.CurrentVoters = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
	p.Observers = []kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
	for _, s := range servers {
		st := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		st.ReplicaID, st.LogEndOffset = s.ID, -1
		if s.ID == c.self {
			st.LogEndOffset = applied
		}
		if !s.Voter {
			p.Observers = append(p.Observers, st)
			continue
		}
		p.CurrentVoters = append(p.CurrentVoters, st)
		n := kmsg.NewDescribeQuorumResponseNode()
		n.NodeID = s.ID
		if ci := c.ctl.Image().Controller(s.ID); ci != nil {
			for _, ep := range ci.Endpoints {
				l := kmsg.NewDescribeQuorumResponseNodeListener()
				l.Name, l.Host, l.Port = ep.Name, ep.Host, uint16(ep.Port)
				n.Listeners = append(n.Listeners, l)
			}
		}
		if host, port, err := net.SplitHostPort(s.Addr); err == nil {
			if pn, err := strconv.ParseUint(port, 10, 16); err == nil {
				l := kmsg.NewDescribeQuorumResponseNodeListener()
				l.Name, l.Host, l.Port = raftListenerName, host, uint16(pn)
				n.Listeners = append(n.Listeners, l)
			}
		}
		resp.Nodes = append(resp.Nodes, n)
	}
	resp.Topics = quorumTopics(p)
}
