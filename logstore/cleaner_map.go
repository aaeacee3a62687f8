package logstore

import (
	"crypto/md5"
	"encoding/binary"
)

// offsetMap is a compaction pass's map from record key to the offset of the key's latest
// record in the dirty part of the log (Kafka's SkimpyOffsetMap). Keys are kept as their
// 16-byte MD5 digest, so an entry takes 24 bytes whatever the key's length:
//
//	slot i   digests[i]  [16]byte  MD5 of the key
//	         offsets[i]  int64     latest offset of the key; -1 = empty slot
//
// The table is open-addressed (linear probing) and never resized: it is sized once, from the
// number of records to map and the memory budget, and reports itself full at 3/4 load. Two
// keys with the same digest would count as one key (the older record of either would be
// dropped); with 128-bit digests this is as unlikely as in Kafka, which does the same.
type offsetMap struct {
	digests []keyDigest
	offsets []Offset
	mask    uint64
	used    int // slots in use
	limit   int // most slots in use before the map is full
}

type keyDigest [16]byte

// offsetMapEntryBytes is the memory one slot takes.
const offsetMapEntryBytes = 16 + 8

func digestKey(key []byte) keyDigest { return md5.Sum(key) }

// newOffsetMap returns a map for up to records entries within budget bytes (at least 12
// entries, so that a pass always makes progress).
func newOffsetMap(budget int64, records int) *offsetMap {
	slots := 16
	for slots/4*3 < records && int64(slots)*2*offsetMapEntryBytes <= budget {
		slots *= 2
	}
	m := &offsetMap{
		digests: make([]keyDigest, slots),
		offsets: make([]Offset, slots),
		mask:    uint64(slots - 1),
		limit:   slots / 4 * 3,
	}
	for i := range m.offsets {
		m.offsets[i] = -1
	}
	return m
}

// free is how many more keys the map takes before it is full.
func (m *offsetMap) free() int { return m.limit - m.used }

// slot returns the slot of d: the one holding it, or the empty slot where it belongs.
func (m *offsetMap) slot(d *keyDigest) uint64 {
	i := binary.LittleEndian.Uint64(d[:8]) & m.mask
	for m.offsets[i] >= 0 && m.digests[i] != *d {
		i = (i + 1) & m.mask
	}
	return i
}

// put records off as the latest offset of the key with digest d. The caller checks free first;
// offsets are put in increasing order.
func (m *offsetMap) put(d *keyDigest, off Offset) {
	i := m.slot(d)
	if m.offsets[i] < 0 {
		if m.used >= m.limit {
			panic("BUG: offset map overfilled")
		}
		m.used++
		m.digests[i] = *d
	}
	m.offsets[i] = off
}

// get returns the latest offset of the key with digest d, or -1.
func (m *offsetMap) get(d *keyDigest) Offset { return m.offsets[m.slot(d)] }
