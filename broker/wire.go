package broker

import "encoding/binary"

// reader decodes Kafka's primitive types from a request body without copying or allocating.
// It is sticky: reading past the end (or a length that does not fit the bytes left) yields
// zero values and sets bad, which the caller checks once at the end (franz-go's kbin idea).
// Byte and string results are views of the body, valid while the body is.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) int8() int8 {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int8(v[0])
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

func (r *reader) uuid() (u [16]byte) {
	copy(u[:], r.take(16))
	return u
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// arrayLen reads an array length (compact when flex); null reads as -1. A length larger than
// the bytes left (every element takes at least one byte) is bad, so no caller can be made to
// allocate by a length alone.
func (r *reader) arrayLen(flex bool) int {
	var n int64
	if flex {
		n = int64(r.uvarint()) - 1
	} else {
		n = int64(r.int32())
	}
	if n > int64(len(r.b)) || n < -1 {
		r.bad = true
		r.b = nil
		return 0
	}
	return int(n)
}

// str reads a (nullable) string; null reads as nil, ok=false.
func (r *reader) str(flex bool) (s []byte, ok bool) {
	var n int64
	if flex {
		n = int64(r.uvarint()) - 1
	} else {
		n = int64(r.int16())
	}
	if n < 0 {
		return nil, false
	}
	return r.take(int(min(n, 1<<31-1))), true
}

// bytes reads (nullable) bytes; null reads as nil.
func (r *reader) bytes(flex bool) []byte {
	var n int64
	if flex {
		n = int64(r.uvarint()) - 1
	} else {
		n = int64(r.int32())
	}
	if n < 0 {
		return nil
	}
	return r.take(int(min(n, 1<<31-1)))
}

// skipTags skips a tagged-field section when flex.
func (r *reader) skipTags(flex bool) {
	if !flex {
		return
	}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		r.b = nil
		return
	}
	for i := uint64(0); i < n && !r.bad; i++ {
		r.uvarint()
		size := r.uvarint()
		r.take(int(min(size, 1<<31-1)))
	}
}
