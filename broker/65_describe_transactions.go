package broker

// DescribeTransactions v0 (KIP-664): the state of transactional ids, from the transaction
// coordinator.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.DescribeTransactions, 0, 0, true, func(b *Broker, h *reqHeader, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
		return b.txn.DescribeTransactions(req)
	})
}
