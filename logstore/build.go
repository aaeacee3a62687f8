package logstore

import (
	"encoding/binary"
)

// Record is one record to encode with AppendBatch. A nil Key or Value encodes as null.
type Record struct {
	Key, Value     []byte
	TimestampDelta int64
	Headers        []RecordHeader
}

// RecordHeader is a record header (key, value).
type RecordHeader struct {
	Key   string
	Value []byte
}

// BatchSpec describes a batch for AppendBatch (used for control batches written by the broker
// and by tests and tools). Records are encoded uncompressed.
type BatchSpec struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	Attributes           int16 // compression bits must be 0
	BaseTimestamp        int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	Records              []Record
}

// AppendBatch encodes a magic v2 batch with a correct length, last offset delta, max timestamp
// and CRC, appending it to dst.
func AppendBatch(dst []byte, b BatchSpec) []byte {
	start := len(dst)
	var hdr [BatchHeaderSize]byte
	dst = append(dst, hdr[:]...)
	maxTs := b.BaseTimestamp
	for i, r := range b.Records {
		maxTs = max(maxTs, b.BaseTimestamp+r.TimestampDelta)
		dst = appendRecord(dst, int32(i), r)
	}
	h := dst[start:]
	binary.BigEndian.PutUint64(h[offBaseOffset:], uint64(b.BaseOffset))
	binary.BigEndian.PutUint32(h[offBatchLength:], uint32(len(h)-LogOverhead))
	binary.BigEndian.PutUint32(h[offLeaderEpoch:], uint32(b.PartitionLeaderEpoch))
	h[offMagic] = 2
	binary.BigEndian.PutUint16(h[offAttributes:], uint16(b.Attributes))
	binary.BigEndian.PutUint32(h[offLastOffsetDelta:], uint32(max(len(b.Records)-1, 0)))
	binary.BigEndian.PutUint64(h[offBaseTimestamp:], uint64(b.BaseTimestamp))
	binary.BigEndian.PutUint64(h[offMaxTimestamp:], uint64(maxTs))
	binary.BigEndian.PutUint64(h[offProducerID:], uint64(b.ProducerID))
	binary.BigEndian.PutUint16(h[offProducerEpoch:], uint16(b.ProducerEpoch))
	binary.BigEndian.PutUint32(h[offBaseSequence:], uint32(b.BaseSequence))
	binary.BigEndian.PutUint32(h[offRecordCount:], uint32(len(b.Records)))
	binary.BigEndian.PutUint32(h[offCRC:], BatchCRC(h))
	return dst
}

func appendRecord(dst []byte, offsetDelta int32, r Record) []byte {
	var body [64]byte
	b := body[:0]
	b = append(b, 0) // attributes
	b = binary.AppendVarint(b, r.TimestampDelta)
	b = binary.AppendVarint(b, int64(offsetDelta))
	b = appendVarBytes(b, r.Key)
	b = appendVarBytes(b, r.Value)
	b = binary.AppendVarint(b, int64(len(r.Headers)))
	for _, h := range r.Headers {
		b = appendVarBytes(b, []byte(h.Key))
		b = appendVarBytes(b, h.Value)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func appendVarBytes(dst, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(v)))
	return append(dst, v...)
}
