package txn

// AddOffsetsToTxn v0–v4 (key 25). v2+ may answer PRODUCER_FENCED (KIP-588;
// INVALID_PRODUCER_EPOCH below).

import "github.com/twmb/franz-go/pkg/kmsg"

// AddOffsetsToTxn adds the group's partition of __consumer_offsets to the transaction, as
// AddPartitionsToTxn would (KafkaApis.handleAddOffsetsToTxnRequest); the offsets committed
// with TxnOffsetCommit then get the transaction's marker. COORDINATOR_NOT_AVAILABLE when the
// group coordinator cannot say where the group lives.
func (c *Coordinator) AddOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := kmsg.NewPtrAddOffsetsToTxnResponse()
	resp.Version = req.Version
	resp.ErrorCode = fencedCode(c.addOffsets(req), req.Version, 2)
	return resp
}

func (c *Coordinator) addOffsets(req *kmsg.AddOffsetsToTxnRequest) int16 {
	if req.TransactionalID == "" {
		return errInvalidRequest
	}
	if code := c.statusFor(req.TransactionalID); code != 0 {
		return code
	}
	tp, ok := c.host.OffsetsPartitionFor(req.Group)
	if !ok {
		return errCoordinatorNotAvailable
	}
	return c.addPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []TopicPartition{tp})
}
