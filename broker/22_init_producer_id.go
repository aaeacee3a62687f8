package broker

// InitProducerId v0–v5. Without a transactional id (idempotent producers) every call returns a
// fresh producer id with epoch 0, as Kafka does (a KIP-360 epoch bump request from an
// idempotent producer also gets a fresh id). With one, the transaction coordinator answers:
// the id's producer id with its epoch bumped, fencing older instances (coordinator/txn).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.InitProducerID, 0, 5, true, func(b *Broker, h *reqHeader, req *kmsg.InitProducerIDRequest) kmsg.Response {
		if req.TransactionalID != nil {
			return b.txn.InitProducerID(req)
		}
		resp := kmsg.NewPtrInitProducerIDResponse()
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		id, err := b.pids.allocate()
		if err != nil {
			resp.ErrorCode = errKafkaStorageError
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return resp
	})
}
