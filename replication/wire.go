package replication

import "encoding/binary"

// reader decodes Kafka's primitive types without copying or allocating. It is sticky: reading
// past the end (or a length that does not fit the bytes left) yields zero values and sets bad,
// which the caller checks once at the end (franz-go's kbin idea; the same reader as the
// broker's, which this package may not import). Byte results are views of the input.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) fail() {
	r.bad = true
	r.b = nil
}

func (r *reader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) int16() int16 {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return int16(binary.BigEndian.Uint16(v))
}

func (r *reader) int32() int32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(v))
}

func (r *reader) int64() int64 {
	v := r.take(8)
	if v == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// compactLen reads a compact (uvarint length + 1) array, string or bytes length; null reads as
// -1. A length larger than the bytes left is bad, so no length alone can make a caller
// allocate or loop.
func (r *reader) compactLen() int {
	n := int64(r.uvarint()) - 1
	if n < -1 || n > int64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

// compactBytes reads compact (nullable) bytes or a string; null reads as nil.
func (r *reader) compactBytes() []byte {
	n := r.compactLen()
	if n < 0 {
		return nil
	}
	return r.take(n)
}

// tag reads one tagged field's key and returns its body.
func (r *reader) tag() (key uint64, body []byte) {
	key = r.uvarint()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0, nil
	}
	return key, r.take(int(n))
}

// skipTags skips a tagged-field section.
func (r *reader) skipTags() {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return
	}
	for i := uint64(0); i < n && !r.bad; i++ {
		r.tag()
	}
}

func appendInt16(b []byte, v int16) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
func appendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }
func appendInt64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

// appendCompactLen appends a compact array or string length.
func appendCompactLen(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)+1) }

func appendCompactString(b []byte, s string) []byte {
	return append(appendCompactLen(b, len(s)), s...)
}
