package broker

// SyncGroup v0–v5. The leader's SyncGroup carries every member's assignment: it is stored in
// __consumer_offsets and then handed to each member; followers that sync first are parked
// until then. v5+ checks the protocol type and name (INCONSISTENT_GROUP_PROTOCOL).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/netio"
)

func init() {
	registerAsync(kmsg.SyncGroup, 0, 5, true, func(b *Broker, c *netio.Conn, h *reqHeader, req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
		b.groups.SyncGroup(req, reply)
	})
}
