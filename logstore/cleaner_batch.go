package logstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
)

// Record-level work of log compaction: decoding the records of a batch, deciding which
// survive, and re-encoding a batch that keeps only some of them (Kafka's
// MemoryRecords.filterTo). See cleaner.go for the rules.

// AttrDeleteHorizon is the batch attribute bit (6) saying that BaseTimestamp holds the batch's
// delete horizon (KIP-534): the time after which its tombstones may be removed. Record
// timestamp deltas are then relative to the horizon, so record timestamps are unchanged.
const AttrDeleteHorizon = 0x40

// Compress, when set, compresses a plain records section with a codec (1 gzip, 2 snappy, 3 lz4,
// 4 zstd), appending to dst. The cleaner uses it to recompress a batch it re-encodes with the
// batch's codec; without it (or when it fails) re-encoded batches are stored uncompressed.
var Compress func(codec int, src, dst []byte) ([]byte, error)

// cleanerRecord is one decoded record: views into the plain records section.
type cleanerRecord struct {
	attrs       byte
	offsetDelta int64
	tsDelta     int64
	key, value  []byte
	keyNull     bool
	valueNull   bool
	tail        []byte // key length through the last header: copied as is when re-encoding
}

// decodeRecord decodes the record at the start of b (see records.go for the layout) and
// returns the bytes after it. ok is false on malformed input.
func decodeRecord(b []byte, r *cleanerRecord) (rest []byte, ok bool) {
	length, n := binary.Varint(b)
	if n <= 0 || length < 1 || int64(len(b)-n) < length {
		return nil, false
	}
	body, rest := b[n:n+int(length)], b[n+int(length):]
	r.attrs = body[0]
	body = body[1:]
	if r.tsDelta, n = binary.Varint(body); n <= 0 {
		return nil, false
	}
	body = body[n:]
	if r.offsetDelta, n = binary.Varint(body); n <= 0 || r.offsetDelta < 0 || r.offsetDelta > math.MaxInt32 {
		return nil, false
	}
	r.tail = body[n:]
	body = r.tail
	if r.key, r.keyNull, body, ok = decodeVarBytes(body); !ok {
		return nil, false
	}
	if r.value, r.valueNull, body, ok = decodeVarBytes(body); !ok {
		return nil, false
	}
	headers, n := binary.Varint(body)
	if n <= 0 || headers < 0 || headers > int64(len(body)) {
		return nil, false
	}
	body = body[n:]
	for ; headers > 0; headers-- {
		var null bool
		if _, null, body, ok = decodeVarBytes(body); !ok || null {
			return nil, false // a header key is never null
		}
		if _, _, body, ok = decodeVarBytes(body); !ok {
			return nil, false
		}
	}
	return rest, len(body) == 0
}

// decodeVarBytes decodes a varint length (-1 = null) and that many bytes.
func decodeVarBytes(b []byte) (v []byte, null bool, rest []byte, ok bool) {
	n, k := binary.Varint(b)
	switch {
	case k <= 0 || n < -1 || n > int64(len(b)-k):
		return nil, false, nil, false
	case n == -1:
		return nil, true, b[k:], true
	}
	return b[k : k+int(n)], false, b[k+int(n):], true
}

// plainRecords returns a batch's records section uncompressed, decompressing into scratch.
// ok is false when the batch cannot be decompressed (no codecs, bad data, or more than
// MaxDecompressedBatchBytes).
func plainRecords(batch []byte, h *BatchHeader, scratch []byte) (recs, newScratch []byte, ok bool) {
	recs = batch[BatchHeaderSize:]
	c := h.Compression()
	if c == 0 {
		return recs, scratch, true
	}
	if !CanDecompress() {
		return nil, scratch, false
	}
	plain, err := Decompress(c, recs, scratch[:0])
	if err != nil {
		return nil, scratch, false
	}
	return plain, plain, true
}

// checkCompactedKeys refuses records with a null key, as Kafka refuses them on a compacted
// topic (LogValidator: INVALID_RECORD, "Compacted topic cannot accept message without key").
// Control batches carry no user records and are not checked. A compressed batch is streamed
// through the codecs (scanCompressed: memory does not depend on what it decompresses to);
// without codecs it cannot be looked into and is let through (the broker always sets them).
// The batches passed CheckBatch.
//
// AppendAsLeader calls it when the log's config is Compacted.
func (l *Log) checkCompactedKeys(records []byte) error {
	var h BatchHeader
	var r cleanerRecord
	for rest, i := records, 0; len(rest) >= BatchHeaderSize; rest, i = rest[h.Size():], i+1 {
		ParseBatchHeader(rest, &h)
		if h.Size() < BatchHeaderSize || h.Size() > len(rest) {
			break // not a whole batch: CheckBatch refuses it
		}
		if h.IsControl() {
			continue
		}
		keyless := int32(-1)
		if c := h.Compression(); c != 0 {
			if !CanDecompress() {
				continue
			}
			j := int32(0)
			ok := scanCompressed(c, rest[BatchHeaderSize:h.Size()], h.RecordCount, func(r *recordHead) bool {
				if r.keyNull {
					keyless = j
					return false
				}
				j++
				return true
			})
			if !ok {
				return &Error{Code: CodeCorruptMessage, Msg: fmt.Sprintf("batch %d: records cannot be decompressed or are malformed (record %d)", i, j)}
			}
		} else {
			recs := rest[BatchHeaderSize:h.Size()]
			for j := int32(0); j < h.RecordCount; j++ {
				var ok bool
				if recs, ok = decodeRecord(recs, &r); !ok {
					return &Error{Code: CodeInvalidRecord, Msg: fmt.Sprintf("batch %d record %d is malformed", i, j)}
				}
				if r.keyNull {
					keyless = j
					break
				}
			}
		}
		if keyless >= 0 {
			return &Error{Code: CodeInvalidRecord, Msg: fmt.Sprintf(
				"Compacted topic cannot accept message without key in topic partition %s (batch %d record %d)", filepath.Base(l.dir), i, keyless)}
		}
	}
	return nil
}

// putBatchHeader encodes h (without the CRC) into the first BatchHeaderSize bytes of b.
func putBatchHeader(b []byte, h *BatchHeader) {
	_ = b[BatchHeaderSize-1]
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(h.BatchLength))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = 2
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(h.RecordCount))
}

// finishBatch sets the length and CRC of the batch that starts at dst[start:].
func finishBatch(dst []byte, start int) []byte {
	b := dst[start:]
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)-LogOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], BatchCRC(b))
	return dst
}

// appendEmptyBatch appends a batch with h's offsets, producer fields and max timestamp but no
// records (Kafka's writeEmptyHeader): it keeps a producer's last sequence, or a segment's
// offset range and time, when every record of the batch was removed.
func appendEmptyBatch(dst []byte, h *BatchHeader) []byte {
	e := *h
	e.Attributes &= AttrLogAppendTime | AttrTransactional | AttrControl
	e.BaseTimestamp = h.MaxTimestamp
	e.RecordCount = 0
	start := len(dst)
	var hdr [BatchHeaderSize]byte
	putBatchHeader(hdr[:], &e)
	return finishBatch(append(dst, hdr[:]...), start)
}

// incrementSequence adds inc to a producer sequence, wrapping past math.MaxInt32 to 0 as
// Kafka does (DefaultRecordBatch.incrementSequence).
func incrementSequence(seq int32, inc int64) int32 {
	s := int64(seq) + inc
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

// appendFilteredBatch appends a batch holding only the records of h's batch listed in kept
// (indexes into recs, in order):
//
//   - BaseOffset is the first kept record's offset and offset deltas are relative to it;
//     LastOffsetDelta still reaches the original batch's last offset (Kafka keeps the last
//     offset so that the producer's last sequence survives compaction).
//   - BaseSequence moves with BaseOffset, so every record keeps its sequence number; producer
//     id and epoch, partition leader epoch and the transactional bit are kept.
//   - Record timestamps are kept: BaseTimestamp is the first kept record's timestamp (Kafka's
//     MemoryRecordsBuilder), or horizon when horizon >= 0 (then AttrDeleteHorizon is set);
//     MaxTimestamp is the largest kept timestamp (the log append time for LogAppendTime).
//   - Key, value and headers of each record are copied as they are.
//   - The records are recompressed with the batch's codec through Compress, or stored
//     uncompressed when it is not set or fails.
func appendFilteredBatch(dst []byte, h *BatchHeader, recs []cleanerRecord, kept []int, ts []int64, horizon int64, scratch []byte) ([]byte, []byte) {
	logAppend := h.Attributes&AttrLogAppendTime != 0
	first := recs[kept[0]]
	newBase := h.BaseOffset + first.offsetDelta
	baseTs, maxTs := ts[kept[0]], int64(-1)
	if horizon >= 0 {
		baseTs = horizon
	}
	plain := scratch[:0]
	for _, i := range kept {
		r := &recs[i]
		var body [1 + 2*binary.MaxVarintLen64]byte
		b := append(body[:0], r.attrs)
		b = binary.AppendVarint(b, ts[i]-baseTs)
		b = binary.AppendVarint(b, h.BaseOffset+r.offsetDelta-newBase)
		plain = binary.AppendVarint(plain, int64(len(b)+len(r.tail)))
		plain = append(append(plain, b...), r.tail...)
		maxTs = max(maxTs, ts[i])
	}
	if logAppend {
		maxTs = h.MaxTimestamp
	}
	out := *h
	out.BaseOffset = newBase
	out.LastOffsetDelta = int32(h.LastOffset() - newBase)
	out.BaseTimestamp, out.MaxTimestamp = baseTs, maxTs
	out.RecordCount = int32(len(kept))
	if h.ProducerID >= 0 && h.BaseSequence >= 0 {
		out.BaseSequence = incrementSequence(h.BaseSequence, newBase-h.BaseOffset)
	}
	out.Attributes &^= AttrCompressionMask | AttrDeleteHorizon
	if horizon >= 0 {
		out.Attributes |= AttrDeleteHorizon
	}
	start := len(dst)
	var hdr [BatchHeaderSize]byte
	dst = append(dst, hdr[:]...)
	codec := h.Compression()
	if codec != 0 && Compress != nil {
		if c, err := Compress(codec, plain, dst); err == nil {
			out.Attributes |= int16(codec)
			putBatchHeader(c[start:], &out)
			return finishBatch(c, start), plain
		}
	}
	putBatchHeader(dst[start:], &out)
	return finishBatch(append(dst, plain...), start), plain
}
