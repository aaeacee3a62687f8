package controller

import (
	"context"
	"errors"
	"fmt"
)

// Kafka error codes the controller answers with, numbered as the protocol guide numbers them
// (a test holds them against franz-go's kerr). Codes are chosen as the Java controller would
// choose them.
const (
	CodeNone                        int16 = 0
	CodeUnknownServerError          int16 = -1
	CodeUnknownTopicOrPartition     int16 = 3
	CodeRequestTimedOut             int16 = 7
	CodeInvalidTopicException       int16 = 17
	CodeTopicAlreadyExists          int16 = 36
	CodeInvalidPartitions           int16 = 37
	CodeInvalidReplicationFactor    int16 = 38
	CodeInvalidReplicaAssignment    int16 = 39
	CodeInvalidConfig               int16 = 40
	CodeNotController               int16 = 41
	CodeInvalidRequest              int16 = 42
	CodeFencedLeaderEpoch           int16 = 74
	CodeStaleBrokerEpoch            int16 = 77
	CodePreferredLeaderNotAvailable int16 = 80
	CodeEligibleLeadersNotAvailable int16 = 83
	CodeElectionNotNeeded           int16 = 84
	CodeInvalidUpdateVersion        int16 = 95
	CodeUnknownTopicID              int16 = 100
	CodeDuplicateBrokerRegistration int16 = 101
	CodeBrokerIDNotRegistered       int16 = 102
	CodeIneligibleReplica           int16 = 107
)

// ErrNotLeader is matched (errors.Is) by every *NotLeaderError.
var ErrNotLeader = errors.New("controller: not the leader")

// ErrClosed is returned by operations on a closed controller.
var ErrClosed = errors.New("controller: closed")

// NotLeaderError is returned by leader-side operations on a node that is not the Raft
// leader (or has not finished taking over). The caller forwards the request to LeaderID
// (NOT_CONTROLLER to a client when it cannot).
type NotLeaderError struct {
	LeaderID   int32  // -1 when no leader is known
	LeaderAddr string // the leader's Raft address; "" when unknown
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID < 0 {
		return "controller: not the leader, and no leader is known"
	}
	return fmt.Sprintf("controller: not the leader; the leader is node %d at %s", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Error is a Kafka error an operation failed with.
type Error struct {
	Code    int16
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("controller: kafka error %d: %s", e.Code, e.Message)
}

func kafkaErr(code int16, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode maps an error returned by the controller to the Kafka code a broker answers
// with: the code of an *Error, NOT_CONTROLLER for ErrNotLeader and ErrClosed,
// REQUEST_TIMED_OUT for an expired context, UNKNOWN_SERVER_ERROR for anything else, NONE
// for nil.
func ErrorCode(err error) int16 {
	var ke *Error
	switch {
	case err == nil:
		return CodeNone
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed):
		return CodeNotController
	case errors.Is(err, context.DeadlineExceeded):
		return CodeRequestTimedOut
	default:
		return CodeUnknownServerError
	}
}
