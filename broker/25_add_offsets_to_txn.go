package broker

// AddOffsetsToTxn v0–v4: adds the group's partition of __consumer_offsets to the producer's
// transaction, so that its TxnOffsetCommit is committed or aborted with it.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.AddOffsetsToTxn, 0, 4, true, func(b *Broker, h *reqHeader, req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
		return b.txn.AddOffsetsToTxn(req)
	})
}
