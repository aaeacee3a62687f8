package broker

// AddPartitionsToTxn v0–v5: v0–v3 from producers (one transaction), v4+ batched from brokers
// (KIP-890: several transactions, verify_only). Answered by the transaction coordinator.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.AddPartitionsToTxn, 0, 5, true, func(b *Broker, h *reqHeader, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
		return b.txn.AddPartitionsToTxn(req)
	})
}
