package broker

// LeaveGroup v0–v5. v0–v2 name one member and answer with its error; v3+ name several
// (member id and/or group instance id; an instance id alone removes that static member, as
// an administrator does) and answer per member (KIP-345). Runs off the event loop: a group
// left empty is stored.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.LeaveGroup, 0, 5, true, func(b *Broker, h *reqHeader, req *kmsg.LeaveGroupRequest) kmsg.Response {
		return b.groups.LeaveGroup(req)
	})
}
