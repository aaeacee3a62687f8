package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/spate-broker/spate/internal/memstat"
	"github.com/spate-broker/spate/logstore"
)

// TestCodecsDecompressEveryClientsFormat: what franz-go's compressors write for each codec,
// snappy in the xerial framing of Kafka's Java clients and as a raw block, decompresses to
// the original bytes, with decoders reused from their pools across rounds.
func TestCodecsDecompressEveryClientsFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 3; round++ {
		plain := make([]byte, 100+rng.IntN(300<<10))
		for i := range plain {
			plain[i] = "abcdefgh"[rng.IntN(8)] // compressible, not trivially
		}
		for codec := 1; codec <= 4; codec++ {
			packed, err := logstore.Compress(codec, plain, nil)
			if err != nil {
				t.Fatalf("codec %d: compress: %v", codec, err)
			}
			got, err := logstore.Decompress(codec, packed, nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("round %d codec %d: %d bytes back (want %d), %v", round, codec, len(got), len(plain), err)
			}
		}
		for name, packed := range map[string][]byte{"xerial": xerial.Encode(nil, plain), "raw snappy": s2.EncodeSnappy(nil, plain)} {
			got, err := logstore.Decompress(2, packed, nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("round %d %s: %d bytes back (want %d), %v", round, name, len(got), len(plain), err)
			}
		}
	}
	if _, err := logstore.Decompress(5, []byte{1}, nil); err == nil {
		t.Fatal("codec 5 decompressed")
	}
}

// TestCodecsRefuseClaimsBeforeAllocating: a 9-byte snappy block claiming 1 GiB, an xerial
// chunk doing the same, and a zstd frame declaring a 64 MiB window are refused without
// allocating what they claim.
func TestCodecsRefuseClaimsBeforeAllocating(t *testing.T) {
	claim := binary.AppendUvarint(nil, 1<<30)
	claim = append(claim, 0, 0, 0, 0) // not even valid snappy after the length
	xer := append(append([]byte(nil), xerialHeader...), 0, 0, 0, 1, 0, 0, 0, 1)
	xer = binary.BigEndian.AppendUint32(xer, uint32(len(claim)))
	xer = append(xer, claim...)
	var enc bytes.Buffer
	zw, err := zstd.NewWriter(&enc, zstd.WithWindowSize(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(make([]byte, 100<<20))
	zw.Close()
	for name, tc := range map[string]struct {
		codec int
		data  []byte
	}{"raw snappy": {2, claim}, "xerial snappy": {2, xer}, "zstd 64 MiB window": {4, enc.Bytes()}} {
		var err error
		n := memstat.AllocatedBy(func() { _, err = logstore.Decompress(tc.codec, tc.data, nil) })
		if err == nil || n > 4<<20 {
			t.Errorf("%s: err %v, allocated %d bytes", name, err, n)
		}
	}
	// Past the configured limit (64 MiB by default), a snappy block that could really hold
	// that much is refused too.
	big := s2.EncodeSnappy(nil, make([]byte, 65<<20))
	if _, err := logstore.Decompress(2, big, nil); err == nil {
		t.Error("a raw snappy block past the limit was decompressed")
	}
}

// gzipRecordsBatch is batch (from logstore.AppendBatch) with its records section gzipped.
func gzipRecordsBatch(batch []byte) []byte {
	var buf bytes.Buffer
	w := kgzip.NewWriter(&buf)
	w.Write(batch[logstore.BatchHeaderSize:])
	w.Close()
	out := append(append([]byte(nil), batch[:logstore.BatchHeaderSize]...), buf.Bytes()...)
	out[22] |= 1                                                 // attributes (bytes 21-22): gzip
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))     // batch length
	binary.BigEndian.PutUint32(out[17:], logstore.BatchCRC(out)) // CRC-32C from the attributes
	return out
}

// TestProduceDecompressionBombToCompactedTopic: a produce to a compacted topic whose one
// gzip batch (~65 KiB on the wire) decompresses to 64 MiB of records is checked as a
// stream: accepted when every record has a key, refused with INVALID_RECORD when the last
// one has none, and either way the process allocates a few MiB, not the 64 MiB the batch
// expands to (the check used to decompress the batch whole). The accepted batch is stored as it came (fetched back byte for byte).
func TestProduceDecompressionBombToCompactedTopic(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	createTopic(t, cl, "bomb", 1, map[string]string{"cleanup.policy": "compact"})
	big := make([]byte, 1<<20)
	recs := make([]logstore.Record, 64)
	for i := range recs {
		recs[i] = logstore.Record{Key: []byte{byte(i)}, Value: big}
	}
	build := func() []byte {
		return gzipRecordsBatch(logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: time.Now().UnixMilli(),
			ProducerID: -1, BaseSequence: -1, PartitionLeaderEpoch: -1, Records: recs}))
	}
	keyed := build()
	recs[63].Key = nil
	keyless := build()
	recs, big = nil, nil
	if len(keyed) > 1<<20 {
		t.Fatalf("the bomb is %d bytes: over max.message.bytes", len(keyed))
	}
	produce := func(batch []byte) (int16, int64) { return produceRaw(t, cl, "bomb", batch) }
	produce(keyed) // connections and metadata warmed up before measuring
	var code int16
	var base int64
	if n := memstat.AllocatedBy(func() { code, base = produce(keyed) }); code != 0 || base != 64 || n > 24<<20 {
		t.Fatalf("keyed bomb: code %d base %d, the process allocated %d bytes", code, base, n)
	}
	if n := memstat.AllocatedBy(func() { code, _ = produce(keyless) }); code != errInvalidRecord || n > 24<<20 {
		t.Fatalf("keyless bomb: code %d (want %d), the process allocated %d bytes", code, errInvalidRecord, n)
	}
	if end := endOffset(t, cl, "bomb"); end != 128 {
		t.Fatalf("log end %d, want 128 (two accepted batches, the refused one not written)", end)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 100, 4<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "bomb"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes = 64, 4<<20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	fcl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.MaxVersions(kversion.V2_8_0())) // Fetch v12: by topic name
	if err != nil {
		t.Fatal(err)
	}
	defer fcl.Close()
	resp, err := req.RequestWith(context.Background(), fcl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("fetch: %v %+v", err, resp)
	}
	got := resp.Topics[0].Partitions[0].RecordBatches
	if len(got) != len(keyed) || !bytes.Equal(got[logstore.BatchHeaderSize:], keyed[logstore.BatchHeaderSize:]) ||
		binary.BigEndian.Uint64(got) != 64 {
		t.Fatalf("fetched %d bytes at base %d, want the %d-byte batch as produced", len(got), binary.BigEndian.Uint64(got), len(keyed))
	}
}

// FuzzDecompress: any bytes under any codec number decompress, whole or as a stream, or fail
// without panicking, and never past the configured limit.
func FuzzDecompress(f *testing.F) {
	plain := []byte("the broker partition offset record batch leader replica fetch produce")
	for codec := 1; codec <= 4; codec++ {
		packed, _ := logstore.Compress(codec, plain, nil)
		f.Add(uint8(codec), packed)
	}
	f.Add(uint8(2), xerial.Encode(nil, plain))
	f.Add(uint8(2), append(binary.AppendUvarint(nil, 1<<30), 0))
	f.Fuzz(func(t *testing.T, codec uint8, data []byte) {
		out, err := logstore.Decompress(int(codec%6), data, nil)
		if err == nil && len(out) > logstore.MaxDecompressedBatchBytes {
			t.Fatalf("%d bytes out, past the limit", len(out))
		}
		r, err := decompressReader(int(codec%6), data)
		if err != nil {
			return
		}
		var buf [512]byte
		for total := 0; total <= logstore.MaxDecompressedBatchBytes; {
			n, err := r.Read(buf[:])
			total += n
			if err != nil {
				break
			}
		}
		r.Close()
	})
}
