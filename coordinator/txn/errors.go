package txn

import "github.com/spate-broker/spate/logstore"

// Kafka error codes the coordinator answers with (the protocol guide's numbers).
const (
	errUnknownServerError           int16 = -1
	errCorruptMessage               int16 = 2
	errUnknownTopicOrPartition      int16 = 3
	errNotLeaderOrFollower          int16 = 6
	errRequestTimedOut              int16 = 7
	errMessageTooLarge              int16 = 10
	errCoordinatorLoadInProgress    int16 = 14
	errCoordinatorNotAvailable      int16 = 15
	errNotCoordinator               int16 = 16
	errRecordListTooLarge           int16 = 18
	errNotEnoughReplicas            int16 = 19
	errNotEnoughReplicasAfterAppend int16 = 20
	errUnsupportedVersion           int16 = 35
	errInvalidRequest               int16 = 42
	errUnsupportedForMessageFormat  int16 = 43
	errInvalidProducerEpoch         int16 = 47
	errInvalidTxnState              int16 = 48
	errInvalidProducerIDMapping     int16 = 49
	errInvalidTransactionTimeout    int16 = 50
	errConcurrentTransactions       int16 = 51
	errTransactionCoordinatorFenced int16 = 52
	errOperationNotAttempted        int16 = 55
	errKafkaStorageError            int16 = 56
	errInvalidRecord                int16 = 87
	errProducerFenced               int16 = 90
	errTransactionalIDNotFound      int16 = 105
)

// appendErrorCode maps a failed append to __transaction_state to the code a client gets, as
// TransactionStateManager.appendTransactionToLog does.
func appendErrorCode(err error) int16 {
	if err == nil {
		return 0
	}
	switch code := logstore.CodeOf(err); code {
	case errUnknownTopicOrPartition, errNotEnoughReplicas, errNotEnoughReplicasAfterAppend, errRequestTimedOut:
		return errCoordinatorNotAvailable
	case errNotLeaderOrFollower, errKafkaStorageError:
		return errNotCoordinator
	case errMessageTooLarge, errRecordListTooLarge, errInvalidRecord, errCorruptMessage, errUnsupportedForMessageFormat:
		return errUnknownServerError // a batch we built is wrong: never the client's fault
	default:
		return code
	}
}

// fencedCode is PRODUCER_FENCED for clients that know it (KIP-588) and INVALID_PRODUCER_EPOCH
// below, as KafkaApis answers older request versions.
func fencedCode(code int16, version, firstFencedVersion int16) int16 {
	if code == errProducerFenced && version < firstFencedVersion {
		return errInvalidProducerEpoch
	}
	return code
}

// ProduceErrorCode is the code a produce response carries for a VerifyPartition result, as
// ReplicaManager translates the coordinator's errors for producers (transaction version 1):
// the retriable coordinator errors become NOT_ENOUGH_REPLICAS, which every producer retries
// without refreshing metadata; the others go through unchanged.
func ProduceErrorCode(code int16) int16 {
	switch code {
	case errConcurrentTransactions, errCoordinatorLoadInProgress, errCoordinatorNotAvailable, errNotCoordinator:
		return errNotEnoughReplicas
	}
	return code
}
