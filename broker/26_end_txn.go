package broker

// EndTxn v0–v4: commits or aborts the producer's transaction. The coordinator answers once
// the markers are written to every partition of the transaction (a single node writes them
// locally), so a producer's next transaction never meets CONCURRENT_TRANSACTIONS.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.EndTxn, 0, 4, true, func(b *Broker, h *reqHeader, req *kmsg.EndTxnRequest) kmsg.Response {
		return b.txn.EndTxn(req)
	})
}
