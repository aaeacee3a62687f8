package broker

// FindCoordinator v0–v6. v0–v3 ask for one key (v0: a group); v4+ for several
// (coordinator_keys), each answered on its own. This node is every group's and every
// transactional id's coordinator: the first request for a group creates __consumer_offsets,
// the first for a transactional id (key type 1) __transaction_state (Kafka answers
// COORDINATOR_NOT_AVAILABLE while it creates the topic in the background; we create it before
// answering). Another key type is INVALID_REQUEST. As in Kafka, error_message is the error's name for success ("NONE").

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.FindCoordinator, 0, 6, true, func(b *Broker, h *reqHeader, req *kmsg.FindCoordinatorRequest) kmsg.Response {
		resp := kmsg.NewPtrFindCoordinatorResponse()
		keys := req.CoordinatorKeys
		if h.version < 4 {
			keys = []string{req.CoordinatorKey}
		}
		code := errNone
		switch req.CoordinatorType {
		case 0:
			code = b.groups.Ensure()
		case 1:
			code = b.txn.Ensure()
		default:
			code = errInvalidRequest
		}
		for _, k := range keys {
			out := kmsg.NewFindCoordinatorResponseCoordinator()
			out.Key, out.ErrorCode = k, code
			node, host, port := b.cfg.NodeID, b.cfg.AdvertisedHost, b.cfg.AdvertisedPort
			if c := b.cluster; c != nil && code == 0 {
				// The coordinator is the leader of the key's internal partition.
				node, host, port, out.ErrorCode = c.coordinatorFor(req.CoordinatorType, k)
			}
			msg := findCoordinatorMessage(out.ErrorCode)
			out.ErrorMessage = &msg
			out.NodeID, out.Host, out.Port = -1, "", -1
			if out.ErrorCode == 0 {
				out.NodeID, out.Host, out.Port = node, host, port
			} else {
				b.metrics.failed(h.key)
			}
			resp.Coordinators = append(resp.Coordinators, out)
		}
		if h.version < 4 && len(resp.Coordinators) == 1 {
			c := resp.Coordinators[0]
			resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
			resp.Coordinators = nil
		}
		return resp
	})
}

func findCoordinatorMessage(code int16) string {
	switch code {
	case errNone:
		return "NONE"
	case errCoordinatorNotAvailable:
		return "The coordinator is not available."
	case errNotCoordinator:
		return "This is not the correct coordinator."
	case errInvalidRequest:
		return "Invalid coordinator type."
	}
	return ""
}
