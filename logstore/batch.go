package logstore

import (
	"encoding/binary"
	"hash/crc32"
)

// Offset is a record's position in a partition: dense and increasing.
type Offset = int64

// A record batch (magic v2) as stored in a segment and sent on the wire. All integers are
// big-endian. Spate stores it byte-for-byte as the producer sent it, except BaseOffset and
// PartitionLeaderEpoch, which the CRC does not cover.
//
//	off  size  field
//	  0     8  BaseOffset            rewritten on leader append
//	  8     4  BatchLength           bytes after this field (total = BatchLength + 12)
//	 12     4  PartitionLeaderEpoch  rewritten on leader append
//	 16     1  Magic                 must be 2
//	 17     4  CRC                   CRC-32C (Castagnoli) of bytes [21, end)
//	 21     2  Attributes            bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
//	 23     4  LastOffsetDelta
//	 27     8  BaseTimestamp
//	 35     8  MaxTimestamp
//	 43     8  ProducerId
//	 51     2  ProducerEpoch
//	 53     4  BaseSequence
//	 57     4  RecordCount
//	 61     …  Records
const (
	BatchHeaderSize = 61 // RECORD_BATCH_OVERHEAD
	LogOverhead     = 12 // BaseOffset + BatchLength

	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// Attribute bits.
	AttrCompressionMask = 0x07
	AttrLogAppendTime   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded fixed part of a record batch.
type BatchHeader struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the batch's total size in bytes.
func (h *BatchHeader) Size() int { return int(h.BatchLength) + LogOverhead }

// LastOffset is the offset of the batch's last record.
func (h *BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// IsControl reports a control (transaction marker) batch.
func (h *BatchHeader) IsControl() bool { return h.Attributes&AttrControl != 0 }

// IsTransactional reports a transactional batch.
func (h *BatchHeader) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// Compression returns the compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
func (h *BatchHeader) Compression() int { return int(h.Attributes & AttrCompressionMask) }

// ParseBatchHeader decodes the fixed header at the start of b, which must hold at least
// BatchHeaderSize bytes. It checks nothing.
func ParseBatchHeader(b []byte, h *BatchHeader) {
	_ = b[BatchHeaderSize-1]
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
}

// BatchCRC computes the CRC-32C a batch should carry.
func BatchCRC(batch []byte) uint32 { return crc32.Checksum(batch[offAttributes:], castagnoli) }

// SetBaseOffset rewrites a batch's base offset in place (not covered by the CRC).
func SetBaseOffset(batch []byte, o int64) {
	binary.BigEndian.PutUint64(batch[offBaseOffset:], uint64(o))
}

// SetPartitionLeaderEpoch rewrites a batch's partition leader epoch (not covered by the CRC).
func SetPartitionLeaderEpoch(batch []byte, e int32) {
	binary.BigEndian.PutUint32(batch[offLeaderEpoch:], uint32(e))
}

// setLogAppendTime marks a batch LogAppendTime with max timestamp ts and recomputes the CRC.
func setLogAppendTime(batch []byte, ts int64) {
	a := binary.BigEndian.Uint16(batch[offAttributes:]) | AttrLogAppendTime
	binary.BigEndian.PutUint16(batch[offAttributes:], a)
	binary.BigEndian.PutUint64(batch[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(batch[offCRC:], BatchCRC(batch))
}

// CheckBatch validates the batch at the start of b against the storage rules and returns its
// header and size. It checks: room for the header, a length that fits in b and is at least a
// header, magic 2, the CRC, and a record count consistent with LastOffsetDelta and the
// bytes present (a record takes at least 7 bytes). maxBatch bounds the size
// (max.message.bytes; 0 = no bound). It allocates nothing.
func CheckBatch(b []byte, maxBatch int, h *BatchHeader) error {
	return checkBatch(b, maxBatch, h, crcOfData)
}

// CheckBatchCRC is CheckBatch with the CRC-32C of the bytes the batch's CRC covers (from the
// attributes to the end) computed by crcOf: the produce path sums them from checksums its
// network layer took as they arrived (netio.Request.CRC32C).
func CheckBatchCRC(b []byte, maxBatch int, h *BatchHeader, crcOf func(data []byte) uint32) error {
	return checkBatch(b, maxBatch, h, crcOf)
}

func crcOfData(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// checkBatch is CheckBatch, the CRC computed by crcOf, or left out when crcOf is nil.
func checkBatch(b []byte, maxBatch int, h *BatchHeader, crcOf func([]byte) uint32) error {
	if len(b) < BatchHeaderSize {
		if len(b) >= offMagic+1 && b[offMagic] != 2 {
			return ErrUnsupportedMagic
		}
		return errCorruptf("batch of %d bytes is shorter than a header", len(b))
	}
	ParseBatchHeader(b, h)
	if h.Magic != 2 {
		return ErrUnsupportedMagic
	}
	size := int64(h.BatchLength) + LogOverhead
	if size < BatchHeaderSize {
		return errCorruptf("batch length %d is shorter than a header", h.BatchLength)
	}
	if maxBatch > 0 && size > int64(maxBatch) {
		return &Error{Code: CodeMessageTooLarge, Msg: "batch larger than max.message.bytes"}
	}
	if size > int64(len(b)) {
		return errCorruptf("batch length %d runs past the %d bytes given", h.BatchLength, len(b))
	}
	if crcOf != nil && crcOf(b[offAttributes:size]) != h.CRC {
		return errCorruptf("batch CRC mismatch")
	}
	if h.RecordCount < 0 || h.LastOffsetDelta < 0 {
		return &Error{Code: CodeInvalidRecord, Msg: "negative record count or offset delta"}
	}
	if h.Compression() == 0 && int64(h.RecordCount)*7 > size-BatchHeaderSize {
		return &Error{Code: CodeInvalidRecord, Msg: "record count larger than the batch can hold"}
	}
	if h.Compression() > 4 {
		return &Error{Code: CodeInvalidRecord, Msg: "unknown compression codec"}
	}
	return nil
}
