package bench

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// producer is one producer client and the goroutine feeding it on schedule.
type producer struct {
	id      uint32
	runID   uint32
	cl      *kgo.Client
	topics  []string
	size    SizeDist
	keys    keyGen
	payload []byte // shared, read-only; at least twice the largest record
	rng     *rand.Rand
	errs    *errorLog

	// The schedule (see the package doc): record n is due at start + (n·of + id)/rate.
	rate     float64   // records/s over all producers; 0: as fast as possible
	of       int       // number of producers
	count    int64     // records this producer sends; negative: until deadline
	deadline time.Time // zero: until count

	sent, ackedRecords, ackedBytes, errors atomic.Int64

	lat   *interval // produce-ack latency; lat.mu also guards acked
	acked bitset    // acknowledged sequences. Invariant: guarded by lat.mu.
	// lag is how late the producer goroutine hands records to the client (fixed rate only):
	// the load generator's own share of the latency. Large values mean it cannot keep up.
	lag *interval

	pool sync.Pool // *kgo.Record, returned by onAck
}

// run sends records until the count or the deadline is reached or ctx is done. It does not
// wait for acknowledgments (the caller flushes).
func (p *producer) run(ctx context.Context, start time.Time) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := uint64(0); p.count < 0 || int64(seq) < p.count; seq++ {
		var intended time.Time
		if p.rate > 0 {
			intended = start.Add(time.Duration((float64(seq)*float64(p.of) + float64(p.id)) * 1e9 / p.rate))
			if !p.deadline.IsZero() && !intended.Before(p.deadline) {
				return
			}
			if d := time.Until(intended); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
		} else {
			intended = time.Now()
			if !p.deadline.IsZero() && !intended.Before(p.deadline) {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if p.rate > 0 {
			p.lag.record(time.Since(intended))
		}
		p.sent.Add(1)
		p.cl.Produce(ctx, p.record(seq, intended), p.onAck)
	}
}

// record builds record seq, reusing an acknowledged record's memory when it can.
func (p *producer) record(seq uint64, intended time.Time) *kgo.Record {
	size := p.size.Sample(p.rng)
	key := p.keys.next(p.rng)
	r, _ := p.pool.Get().(*kgo.Record)
	if r == nil {
		r = new(kgo.Record)
	}
	value := r.Value[:0]
	if cap(value) < size {
		value = make([]byte, size)
	}
	value = value[:size]
	off := p.rng.IntN(len(p.payload) - size + 1)
	copy(value[HeaderSize:], p.payload[off:])
	FillRecord(value, key, RecordHeader{RunID: p.runID, Producer: p.id, Seq: seq, Intended: intended.UnixNano()})
	*r = kgo.Record{Topic: p.topics[seq%uint64(len(p.topics))], Key: key, Value: value}
	return r
}

// onAck is the promise of every record; the client calls it serially.
func (p *producer) onAck(r *kgo.Record, err error) {
	now := time.Now()
	h, _ := peekHeader(r.Value)
	if err != nil {
		p.errors.Add(1)
		p.errs.add("produce", err)
	} else {
		p.lat.mu.Lock()
		p.acked.set(h.Seq)
		p.lat.recordLocked(now.Sub(h.IntendedTime()))
		p.lat.mu.Unlock()
		p.ackedRecords.Add(1)
		p.ackedBytes.Add(int64(len(r.Key) + len(r.Value)))
	}
	p.pool.Put(r)
}

// ackedSnapshot returns a copy of the acknowledged sequences.
func (p *producer) ackedSnapshot() *bitset {
	p.lat.mu.Lock()
	defer p.lat.mu.Unlock()
	return &bitset{w: append([]uint64(nil), p.acked.w...)}
}

// newPayload returns n bytes to cut payloads from: random (incompressible) or text (words,
// which compress about as well as log lines do).
func newPayload(kind string, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5ba7e))
	b := make([]byte, 0, n+16)
	if kind == "text" {
		words := []string{"the", "broker", "partition", "offset", "record", "batch", "leader",
			"replica", "fetch", "produce", "topic", "segment", "index", "consumer", "group",
			"commit", "latency", "throughput", "error", "info", "debug", "request", "response",
			"user", "order", "payment", "event", "id", "time", "status", "ok", "failed"}
		for len(b) < n {
			b = append(b, words[r.IntN(len(words))]...)
			if r.IntN(12) == 0 {
				b = append(b, '0'+byte(r.IntN(10)), '0'+byte(r.IntN(10)), '0'+byte(r.IntN(10)))
			}
			sep := byte(' ')
			if r.IntN(16) == 0 {
				sep = '\n'
			}
			b = append(b, sep)
		}
		return b[:n]
	}
	for len(b) < n {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	return b[:n]
}
