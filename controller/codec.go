package controller

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
)

// The primitives shared by the record encoding (records.go) and the snapshot encoding
// (snapshot.go). Every multi-byte integer is a varint; lengths and counts are unsigned
// varints; strings and byte strings are a length followed by the bytes.
//
//	primitive      encoding
//	─────────────  ──────────────────────────────────────────────────────────
//	uvarint        encoding/binary Uvarint (1-10 bytes)
//	varint         encoding/binary Varint, zig-zag (1-10 bytes)
//	int32          varint, rejected on decode when outside int32
//	bool           1 byte, 0 or 1 (anything else is corrupt)
//	uuid           16 raw bytes
//	string         uvarint length n, then n bytes
//	*string        bool present, then string when present
//	[]int32        uvarint count n, then n int32
//	[]string       uvarint count n, then n string
//	map[str]str    uvarint count n, then n (key string, value string), keys ascending
//
// Decoding never allocates more than the input holds: a count or length is checked against
// the bytes left before anything is allocated (every element takes at least one byte).

// ErrCorrupt is wrapped by every decode error: the bytes are not a valid encoding.
var ErrCorrupt = errors.New("controller: corrupt metadata encoding")

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }
func appendVarint(dst []byte, v int64) []byte   { return binary.AppendVarint(dst, v) }

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, 0)
	}
	return appendString(append(dst, 1), *s)
}

func appendInt32s(dst []byte, v []int32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	for _, x := range v {
		dst = binary.AppendVarint(dst, int64(x))
	}
	return dst
}

func appendStrings(dst []byte, v []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	for _, s := range v {
		dst = appendString(dst, s)
	}
	return dst
}

// appendStringMap writes m with its keys in ascending order, so equal maps encode equally.
func appendStringMap(dst []byte, m map[string]string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		dst = appendString(dst, k)
		dst = appendString(dst, m[k])
	}
	return dst
}

// reader decodes with a sticky error: once a read fails, every later read returns a zero
// value, and the caller checks err once at the end (FG kbin).
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = errors.Join(ErrCorrupt, errors.New(what))
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int32() int32 {
	v := r.varint()
	if v < -1<<31 || v > 1<<31-1 {
		r.fail("int32 out of range")
		return 0
	}
	return int32(v)
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("short input")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail("bad bool")
		return false
	}
}

func (r *reader) uuid() (id [16]byte) {
	if r.err != nil {
		return id
	}
	if len(r.b) < 16 {
		r.fail("short uuid")
		return id
	}
	copy(id[:], r.b)
	r.b = r.b[16:]
	return id
}

// count reads a count of elements of at least minBytes each, refusing one the input cannot
// hold.
func (r *reader) count(minBytes int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/minBytes) {
		r.fail("count exceeds input")
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.count(1)
	if r.err != nil || n == 0 {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) optString() *string {
	if !r.bool() {
		return nil
	}
	s := r.string()
	if r.err != nil {
		return nil
	}
	return &s
}

// int32s returns nil for an empty list, so decode(encode(x)) == x for canonical values.
func (r *reader) int32s() []int32 {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = r.int32()
	}
	if r.err != nil {
		return nil
	}
	return v
}

func (r *reader) strings() []string {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.string()
	}
	if r.err != nil {
		return nil
	}
	return v
}

// stringMap returns nil for an empty map and fails on keys that are not strictly ascending
// (the only order the encoder writes), so every map has one encoding.
func (r *reader) stringMap() map[string]string {
	n := r.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := 0; i < n && r.err == nil; i++ {
		k, v := r.string(), r.string()
		if i > 0 && k <= prev {
			r.fail("map keys not ascending")
		}
		m[k], prev = v, k
	}
	if r.err != nil {
		return nil
	}
	return m
}
