package broker

// TxnOffsetCommit v0–v4: offsets committed as part of a transaction (KIP-98; v3+ carries the
// group member, KIP-447). The transaction coordinator first confirms that the group's
// partition of __consumer_offsets is in the producer's ongoing transaction (AddOffsetsToTxn
// came first; KIP-890 part 1; in a cluster, over the wire when that coordinator is another
// node); the group coordinator then writes the offsets as a
// transactional batch, installed when the transaction commits.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/coordinator/txn"
)

func init() {
	register(kmsg.TxnOffsetCommit, 0, 4, true, func(b *Broker, h *reqHeader, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
		code := b.groups.Ensure()
		if code == 0 {
			tp := txn.TopicPartition{Topic: coordinator.OffsetsTopic, Partition: b.groups.PartitionFor(req.Group)}
			if b.cluster == nil || b.txn.Owns(b.txn.PartitionFor(req.TransactionalID)) {
				code = b.txn.VerifyPartition(req.TransactionalID, req.ProducerID, req.ProducerEpoch, tp)
			} else {
				// The transactional id's coordinator is another node: ask it (this handler
				// runs on its own goroutine).
				codes, err := b.verifyWithCoordinator(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp})
				switch {
				case err != nil:
					code = errCoordinatorNotAvailable
				case codes[0] == errProducerFenced:
					code = errInvalidProducerEpoch // as VerifyPartition answers
				default:
					code = codes[0]
				}
			}
		}
		if code != 0 {
			resp := kmsg.NewPtrTxnOffsetCommitResponse()
			for _, t := range req.Topics {
				rt := kmsg.NewTxnOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			b.metrics.failed(h.key)
			return resp
		}
		return b.groups.TxnOffsetCommit(req)
	})
}
