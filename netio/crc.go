package netio

import (
	"hash/crc32"
	"unsafe"
)

// Checksums of large frames. A CRC over a large frame's bytes long after they arrived reads
// them back from memory: on the development machine CRC-32C runs at 16 GB/s over cached
// bytes and under 4 GB/s over a frame of megabytes. So as a large frame is read (fillBig),
// netio computes the CRC-32C of each crcChunk bytes of its payload right after the read that
// completed them, while they are still in the cache, and Request.CRC32C answers for any
// stretch of the frame by combining those checksums with the CRCs of the partial chunks at
// its ends. The handler decides what to checksum; netio knows only bytes.

// crcChunk is the size of the stretches of a large frame's payload checksummed as they
// arrive. maxHotRead bounds one read from the socket, so that the bytes are still cached
// when their chunks are summed.
const (
	crcChunk   = 64 << 10
	maxHotRead = 256 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcPoly is the Castagnoli polynomial, bit-reflected as hash/crc32 uses it.
const crcPoly = 0x82f63b78

// mulModP returns a(x)·b(x) modulo the polynomial, both operands and the result bit-reflected
// (bit 31 is the coefficient of x^0).
func mulModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// pow2Mod[k] is x^(2^k) modulo the polynomial.
var pow2Mod = func() (t [64]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = mulModP(p, p)
	}
	return t
}()

// shiftOp returns x^(8n) modulo the polynomial: multiplying a CRC by it appends n zero bytes
// to the message it sums (before the final inversion, which cancels out in crcCombine).
func shiftOp(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = mulModP(pow2Mod[k], p)
		}
	}
	return p
}

// chunkShift is shiftOp(crcChunk).
var chunkShift = shiftOp(crcChunk)

// crcCombine returns the CRC-32C of A‖B from a, the CRC-32C of A, and b, that of B, whose
// length is given by op = shiftOp(len(B)).
func crcCombine(a, b, op uint32) uint32 {
	return mulModP(op, a) ^ b
}

// sumChunks appends the CRCs of the payload's whole chunks not yet summed (event loop only).
func (b *bigFrame) sumChunks() {
	payload := b.buf[4:]
	for i := len(b.crcs); (i+1)*crcChunk <= len(payload); i++ {
		b.crcs = append(b.crcs, crc32.Update(0, castagnoli, payload[i*crcChunk:(i+1)*crcChunk]))
	}
}

// CRC32C returns the CRC-32C (Castagnoli) of data, which must be a stretch of r.Frame. For a
// large frame it is put together from the checksums taken as the frame arrived (see above);
// otherwise, or when data is not within r.Frame, it is computed from data. Like Frame, valid
// only during Handler.Serve.
func (r *Request) CRC32C(data []byte) uint32 {
	from, ok := r.offsetOf(data)
	if !ok || len(r.chunks) == 0 {
		return crc32.Update(0, castagnoli, data)
	}
	to := from + len(data)
	first := (from + crcChunk - 1) / crcChunk // the first whole chunk in [from, to)
	last := to / crcChunk                     // the chunk after the last whole one
	if last > len(r.chunks) {
		last = len(r.chunks) // chunks past the summed ones are computed from the bytes
	}
	if first >= last {
		return crc32.Update(0, castagnoli, data)
	}
	crc := crc32.Update(0, castagnoli, r.Frame[from:first*crcChunk])
	for _, c := range r.chunks[first:last] {
		crc = crcCombine(crc, c, chunkShift)
	}
	if tail := r.Frame[last*crcChunk : to]; len(tail) > 0 {
		crc = crcCombine(crc, crc32.Update(0, castagnoli, tail), shiftOp(int64(len(tail))))
	}
	return crc
}

// offsetOf returns where data starts in r.Frame, if data lies within it.
func (r *Request) offsetOf(data []byte) (int, bool) {
	if len(data) == 0 || len(r.Frame) == 0 {
		return 0, false
	}
	off := uintptr(unsafe.Pointer(unsafe.SliceData(data))) - uintptr(unsafe.Pointer(unsafe.SliceData(r.Frame)))
	if off > uintptr(len(r.Frame)) || uintptr(len(data)) > uintptr(len(r.Frame))-off {
		return 0, false
	}
	return int(off), true
}
