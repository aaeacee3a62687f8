package logstore

import (
	"errors"
	"fmt"
)

// Kafka error codes that the log's errors map to (the protocol guide's table). The broker
// answers with Error.Code; logstore itself knows nothing of the network.
const (
	CodeOffsetOutOfRange            int16 = 1
	CodeCorruptMessage              int16 = 2
	CodeMessageTooLarge             int16 = 10
	CodeRecordListTooLarge          int16 = 18
	CodeKafkaStorageError           int16 = 56
	CodeUnsupportedForMessageFormat int16 = 43
	CodeInvalidRecord               int16 = 87
)

// Error is a log error that carries the Kafka error code the Java broker would answer with.
type Error struct {
	Code int16
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (kafka error %d)", e.Msg, e.Code) }

// Is makes errors.Is match on the code, so callers can test against the sentinels below.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is; the returned errors carry more detail.
var (
	ErrCorrupt          = &Error{Code: CodeCorruptMessage, Msg: "corrupt message"}
	ErrInvalidRecord    = &Error{Code: CodeInvalidRecord, Msg: "invalid record"}
	ErrUnsupportedMagic = &Error{Code: CodeUnsupportedForMessageFormat, Msg: "record batch magic is not 2"}
	ErrTooLarge         = &Error{Code: CodeMessageTooLarge, Msg: "message too large"}
	ErrOffsetOutOfRange = &Error{Code: CodeOffsetOutOfRange, Msg: "offset out of range"}
	// ErrClosed is returned by operations on a closed or deleted log.
	ErrClosed = errors.New("logstore: log closed")
)

func errCorruptf(format string, args ...any) error {
	return &Error{Code: CodeCorruptMessage, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Kafka error code for err: 0 for nil, the code of an *Error, and
// KAFKA_STORAGE_ERROR for anything else (I/O failures).
func CodeOf(err error) int16 {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeKafkaStorageError
}
