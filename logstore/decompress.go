package logstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"sync"
)

// Reading inside compressed batches. A compressed batch is at most max.message.bytes on the
// wire, but its records section may claim to decompress to any size (a "decompression bomb":
// a 1 MiB gzip stream can expand to 1 GiB, a 9-byte snappy block can claim 1 GiB). logstore
// therefore never decompresses a batch whole without a bound:
//
//   - scans that only need each record's head (offset, timestamp, whether the key is null:
//     the produce path's key check on compacted topics, ListOffsets by time) stream the
//     records through a DecompressReader and skip their bodies, in memory that does not
//     depend on the decompressed size;
//   - Decompress, which materializes the plain records (the cleaner re-encoding a batch, the
//     coordinators loading their internal topics), refuses output past
//     MaxDecompressedBatchBytes.

// DecompressReader, when set, returns a stream of the plain records of a compressed records
// section (codec 1 gzip, 2 snappy, 3 lz4, 4 zstd). The broker sets it to its codecs, whose
// decoders keep a bounded window; logstore itself has no codecs. Close returns the decoder to
// its pool: the reader must not be used after it. src must stay unchanged until then.
var DecompressReader func(codec int, src []byte) (io.ReadCloser, error)

// MaxDecompressedBatchBytes bounds what Decompress produces for one batch (the broker sets it
// from its configuration). A batch past it is treated as one that cannot be decompressed: the
// cleaner keeps it as it is; a coordinator refuses to load it.
var MaxDecompressedBatchBytes = 64 << 20

// ErrDecompressedTooLarge: a batch decompresses to more than MaxDecompressedBatchBytes.
var ErrDecompressedTooLarge = errors.New("logstore: batch decompresses past the configured limit")

// CanDecompress reports whether compressed batches can be looked into (a DecompressReader is
// set).
func CanDecompress() bool { return DecompressReader != nil }

// Decompress appends the plain records of a compressed records section to dst. It fails with
// ErrDecompressedTooLarge when they would exceed MaxDecompressedBatchBytes, having allocated
// no more than that; dst grows as the stream is read, never by a length the data claims.
func Decompress(codec int, src, dst []byte) ([]byte, error) {
	if DecompressReader == nil {
		return nil, errors.New("logstore: no codecs")
	}
	r, err := DecompressReader(codec, src)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	limit := MaxDecompressedBatchBytes
	start := len(dst)
	for {
		if len(dst)-start >= limit {
			// Full at the limit: one more byte means too large.
			var one [1]byte
			if n, _ := io.ReadFull(r, one[:]); n > 0 {
				return nil, ErrDecompressedTooLarge
			}
			return dst, nil
		}
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(max(len(dst)-start, 32<<10), limit-(len(dst)-start)))
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), start+limit)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// recordHead is what a streaming scan decodes of a record.
type recordHead struct {
	offsetDelta int64
	tsDelta     int64
	keyNull     bool
}

var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// errRecordOverrun: a field runs past its record's length.
var errRecordOverrun = errors.New("logstore: record field past the record's length")

// recordStream decodes records from a decompressing stream without keeping them: each field
// read is counted against the record's length, and keys, values and headers are skipped.
type recordStream struct {
	r    *bufio.Reader
	left int64 // bytes of the current record not read yet
}

// ReadByte reads one byte of the current record (io.ByteReader, for binary.ReadVarint).
func (s *recordStream) ReadByte() (byte, error) {
	if s.left <= 0 {
		return 0, errRecordOverrun
	}
	b, err := s.r.ReadByte()
	if err == nil {
		s.left--
	}
	return b, err
}

// skip discards n bytes of the current record.
func (s *recordStream) skip(n int64) bool {
	if n < 0 || n > s.left {
		return false
	}
	for n > 0 {
		d, err := s.r.Discard(int(min(n, 1<<30)))
		n -= int64(d)
		s.left -= int64(d)
		if err != nil {
			return false
		}
	}
	return true
}

// varBytes skips a varint length (-1 = null) and that many bytes.
func (s *recordStream) varBytes() (null, ok bool) {
	n, err := binary.ReadVarint(s)
	if err != nil || n < -1 {
		return false, false
	}
	if n == -1 {
		return true, true
	}
	return false, s.skip(n)
}

// next decodes the next record's head and checks the rest of its layout (see records.go).
func (s *recordStream) next(h *recordHead) bool {
	length, err := binary.ReadVarint(s.r)
	if err != nil || length < 1 {
		return false
	}
	s.left = length
	if _, err := s.ReadByte(); err != nil { // attributes
		return false
	}
	if h.tsDelta, err = binary.ReadVarint(s); err != nil {
		return false
	}
	if h.offsetDelta, err = binary.ReadVarint(s); err != nil || h.offsetDelta < 0 || h.offsetDelta > math.MaxInt32 {
		return false
	}
	var ok bool
	if h.keyNull, ok = s.varBytes(); !ok {
		return false
	}
	if _, ok = s.varBytes(); !ok { // value
		return false
	}
	headers, err := binary.ReadVarint(s)
	if err != nil || headers < 0 || headers > s.left {
		return false
	}
	for ; headers > 0; headers-- {
		if null, ok := s.varBytes(); !ok || null { // a header key is never null
			return false
		}
		if _, ok := s.varBytes(); !ok {
			return false
		}
	}
	return s.left == 0
}

// scanCompressed calls fn with the head of each of the count records of a compressed records
// section, streaming them through DecompressReader, until fn returns false. It returns false
// when the section cannot be decompressed or a record is malformed. Memory use does not
// depend on the decompressed size.
func scanCompressed(codec int, src []byte, count int32, fn func(*recordHead) bool) bool {
	if DecompressReader == nil {
		return false
	}
	rc, err := DecompressReader(codec, src)
	if err != nil {
		return false
	}
	defer rc.Close()
	br := bufReaders.Get().(*bufio.Reader)
	br.Reset(rc)
	defer func() {
		br.Reset(nil)
		bufReaders.Put(br)
	}()
	s := recordStream{r: br}
	var h recordHead
	for i := int32(0); i < count; i++ {
		if !s.next(&h) {
			return false
		}
		if !fn(&h) {
			return true
		}
	}
	return true
}
