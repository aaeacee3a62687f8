package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spate-broker/spate/logstore"
)

// The broker's codecs for reading records inside compressed batches (ListOffsets by time and
// max timestamp need the record, not the batch; the produce path checks keys on compacted
// topics; the cleaner re-encodes batches and recompresses them with the batch's codec). The
// fetch path never decompresses.
//
// Decompression is a stream (logstore.DecompressReader) whose decoders are pooled and keep a
// bounded window, so what a batch claims to decompress to never sizes an allocation beyond
// the configured limit (logstore.MaxDecompressedBatchBytes): gzip and lz4 hold a fixed
// window, zstd frames declaring a window past maxZstdWindow are refused, and a snappy block
// (raw, or each chunk of Kafka's xerial framing) is decoded whole only when its claimed
// length is within what snappy can expand its size to (snappyMaxExpansion) and within the
// limit.
func init() {
	logstore.DecompressReader = decompressReader
	// The cleaner recompresses a batch it re-encodes with the batch's codec.
	compressors := map[int]kgo.Compressor{}
	for codec, cc := range map[int]kgo.CompressionCodec{1: kgo.GzipCompression(), 2: kgo.SnappyCompression(),
		3: kgo.Lz4Compression(), 4: kgo.ZstdCompression()} {
		if c, err := kgo.DefaultCompressor(cc); err == nil && c != nil {
			compressors[codec] = c
		}
	}
	logstore.Compress = func(codec int, src, dst []byte) ([]byte, error) {
		c := compressors[codec]
		if c == nil {
			return nil, fmt.Errorf("no compressor for codec %d", codec)
		}
		var buf bytes.Buffer
		out, used := c.Compress(&buf, src)
		if out == nil || int(used) != codec {
			return nil, fmt.Errorf("compress with codec %d failed", codec)
		}
		return append(dst, out...), nil
	}
}

const (
	// maxZstdWindow bounds the window a zstd frame may declare (the zstd format asks decoders
	// to support 8 MiB; Kafka producers' batches use at most that at their default levels).
	maxZstdWindow = 32 << 20
	// snappyMaxExpansion: a snappy block never decodes to more than this many times its
	// size plus a little (its densest element, a 3-byte copy, yields 64 bytes).
	snappyMaxExpansion = 22
)

var (
	errUnknownCodec   = errors.New("unknown compression codec")
	errSnappyTooLarge = errors.New("snappy block claims more than it can hold or than the limit")
	errXerialFraming  = errors.New("malformed xerial snappy framing")

	gzipReaders sync.Pool // *gzip.Reader
	lz4Readers  sync.Pool // *lz4.Reader
	zstdReaders sync.Pool // *zstd.Decoder
	snappyBufs  sync.Pool // *snappyReader
)

// decompressReader is logstore.DecompressReader: a stream of the plain records of a
// compressed records section. Close returns the decoder to its pool.
func decompressReader(codec int, src []byte) (io.ReadCloser, error) {
	switch codec {
	case 1:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			if zr != nil {
				gzipReaders.Put(zr)
			}
			return nil, err
		}
		return &pooledReader{Reader: zr, put: func() { gzipReaders.Put(zr) }}, nil
	case 2:
		sr, _ := snappyBufs.Get().(*snappyReader)
		if sr == nil {
			sr = new(snappyReader)
		}
		if err := sr.reset(src); err != nil {
			snappyBufs.Put(sr)
			return nil, err
		}
		return sr, nil
	case 3:
		lr, _ := lz4Readers.Get().(*lz4.Reader)
		if lr == nil {
			lr = lz4.NewReader(bytes.NewReader(src))
		} else {
			lr.Reset(bytes.NewReader(src))
		}
		return &pooledReader{Reader: lr, put: func() { lz4Readers.Put(lr) }}, nil
	case 4:
		zd, _ := zstdReaders.Get().(*zstd.Decoder)
		var err error
		if zd == nil {
			zd, err = zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxZstdWindow))
		} else {
			err = zd.Reset(bytes.NewReader(src))
		}
		if err != nil {
			if zd != nil {
				zd.Close()
			}
			return nil, err
		}
		return &pooledReader{Reader: zd, put: func() {
			zd.Reset(nil) // drops the reference to src
			zstdReaders.Put(zd)
		}}, nil
	}
	return nil, errUnknownCodec
}

// pooledReader returns its decoder to a pool on Close.
type pooledReader struct {
	io.Reader
	put func()
}

func (r *pooledReader) Close() error {
	if r.put != nil {
		r.put()
		r.put = nil
	}
	return nil
}

// xerialHeader starts snappy data in the framing of the xerial snappy-java library (Kafka's
// Java clients): 8 bytes of magic, a 4-byte version and a 4-byte compatible version, then
// chunks of a 4-byte big-endian length and a raw snappy block.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// snappyReader streams Kafka's snappy: one raw snappy block, or xerial-framed chunks decoded
// one at a time into a reused buffer.
type snappyReader struct {
	src    []byte // the chunks not decoded yet
	xerial bool
	buf    []byte // the decoded chunk
	pos    int    // read position in buf
}

func (r *snappyReader) reset(src []byte) error {
	r.src, r.buf, r.pos, r.xerial = src, r.buf[:0], 0, false
	if len(src) >= 16 && bytes.Equal(src[:8], xerialHeader) {
		r.src, r.xerial = src[16:], true
		return nil
	}
	r.src = nil
	return r.decode(src)
}

// decode decodes one raw snappy block into buf, refusing a claimed length the block cannot
// hold or past the configured limit before allocating it.
func (r *snappyReader) decode(block []byte) error {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return err
	}
	if n > snappyMaxExpansion*len(block)+64 || n > logstore.MaxDecompressedBatchBytes {
		return errSnappyTooLarge
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	out, err := s2.Decode(r.buf[:n], block)
	if err != nil {
		return err
	}
	r.buf, r.pos = out, 0
	return nil
}

func (r *snappyReader) Read(p []byte) (int, error) {
	for r.pos == len(r.buf) {
		if !r.xerial || len(r.src) == 0 {
			return 0, io.EOF
		}
		if len(r.src) < 4 {
			return 0, errXerialFraming
		}
		size := binary.BigEndian.Uint32(r.src)
		if uint64(size) > uint64(len(r.src)-4) {
			return 0, errXerialFraming
		}
		block := r.src[4 : 4+size]
		r.src = r.src[4+size:]
		if err := r.decode(block); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// Close returns the reader (and its buffer, when not oversized) to the pool.
func (r *snappyReader) Close() error {
	r.src = nil
	if cap(r.buf) > 4<<20 {
		r.buf = nil
	}
	snappyBufs.Put(r)
	return nil
}
