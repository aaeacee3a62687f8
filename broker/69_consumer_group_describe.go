package broker

// ConsumerGroupDescribe v0–v1 (KIP-848): a consumer group's state, group and assignment
// epochs, assignor and members (epoch, subscription, assignment and target assignment, with
// topic ids and names; v1 adds the member type: 1 for consumer-protocol members, 0 for classic
// members of a consumer group). An unknown or classic group is GROUP_ID_NOT_FOUND
// (DescribeGroups describes those). authorized_operations is not computed: INT32_MIN. Memory
// only: answered on the event loop.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ConsumerGroupDescribe, 0, 1, false, func(b *Broker, h *reqHeader, req *kmsg.ConsumerGroupDescribeRequest) kmsg.Response {
		return b.groups.ConsumerGroupDescribe(req)
	})
}
