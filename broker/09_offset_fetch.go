package broker

// OffsetFetch v0–v9. v2+ with null topics fetches every committed offset of the group and
// has a group-level error code; v8+ fetches for several groups; v9's member id and epoch are
// checked for consumer (KIP-848) groups only (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH). An
// offset never committed is -1 with empty metadata. With require_stable (v7+, KIP-447) a
// partition whose transactional commit awaits its marker answers UNSTABLE_OFFSET_COMMIT (the
// client retries).
// Memory only: answered on the event loop.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.OffsetFetch, 0, 9, false, func(b *Broker, h *reqHeader, req *kmsg.OffsetFetchRequest) kmsg.Response {
		return b.groups.OffsetFetch(req)
	})
}
