package broker

// ListGroups v0–v5. v4+ filters by state (case-insensitive, KIP-518); v5+ by type — every
// group here is "classic" until KIP-848 groups exist.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ListGroups, 0, 5, false, func(b *Broker, h *reqHeader, req *kmsg.ListGroupsRequest) kmsg.Response {
		return b.groups.ListGroups(req)
	})
}
