package broker

// OffsetCommit v0–v9 (v10, topic ids, is not served yet). Answered once the offsets are
// appended to __consumer_offsets, so it runs off the event loop. v1 may carry a commit
// timestamp per partition, v2–v4 a retention time (the offset's own expiry), v6+ leader
// epochs, v7+ group.instance.id. Committed metadata is stored as given (null as "") and
// returned unchanged by OffsetFetch (compat-traps.md). Group rules: package coordinator.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.OffsetCommit, 0, 9, true, func(b *Broker, h *reqHeader, req *kmsg.OffsetCommitRequest) kmsg.Response {
		return b.groups.OffsetCommit(req)
	})
}
