package logstore

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/spate-broker/spate/internal/memstat"
)

// gzipBytes gzips b.
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestDecompressStopsAtTheLimit: Decompress materializes up to MaxDecompressedBatchBytes and
// refuses a stream one byte longer, having allocated about the limit, not what the stream
// decompresses to.
func TestDecompressStopsAtTheLimit(t *testing.T) {
	useGzipCodecs(t)
	old := MaxDecompressedBatchBytes
	t.Cleanup(func() { MaxDecompressedBatchBytes = old })
	MaxDecompressedBatchBytes = 1 << 20

	plain := make([]byte, 1<<20)
	for i := range plain {
		plain[i] = byte(i * 7 / 5)
	}
	got, err := Decompress(1, gzipBytes(plain), []byte("prefix"))
	if err != nil || !bytes.Equal(got[:6], []byte("prefix")) || !bytes.Equal(got[6:], plain) {
		t.Fatalf("exactly at the limit: %d bytes, %v", len(got), err)
	}
	if _, err := Decompress(1, gzipBytes(append(plain, 1)), nil); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("one byte past the limit: %v", err)
	}
	bomb := gzipBytes(make([]byte, 24<<20)) // 24 MiB of zeros in ~24 KiB
	var derr error
	n := memstat.AllocatedBy(func() { _, derr = Decompress(1, bomb, nil) })
	if !errors.Is(derr, ErrDecompressedTooLarge) {
		t.Fatalf("24 MiB stream: %v", derr)
	}
	if n > 8<<20 {
		t.Fatalf("refusing a 24 MiB stream at a 1 MiB limit allocated %d bytes", n)
	}
	if _, err := Decompress(1, []byte{1, 2, 3}, nil); err == nil {
		t.Fatal("garbage decompressed")
	}
}

// TestCompactedKeyCheckStreamsCompressedBatches: the key check of a compacted log reads a
// compressed batch as a stream — a batch of 16 MiB of keyed records (gzip: ~16 KiB) is
// accepted, and one with a keyless record at its very end refused, each allocating a few MiB
// at most; malformed records inside the stream are refused.
func TestCompactedKeyCheckStreamsCompressedBatches(t *testing.T) {
	useGzipCodecs(t)
	l, _ := compactTestLog(t, nil)
	big := make([]byte, 1<<20)
	records := make([]Record, 16)
	for i := range records {
		records[i] = Record{Key: []byte{byte(i)}, Value: big, Headers: []RecordHeader{{Key: "h", Value: []byte("v")}}}
	}
	keyed := gzipBatch(AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: records}))
	records[15].Key = nil
	keyless := gzipBatch(AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: records}))
	records = nil
	var err error
	if n := memstat.AllocatedBy(func() { err = l.checkCompactedKeys(keyed) }); err != nil || n > 4<<20 {
		t.Fatalf("keyed: %v, allocated %d bytes", err, n)
	}
	if n := memstat.AllocatedBy(func() { err = l.checkCompactedKeys(keyless) }); CodeOf(err) != CodeInvalidRecord || n > 4<<20 {
		t.Fatalf("keyless last record: %v, allocated %d bytes", err, n)
	}

	// Malformed records inside a valid gzip stream: a record length past the stream, a key
	// length past the record, a null header key, a record count above the records present.
	small := AppendBatch(nil, BatchSpec{ProducerID: -1, BaseSequence: -1, Records: []Record{{Key: []byte("k"), Value: []byte("value")}}})
	plain := small[BatchHeaderSize:]
	withRecords := func(recs []byte, count int32) []byte {
		b := append(append([]byte(nil), small[:BatchHeaderSize]...), gzipBytes(recs)...)
		b[offAttributes+1] |= 1
		binary.BigEndian.PutUint32(b[offRecordCount:], uint32(count))
		return finishBatch(b, 0)
	}
	for name, recs := range map[string][]byte{
		"length past the stream":     append([]byte{0x7e}, plain[1:]...),
		"key length past the record": func() []byte { r := bytes.Clone(plain); r[4] = 0x7e; return r }(),
		"null header key":            {0x12, 0, 0, 0, 2, 'k', 0, 2, 1, 0},
	} {
		if err := l.checkCompactedKeys(withRecords(recs, 1)); CodeOf(err) != CodeCorruptMessage {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := l.checkCompactedKeys(withRecords(plain, 2)); CodeOf(err) != CodeCorruptMessage {
		t.Errorf("count above the records: %v", err)
	}
	if err := l.checkCompactedKeys(withRecords(plain, 1)); err != nil {
		t.Errorf("the same record, well formed: %v", err)
	}
}

// TestScanCompressedAgreesWithDecodeRecord: for random batches the streaming decoder sees the
// offsets, timestamps and null keys the in-memory decoder sees.
func TestScanCompressedAgreesWithDecodeRecord(t *testing.T) {
	useGzipCodecs(t)
	rng := rand.New(rand.NewPCG(7, 11))
	for round := 0; round < 50; round++ {
		recs := make([]Record, 1+rng.IntN(40))
		for i := range recs {
			r := Record{TimestampDelta: rng.Int64N(1 << 40), Value: make([]byte, rng.IntN(3000))}
			if rng.IntN(3) > 0 {
				r.Key = make([]byte, rng.IntN(20))
			}
			for h := rng.IntN(3); h > 0; h-- {
				r.Headers = append(r.Headers, RecordHeader{Key: "k", Value: make([]byte, rng.IntN(10))})
			}
			recs[i] = r
		}
		batch := AppendBatch(nil, BatchSpec{BaseTimestamp: 1000, ProducerID: -1, BaseSequence: -1, Records: recs})
		var h BatchHeader
		ParseBatchHeader(batch, &h)
		var want []recordHead
		for rest, i := batch[BatchHeaderSize:], 0; i < len(recs); i++ {
			var r cleanerRecord
			var ok bool
			if rest, ok = decodeRecord(rest, &r); !ok {
				t.Fatalf("round %d: decodeRecord failed", round)
			}
			want = append(want, recordHead{offsetDelta: r.offsetDelta, tsDelta: r.tsDelta, keyNull: r.keyNull})
		}
		var got []recordHead
		if !scanCompressed(1, gzipBytes(batch[BatchHeaderSize:]), h.RecordCount, func(r *recordHead) bool {
			got = append(got, *r)
			return true
		}) {
			t.Fatalf("round %d: scan failed", round)
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d records, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("round %d record %d: %+v, want %+v", round, i, got[i], want[i])
			}
		}
	}
}
