package broker

// JoinGroup v0–v9 (classic group protocol; see package coordinator for the rules). v0 has no
// rebalance timeout (the session timeout serves); v4+ without a member id gets
// MEMBER_ID_REQUIRED and a member id to join with (KIP-394); v5+ carries group.instance.id
// (static membership, KIP-345); v7+ returns the protocol type; v8+ a reason; v9 tells a
// rejoining static leader to skip assignment (KIP-814). The request is parked until the
// rebalance completes and answered from another goroutine; it runs off the event loop because
// completing a rebalance may append to __consumer_offsets.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/netio"
)

func init() {
	registerAsync(kmsg.JoinGroup, 0, 9, true, func(b *Broker, c *netio.Conn, h *reqHeader, req *kmsg.JoinGroupRequest, reply func(*kmsg.JoinGroupResponse)) {
		b.groups.JoinGroup(req, groupClient(c, h), reply)
	})
}
