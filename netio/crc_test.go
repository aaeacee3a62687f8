package netio

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
	"time"
)

// TestCRCCombine: combining the CRCs of two parts gives the CRC of the whole, for parts of
// every length from empty to several chunks.
func TestCRCCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*crcChunk+77)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, cut := range []int{0, 1, 5, 4096, crcChunk - 1, crcChunk, crcChunk + 13, 2 * crcChunk, len(data) - 1, len(data)} {
		for _, end := range []int{cut, cut + 1, cut + 1000, len(data)} {
			if end > len(data) {
				continue
			}
			a, b := data[:cut], data[cut:end]
			got := crcCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), shiftOp(int64(len(b))))
			if want := crc32.Checksum(data[:end], castagnoli); got != want {
				t.Fatalf("combine at %d of %d: %08x, want %08x", cut, end, got, want)
			}
		}
	}
	if chunkShift != shiftOp(crcChunk) {
		t.Fatal("chunkShift is not shiftOp(crcChunk)")
	}
}

// TestRequestCRC32C: a stretch of a large frame is summed from the chunk checksums taken as
// it arrived, for stretches inside one chunk, across many, at the frame's ends, past the
// chunks summed so far; data outside the frame is summed directly.
func TestRequestCRC32C(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var b bigFrame
	b.buf = make([]byte, 4, 4+5*crcChunk+1234)
	for len(b.buf) < cap(b.buf) { // arrives in uneven reads, summed after each
		n := min(cap(b.buf)-len(b.buf), 1+rng.IntN(100<<10))
		for range n {
			b.buf = append(b.buf, byte(rng.Uint32()))
		}
		b.sumChunks()
	}
	if len(b.crcs) != 5 {
		t.Fatalf("%d chunks summed, want 5", len(b.crcs))
	}
	payload := b.buf[4:]
	check := func(r *Request, from, to int) {
		t.Helper()
		if got, want := r.CRC32C(payload[from:to]), crc32.Checksum(payload[from:to], castagnoli); got != want {
			t.Fatalf("[%d, %d) of %d: %08x, want %08x", from, to, len(payload), got, want)
		}
	}
	full := &Request{Frame: payload, chunks: b.crcs}
	partial := &Request{Frame: payload, chunks: b.crcs[:2]} // as if the rest were not summed
	for range 500 {
		from := rng.IntN(len(payload))
		to := from + rng.IntN(len(payload)-from+1)
		check(full, from, to)
		check(partial, from, to)
	}
	for _, r := range []*Request{full, partial} {
		check(r, 0, len(payload))
		check(r, 21, len(payload))
		check(r, crcChunk, 3*crcChunk)
		check(r, crcChunk-1, crcChunk+1)
		check(r, 0, 0)
	}
	other := append([]byte(nil), payload[100:5000]...)
	if got := full.CRC32C(other); got != crc32.Checksum(other, castagnoli) {
		t.Fatal("a slice outside the frame")
	}
	if got := (&Request{Frame: payload}).CRC32C(payload[10:70000]); got != crc32.Checksum(payload[10:70000], castagnoli) {
		t.Fatal("a frame without chunk checksums")
	}
}

// TestLargeFrameCRCThroughServer: a handler's CRC32C of a stretch of a large frame that
// arrived over a socket in pieces matches the CRC of the bytes sent.
func TestLargeFrameCRCThroughServer(t *testing.T) {
	s := startServer(t, Config{}, HandlerFunc(func(c *Conn, req *Request) {
		var out [8]byte
		binary.BigEndian.PutUint32(out[:], req.CRC32C(req.Frame[21:len(req.Frame)-5]))
		binary.BigEndian.PutUint32(out[4:], uint32(len(req.chunks)))
		c.Reply(req.Seq, Response{Parts: []Part{{Bytes: out[:]}}})
	}))
	c := dial(t, s)
	payload := bigPayload(3<<20+999, 9)
	stream := frame(payload)
	for off := 0; off < len(stream); off += 100 << 10 {
		if _, err := c.Write(stream[off:min(off+100<<10, len(stream))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := readFrame(t, c)
	want := crc32.Checksum(payload[21:len(payload)-5], castagnoli)
	if len(got) != 8 || binary.BigEndian.Uint32(got) != want || binary.BigEndian.Uint32(got[4:]) != uint32(len(payload)/crcChunk) {
		t.Fatalf("answer %x, want crc %08x over %d chunks", got, want, len(payload)/crcChunk)
	}
}
