package logstore

// Control records (KIP-98): the single record of a control batch written by the broker to end
// a transaction. Its key (never compressed) says which end:
//
//	key:   version i16 (0) | type i16 (0 abort, 1 commit)
//	value: version i16 (0) | coordinator_epoch i32

import "encoding/binary"

// Control record types.
const (
	ControlAbort  = 0
	ControlCommit = 1
)

// ControlMarker reads a control batch's marker: commit (true) or abort (false). ok is false
// for a malformed batch or a control record of another type, which ends no transaction.
func ControlMarker(batch []byte) (commit, ok bool) {
	if len(batch) <= BatchHeaderSize {
		return false, false
	}
	r := batch[BatchHeaderSize:]
	// length varint | attributes i8 | timestamp delta varint | offset delta varint | key
	if _, n := binary.Varint(r); n > 0 && n < len(r) {
		r = r[n+1:]
	} else {
		return false, false
	}
	for range 2 {
		_, n := binary.Varint(r)
		if n <= 0 {
			return false, false
		}
		r = r[n:]
	}
	klen, n := binary.Varint(r)
	if n <= 0 || klen < 4 || klen > int64(len(r)-n) {
		return false, false
	}
	switch binary.BigEndian.Uint16(r[n+2:]) {
	case ControlAbort:
		return false, true
	case ControlCommit:
		return true, true
	}
	return false, false
}

// AppendControlRecord encodes the key and value of a control record for a marker into dst
// (key in dst[:4], value in dst[4:10]).
func AppendControlRecord(dst []byte, commit bool, coordinatorEpoch int32) (key, value []byte) {
	typ := uint16(ControlAbort)
	if commit {
		typ = ControlCommit
	}
	dst = binary.BigEndian.AppendUint16(dst[:0], 0)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(coordinatorEpoch))
	return dst[:4], dst[4:10]
}
