package broker

// Kafka error codes, as the protocol guide numbers them. One table; handlers choose the code
// the Java broker would answer with.
const (
	errNone                         int16 = 0
	errOffsetOutOfRange             int16 = 1
	errCorruptMessage               int16 = 2
	errUnknownTopicOrPartition      int16 = 3
	errInvalidFetchSize             int16 = 4
	errLeaderNotAvailable           int16 = 5
	errNotLeaderOrFollower          int16 = 6
	errRequestTimedOut              int16 = 7
	errMessageTooLarge              int16 = 10
	errCoordinatorNotAvailable      int16 = 15
	errNotCoordinator               int16 = 16
	errInvalidTopicException        int16 = 17
	errRecordListTooLarge           int16 = 18
	errNotEnoughReplicas            int16 = 19
	errInvalidRequiredAcks          int16 = 21
	errClusterAuthorizationFailed   int16 = 31
	errUnsupportedVersion           int16 = 35
	errTopicAlreadyExists           int16 = 36
	errInvalidPartitions            int16 = 37
	errInvalidReplicationFactor     int16 = 38
	errInvalidReplicaAssignment     int16 = 39
	errInvalidConfig                int16 = 40
	errInvalidRequest               int16 = 42
	errUnsupportedForMessageFormat  int16 = 43
	errPolicyViolation              int16 = 44
	errOutOfOrderSequenceNumber     int16 = 45
	errDuplicateSequenceNumber      int16 = 46
	errInvalidProducerEpoch         int16 = 47
	errInvalidTxnState              int16 = 48
	errInvalidTransactionTimeout    int16 = 50
	errTransactionCoordinatorFenced int16 = 52
	errTransactionalIDAuthFailed    int16 = 53
	errKafkaStorageError            int16 = 56
	errUnknownProducerID            int16 = 59
	errProducerFenced               int16 = 90
	errFetchSessionIDNotFound       int16 = 70
	errInvalidFetchSessionEpoch     int16 = 71
	errOffsetNotAvailable           int16 = 78
	errFencedLeaderEpoch            int16 = 74
	errUnknownLeaderEpoch           int16 = 75
	errInvalidRecord                int16 = 87
	errUnknownTopicID               int16 = 100
	errInconsistentTopicID          int16 = 103
	errInconsistentClusterID        int16 = 104
	errTransactionalIDNotFound      int16 = 105
	errMismatchedEndpointType       int16 = 114
	errUnsupportedEndpointType      int16 = 115
	errUnknownServerError           int16 = -1
)
