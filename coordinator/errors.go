package coordinator

import "github.com/spate-broker/spate/logstore"

// Kafka error codes the coordinator answers with (the protocol guide's numbers).
const (
	errUnknownServerError        int16 = -1
	errUnknownTopicOrPartition   int16 = 3
	errOffsetMetadataTooLarge    int16 = 12
	errCoordinatorLoadInProgress int16 = 14
	errCoordinatorNotAvailable   int16 = 15
	errNotCoordinator            int16 = 16
	errIllegalGeneration         int16 = 22
	errInconsistentGroupProtocol int16 = 23
	errInvalidGroupID            int16 = 24
	errUnknownMemberID           int16 = 25
	errInvalidSessionTimeout     int16 = 26
	errRebalanceInProgress       int16 = 27
	errInvalidCommitOffsetSize   int16 = 28
	errInvalidRequest            int16 = 42
	errNonEmptyGroup             int16 = 68
	errGroupIDNotFound           int16 = 69
	errMemberIDRequired          int16 = 79
	errGroupMaxSizeReached       int16 = 81
	errFencedInstanceID          int16 = 82
	errGroupSubscribedToTopic    int16 = 86
	errUnstableOffsetCommit      int16 = 88

	// Codes an append may fail with, mapped below.
	errCorruptMessage               int16 = 2
	errInvalidFetchSize             int16 = 4
	errNotLeaderOrFollower          int16 = 6
	errMessageTooLarge              int16 = 10
	errRecordListTooLarge           int16 = 18
	errNotEnoughReplicas            int16 = 19
	errNotEnoughReplicasAfterAppend int16 = 20
	errUnsupportedForMessageFormat  int16 = 43
	errKafkaStorageError            int16 = 56
	errInvalidRecord                int16 = 87
)

// appendErrorCode maps a failed append to __consumer_offsets to the code a client gets, as
// GroupMetadataManager does (storeOffsets/storeGroup).
func appendErrorCode(err error) int16 {
	if err == nil {
		return 0
	}
	switch code := logstore.CodeOf(err); code {
	case errUnknownTopicOrPartition, errNotEnoughReplicas, errNotEnoughReplicasAfterAppend:
		return errCoordinatorNotAvailable
	case errNotLeaderOrFollower, errKafkaStorageError:
		return errNotCoordinator
	case errMessageTooLarge, errRecordListTooLarge, errInvalidFetchSize:
		return errInvalidCommitOffsetSize
	case errInvalidRecord, errCorruptMessage, errUnsupportedForMessageFormat:
		return errUnknownServerError // a batch we built is wrong: never the client's fault
	default:
		return code
	}
}
