package broker

// InitProducerId v0–v5 for idempotent producers (no transactional id): every call returns a
// fresh producer id with epoch 0, as Kafka does when transactional.id is null (a KIP-360
// epoch bump request from an idempotent producer also gets a fresh id). Transactional ids are
// the transaction coordinator's (a later issue): until then they are refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED so clients fail fast rather than retry forever.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.InitProducerID, 0, 5, true, func(b *Broker, h *reqHeader, req *kmsg.InitProducerIDRequest) kmsg.Response {
		resp := kmsg.NewPtrInitProducerIDResponse()
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		if req.TransactionalID != nil {
			resp.ErrorCode = errTransactionalIDAuthFailed
			return resp
		}
		id, err := b.pids.allocate()
		if err != nil {
			resp.ErrorCode = errKafkaStorageError
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return resp
	})
}
