package broker

// ListGroups v0–v5. v4+ filters by state (case-insensitive, KIP-518); v5+ by type: "classic"
// or "consumer" (KIP-848; a consumer group's state is Empty, Assigning, Reconciling or Stable).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ListGroups, 0, 5, false, func(b *Broker, h *reqHeader, req *kmsg.ListGroupsRequest) kmsg.Response {
		return b.groups.ListGroups(req)
	})
}
