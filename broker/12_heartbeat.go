package broker

// Heartbeat v0–v4: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin,
// ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID that it is out of the group.
// Memory only: answered on the event loop.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.Heartbeat, 0, 4, false, func(b *Broker, h *reqHeader, req *kmsg.HeartbeatRequest) kmsg.Response {
		return b.groups.Heartbeat(req)
	})
}
