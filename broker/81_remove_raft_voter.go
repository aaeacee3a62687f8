package broker

// RemoveRaftVoter v0 (KIP-853, cluster mode): removes a voter from the metadata quorum, on
// the active controller (forwarded there from any node, see 80_add_raft_voter.go). A
// removed voter that is a registered broker stays in the Raft configuration as a non-voter
// (an observer), so that its broker keeps following the metadata log; any other is removed
// altogether. Errors, chosen as Kafka's RemoveVoterHandler chooses them: VOTER_NOT_FOUND
// (not a voter — unknown, or an observer — or the last voter), INCONSISTENT_CLUSTER_ID,
// NOT_CONTROLLER, REQUEST_TIMED_OUT. The directory id is not checked (Spate has none).
//
// The active controller removing itself first hands leadership to another voter (a Raft
// leadership transfer), then forwards the request to the new active controller, which
// removes it like any other voter; the answer is the new controller's.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.RemoveRaftVoter, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.RemoveRaftVoterRequest) kmsg.Response {
		resp := kmsg.NewPtrRemoveRaftVoterResponse()
		c := b.cluster
		fail := func(code int16, msg string) kmsg.Response {
			b.metrics.failed(h.key)
			resp.ErrorCode, resp.ErrorMessage = code, &msg
			return resp
		}
		if r, code, msg, done := b.voterChangeGate(h, req, req.ClusterID, func(r kmsg.Response) int16 {
			return r.(*kmsg.RemoveRaftVoterResponse).ErrorCode
		}); done {
			if r != nil {
				return r
			}
			return fail(code, msg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
		defer cancel()
		if code, msg := c.removeVoter(ctx, req); code != 0 {
			return fail(code, msg)
		}
		return resp
	})
}

// removeVoter removes a voter, keeping a registered broker as a non-voter. Active
// controller only.
func (c *cluster) removeVoter(ctx context.Context, req *kmsg.RemoveRaftVoterRequest) (int16, string) {
	id := req.VoterID
	servers, err := c.ctl.Servers()
	if err != nil {
		return quorumCode(ctx, err), err.Error()
	}
	voters := voterIDs(servers)
	cur, ok := findServer(servers, id)
	switch {
	case !ok || !cur.Voter:
		return errVoterNotFound, fmt.Sprintf("Node %d is not part of the set of voters %v.", id, voters)
	case len(voters) == 1:
		return errVoterNotFound, fmt.Sprintf("Cannot remove voter %d: the set of voters %v would be empty.", id, voters)
	case id == c.self:
		return c.removeSelf(ctx, req)
	}
	if err := c.ctl.RemoveServer(ctx, id); err != nil {
		return quorumCode(ctx, err), err.Error()
	}
	c.b.log.Info("removed a voter from the metadata quorum", "node", id)
	if c.ctl.Image().Broker(id) == nil {
		return 0, ""
	}
	if err := c.ctl.AddNonvoter(ctx, id, cur.Addr); err != nil {
		return quorumCode(ctx, err), fmt.Sprintf("Voter %d was removed, but keeping it as an observer (its broker follows the metadata log) failed: %v", id, err)
	}
	c.b.log.Info("the removed voter stays in the metadata quorum as a non-voter", "node", id, "raft_addr", cur.Addr)
	return 0, ""
}

// removeSelf removes the active controller: leadership moves to another voter, which is
// sent the request.
func (c *cluster) removeSelf(ctx context.Context, req *kmsg.RemoveRaftVoterRequest) (int16, string) {
	c.b.log.Info("handing over the active controller's role before removing this node from the quorum")
	if err := c.ctl.TransferLeadership(); err != nil {
		return quorumCode(ctx, err), fmt.Sprintf("Handing leadership over before removing voter %d failed: %v", req.VoterID, err)
	}
	r, err := c.fwd.forwardToActive(ctx, req, func(r kmsg.Response) int16 { return r.(*kmsg.RemoveRaftVoterResponse).ErrorCode })
	if err != nil {
		return quorumCode(ctx, err), fmt.Sprintf("Voter %d handed leadership over, but the new active controller did not answer: %v", req.VoterID, err)
	}
	rr := r.(*kmsg.RemoveRaftVoterResponse)
	if rr.ErrorCode == 0 {
		return 0, ""
	}
	msg := ""
	if rr.ErrorMessage != nil {
		msg = *rr.ErrorMessage
	}
	return rr.ErrorCode, msg
}
