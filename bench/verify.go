package bench

import (
	"math/bits"
	"sync"
)

// Verifier checks the records consumers read against what producers sent. Consumers decode
// and checksum records outside its lock (decodeObservation) and hand it a fetch's worth at a
// time (Observe); at the end, Verify compares what was seen with what was acknowledged.
//
// Per producer it keeps a bitmap of the sequences seen (a bit per record: 1.25 MB per 10M
// records) and, per (producer, topic, partition), the highest sequence seen so far: a new
// record below it was reordered. Kafka keeps one producer's records in order within a
// partition (all the more so per key, since a key picks the partition).
type Verifier struct {
	runID     uint32
	producers uint32

	mu   sync.Mutex
	seen []bitset          // per producer. Invariant: guarded by mu.
	last map[stream]uint64 // highest sequence seen + 1. Invariant: guarded by mu.
	// Counts, guarded by mu.
	consumed, unique, duplicated, reordered, corrupt, foreign int64
}

// maxSeq bounds sequences a checksum-valid record may carry, so a crafted record cannot make
// the bitmap grow without bound; beyond it a record counts as corrupt.
const maxSeq = 1 << 36

type stream struct {
	producer  uint32
	topic     string
	partition int32
}

// Status is what the verifier made of one consumed record.
type Status uint8

// Statuses, in the order the checks run.
const (
	StatusNew       Status = iota // first delivery, in order
	StatusReordered               // first delivery, after a later record of its stream
	StatusDuplicate               // delivered before
	StatusCorrupt                 // checksum mismatch, or an impossible producer or sequence
	StatusForeign                 // not a record of this run
)

var statusNames = [...]string{"new", "reordered", "duplicate", "corrupt", "foreign"}

func (s Status) String() string { return statusNames[s] }

// observation is one consumed record, decoded and checksummed.
type observation struct {
	topic     string
	partition int32
	h         RecordHeader
	err       error  // nil, ErrForeign or ErrCorrupt
	status    Status // set by Observe
}

// NewVerifier returns a verifier of the records of run runID written by producers producers.
func NewVerifier(runID uint32, producers int) *Verifier {
	return &Verifier{
		runID:     runID,
		producers: uint32(producers),
		seen:      make([]bitset, producers),
		last:      make(map[stream]uint64),
	}
}

func decodeObservation(topic string, partition int32, key, value []byte) observation {
	h, err := DecodeRecord(key, value)
	return observation{topic: topic, partition: partition, h: h, err: err}
}

// ObserveRecord checks one consumed record (a convenience over Observe).
func (v *Verifier) ObserveRecord(topic string, partition int32, key, value []byte) Status {
	obs := []observation{decodeObservation(topic, partition, key, value)}
	v.Observe(obs)
	return obs[0].status
}

// Observe checks decoded records and sets each one's status.
func (v *Verifier) Observe(obs []observation) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range obs {
		obs[i].status = v.observeLocked(&obs[i])
	}
}

func (v *Verifier) observeLocked(o *observation) Status {
	h := o.h
	switch {
	case o.err == ErrForeign || o.err == nil && h.RunID != v.runID:
		v.foreign++
		return StatusForeign
	case o.err != nil || h.Producer >= v.producers || h.Seq >= maxSeq:
		v.corrupt++
		return StatusCorrupt
	}
	v.consumed++
	if v.seen[h.Producer].set(h.Seq) {
		v.duplicated++
		return StatusDuplicate
	}
	v.unique++
	s := stream{h.Producer, o.topic, o.partition}
	if last := v.last[s]; h.Seq+1 < last {
		v.reordered++
		return StatusReordered
	}
	v.last[s] = h.Seq + 1
	return StatusNew
}

// Unique returns how many distinct records of this run were consumed so far.
func (v *Verifier) Unique() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.unique
}

// Verify compares what was consumed with what each producer had acknowledged (acked[p] holds
// producer p's acknowledged sequences) and returns the counts. Sent and Acked are the caller's.
func (v *Verifier) Verify(acked []*bitset) Verification {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := Verification{
		Checked:    true,
		Consumed:   v.consumed,
		Unique:     v.unique,
		Duplicated: v.duplicated,
		Reordered:  v.reordered,
		Corrupt:    v.corrupt,
		Foreign:    v.foreign,
	}
	for p := range v.seen {
		var a *bitset
		if p < len(acked) {
			a = acked[p]
		}
		if a == nil {
			a = &bitset{}
		}
		r.Lost += int64(a.countAndNot(&v.seen[p]))
		r.Unacked += int64(v.seen[p].countAndNot(a))
	}
	return r
}

// lost is Verify's Lost alone, cheaper for the consumers' "all in?" check.
func (v *Verifier) lost(acked []*bitset) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var n int64
	for p, a := range acked {
		if a != nil && p < len(v.seen) {
			n += int64(a.countAndNot(&v.seen[p]))
		}
	}
	return n
}

// bitset is a growable set of sequence numbers.
type bitset struct{ w []uint64 }

// set adds i and reports whether it was already there.
func (b *bitset) set(i uint64) bool {
	k := int(i / 64)
	if k >= len(b.w) {
		b.w = append(b.w, make([]uint64, k+1-len(b.w)+len(b.w)/4)...)
	}
	m := uint64(1) << (i % 64)
	was := b.w[k]&m != 0
	b.w[k] |= m
	return was
}

func (b *bitset) has(i uint64) bool {
	k := int(i / 64)
	return k < len(b.w) && b.w[k]&(1<<(i%64)) != 0
}

func (b *bitset) count() int {
	n := 0
	for _, w := range b.w {
		n += bits.OnesCount64(w)
	}
	return n
}

// countAndNot counts the members of b missing from o.
func (b *bitset) countAndNot(o *bitset) int {
	n := 0
	for k, w := range b.w {
		if k < len(o.w) {
			w &^= o.w[k]
		}
		n += bits.OnesCount64(w)
	}
	return n
}
