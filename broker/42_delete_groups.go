package broker

// DeleteGroups v0–v2: deletes Empty groups and their offsets (tombstones in
// __consumer_offsets); NON_EMPTY_GROUP for a group with members, GROUP_ID_NOT_FOUND for an
// unknown one. Runs off the event loop (it appends).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DeleteGroups, 0, 2, true, func(b *Broker, h *reqHeader, req *kmsg.DeleteGroupsRequest) kmsg.Response {
		return b.groups.DeleteGroups(req)
	})
}
