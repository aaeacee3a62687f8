package broker

// OffsetDelete v0 (KIP-496): deletes a group's committed offsets. An Empty group loses them
// all (and dies when none is left); a consumer group with members keeps those of topics it
// subscribes to (GROUP_SUBSCRIBED_TO_TOPIC per partition); another group with members is
// NON_EMPTY_GROUP. Unknown topics or partitions are UNKNOWN_TOPIC_OR_PARTITION. Runs off the
// event loop (it appends).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.OffsetDelete, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.OffsetDeleteRequest) kmsg.Response {
		return b.groups.OffsetDelete(req)
	})
}
