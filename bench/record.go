package bench

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"
)

// A bench record's value starts with a fixed header; the rest is payload. All integers are
// big-endian (as Kafka's own).
//
//	offset  size  field
//	------  ----  ------------------------------------------------------------------
//	     0     2  magic 0x53 0x42 ("SB")
//	     2     1  format version (1)
//	     3     1  flags (0, reserved)
//	     4     4  run id: random per run; records of other runs are "foreign"
//	     8     4  producer id: 0 … producers−1 within the run
//	    12     8  sequence: 0, 1, 2 … per producer, in the order the producer sent them
//	    20     8  intended send time, Unix nanoseconds (see the package doc)
//	    28     4  CRC-32C (Castagnoli) of key ‖ value[0:28] ‖ value[32:]
//	    32     …  payload (random or text bytes)
//
// The checksum covers the key and every other byte of the value, so a flipped bit anywhere
// but in the magic and version bytes is reported as corruption, never as a different record
// (flipped magic or version bytes make a record foreign, and then missing).
const (
	// HeaderSize is the size of the bench header, and so the smallest record value.
	HeaderSize = 32

	recordMagic0  = 'S'
	recordMagic1  = 'B'
	recordVersion = 1
	crcOffset     = 28
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// RecordHeader is the decoded header of a bench record.
type RecordHeader struct {
	RunID    uint32
	Producer uint32
	Seq      uint64
	Intended int64 // Unix nanoseconds
}

// IntendedTime returns the header's intended send time.
func (h RecordHeader) IntendedTime() time.Time { return time.Unix(0, h.Intended) }

// Errors DecodeRecord returns.
var (
	// ErrForeign: the value is not a bench record of this format (no magic, too short, or
	// another version). Corruption of the first three bytes also lands here.
	ErrForeign = errors.New("not a bench record")
	// ErrCorrupt: the header is a bench header but the checksum does not match.
	ErrCorrupt = errors.New("bench record checksum mismatch")
)

// FillRecord writes h into value[:HeaderSize] and the checksum of key and value; the payload
// (value[HeaderSize:]) must already be in place. value must be at least HeaderSize long.
func FillRecord(value, key []byte, h RecordHeader) {
	_ = value[HeaderSize-1]
	value[0], value[1], value[2], value[3] = recordMagic0, recordMagic1, recordVersion, 0
	binary.BigEndian.PutUint32(value[4:], h.RunID)
	binary.BigEndian.PutUint32(value[8:], h.Producer)
	binary.BigEndian.PutUint64(value[12:], h.Seq)
	binary.BigEndian.PutUint64(value[20:], uint64(h.Intended))
	binary.BigEndian.PutUint32(value[crcOffset:], recordCRC(key, value))
}

// AppendRecord appends a bench record value with header h and the given payload to dst.
func AppendRecord(dst, key []byte, h RecordHeader, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	dst = append(dst, payload...)
	FillRecord(dst[start:], key, h)
	return dst
}

// DecodeRecord checks a record's value (and key) and returns its header. The error is
// ErrForeign or ErrCorrupt.
func DecodeRecord(key, value []byte) (RecordHeader, error) {
	h, ok := peekHeader(value)
	if !ok {
		return RecordHeader{}, ErrForeign
	}
	if binary.BigEndian.Uint32(value[crcOffset:]) != recordCRC(key, value) {
		return h, ErrCorrupt
	}
	return h, nil
}

// peekHeader decodes the header without checking the checksum (the producer's own records).
func peekHeader(value []byte) (RecordHeader, bool) {
	if len(value) < HeaderSize || value[0] != recordMagic0 || value[1] != recordMagic1 || value[2] != recordVersion {
		return RecordHeader{}, false
	}
	return RecordHeader{
		RunID:    binary.BigEndian.Uint32(value[4:]),
		Producer: binary.BigEndian.Uint32(value[8:]),
		Seq:      binary.BigEndian.Uint64(value[12:]),
		Intended: int64(binary.BigEndian.Uint64(value[20:])),
	}, true
}

func recordCRC(key, value []byte) uint32 {
	c := crc32.Update(0, castagnoli, key)
	c = crc32.Update(c, castagnoli, value[:crcOffset])
	return crc32.Update(c, castagnoli, value[HeaderSize:])
}
