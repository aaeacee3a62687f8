package broker

// DescribeGroups v0–v6. Members' metadata and assignments are given for a Stable group only,
// as Kafka does; an unknown group — or a consumer (KIP-848) group: ConsumerGroupDescribe — is
// described as Dead, with GROUP_ID_NOT_FOUND from v6 (KIP-1043). authorized_operations (v3+)
// is not computed: INT32_MIN.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeGroups, 0, 6, false, func(b *Broker, h *reqHeader, req *kmsg.DescribeGroupsRequest) kmsg.Response {
		return b.groups.DescribeGroups(req)
	})
}
