package broker

// ListTransactions v0–v1 (KIP-664; v1 adds the duration filter, KIP-994): transactional ids
// known to the coordinator, filtered by state and producer id.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ListTransactions, 0, 1, true, func(b *Broker, h *reqHeader, req *kmsg.ListTransactionsRequest) kmsg.Response {
		return b.txn.ListTransactions(req)
	})
}
