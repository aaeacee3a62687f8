package logstore

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "replay one seed of the metamorphic tests")
	stepsFlag = flag.Int("steps", 400, "operations per metamorphic run")
	runsFlag  = flag.Int("runs", 3, "seeds per configuration")
)

// modelBatch is one batch as the model expects it to be stored.
type modelBatch struct {
	base, last Offset
	data       []byte  // bytes as stored (base offset and epoch rewritten)
	ts         []int64 // per record timestamps
}

// model is the trivial in-memory log the real one is compared with.
type model struct {
	batches []modelBatch
	start   Offset
	leo     Offset
}

func (m *model) firstAtOrAfter(off Offset) int {
	for i, b := range m.batches {
		if b.last >= off {
			return i
		}
	}
	return len(m.batches)
}

// read applies Read's rules to the model.
func (m *model) read(off Offset, maxBytes int64, maxOff Offset, minOne bool) []byte {
	var out []byte
	for i := m.firstAtOrAfter(off); i < len(m.batches); i++ {
		b := m.batches[i]
		if b.last >= maxOff {
			break
		}
		if int64(len(out)+len(b.data)) > maxBytes && !(minOne && len(out) == 0) {
			break
		}
		out = append(out, b.data...)
	}
	return out
}

func (m *model) offsetForTime(ts int64) (TimestampOffset, bool) {
	for _, b := range m.batches {
		for j, t := range b.ts {
			if o := b.base + int64(j); t >= ts && o >= m.start {
				return TimestampOffset{o, t}, true
			}
		}
	}
	return TimestampOffset{}, false
}

func (m *model) maxTimestamp() (TimestampOffset, bool) {
	best, found := TimestampOffset{Timestamp: -1 << 62}, false
	for _, b := range m.batches {
		for j, t := range b.ts {
			if o := b.base + int64(j); o >= m.start && t > best.Timestamp {
				best, found = TimestampOffset{o, t}, true
			}
		}
	}
	return best, found
}

func (m *model) truncate(off Offset) {
	// Offsets are dense: the batch holding off goes whole and the end becomes its base.
	if i := m.firstAtOrAfter(off); i < len(m.batches) {
		m.leo = m.batches[i].base
		m.batches = m.batches[:i]
	}
	m.start = min(m.start, m.leo)
}

// dropBelow removes batches wholly below the log start offset (they may still be on disk in
// a partly deleted segment, but no read can reach them).
func (m *model) dropBelow() {
	for len(m.batches) > 0 && m.batches[0].last < m.start {
		m.batches = m.batches[1:]
	}
}

type modelConfig struct {
	name string
	cfg  Config
}

func modelConfigs() []modelConfig {
	tiny := DefaultConfig()
	tiny.SegmentBytes, tiny.IndexIntervalBytes, tiny.PreallocateBytes = 1500, 1, 4096
	tinyIdx := tiny
	tinyIdx.SegmentIndexBytes = 40 // five offset entries: rolls when the index fills
	large := DefaultConfig()
	large.SegmentBytes, large.IndexIntervalBytes = 1<<20, 4096
	largeInt1 := large
	largeInt1.IndexIntervalBytes = 1
	appendTime := tiny
	appendTime.SegmentBytes, appendTime.LogAppendTime = 8<<10, true
	appendTime.IndexIntervalBytes = 4096
	appendTime.SegmentMs = 300 // rolls by age too
	return []modelConfig{
		{"tiny-segments/interval-1", tiny},
		{"tiny-index", tinyIdx},
		{"large-segments/interval-4096", large},
		{"large-segments/interval-1", largeInt1},
		{"log-append-time", appendTime},
	}
}

func TestMetamorphicAgainstModel(t *testing.T) {
	for _, mc := range modelConfigs() {
		t.Run(mc.name, func(t *testing.T) {
			seeds := []uint64{}
			if *seedFlag != 0 {
				seeds = append(seeds, *seedFlag)
			} else {
				base := uint64(time.Now().UnixNano())
				for i := 0; i < *runsFlag; i++ {
					seeds = append(seeds, base+uint64(i)*7919)
				}
			}
			for _, seed := range seeds {
				runModel(t, mc.cfg, seed, *stepsFlag)
				if t.Failed() {
					t.Fatalf("failing seed: go test ./logstore -run 'TestMetamorphicAgainstModel/%s' -seed %d", mc.name, seed)
				}
			}
		})
	}
}

func randomBatch(rng *rand.Rand, clock int64) ([]byte, []int64) {
	n := 1 + rng.IntN(12)
	if rng.IntN(10) == 0 {
		n = 1 + rng.IntN(200)
	}
	recs := make([]Record, n)
	ts := make([]int64, n)
	base := clock - int64(rng.IntN(50))
	for i := range recs {
		v := make([]byte, rng.IntN(120))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		recs[i] = Record{Value: v, TimestampDelta: int64(rng.IntN(200)) - 50}
		if rng.IntN(3) == 0 {
			recs[i].Key = []byte(fmt.Sprintf("k%d", rng.IntN(10)))
		}
		ts[i] = base + recs[i].TimestampDelta
	}
	return AppendBatch(nil, BatchSpec{BaseTimestamp: base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1, Records: recs}), ts
}

func runModel(t *testing.T, cfg Config, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	clock := int64(1_700_000_000_000)
	cfg.Now = func() int64 { return clock }
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	m := &model{}
	epoch := int32(0)
	var res ReadResult
	fail := func(step int, op string, format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d step %d %s: %s", seed, step, op, fmt.Sprintf(format, args...))
	}
	for step := 0; step < steps && !t.Failed(); step++ {
		clock += int64(rng.IntN(20))
		op := rng.IntN(100)
		if testing.Verbose() && *seedFlag != 0 {
			t.Logf("step %d op %d: log [%d,%d) segments %d", step, op, l.LogStartOffset(), l.LogEndOffset(), l.NumSegments())
		}
		switch {
		case op < 40: // append one or more batches
			var recs []byte
			var tss [][]int64
			for k := 1 + rng.IntN(2); k > 0; k-- {
				b, ts := randomBatch(rng, clock)
				recs = append(recs, b...)
				tss = append(tss, ts)
			}
			if rng.IntN(8) == 0 {
				epoch++
			}
			var info AppendInfo
			err := l.AppendAsLeader(recs, epoch, false, &info)
			if int64(len(recs)) > cfg.SegmentBytes {
				if CodeOf(err) != CodeRecordListTooLarge {
					fail(step, "append", "oversized append: got %v", err)
				}
				continue
			}
			if err != nil {
				fail(step, "append", "%v", err)
				continue
			}
			if info.FirstOffset != m.leo {
				fail(step, "append", "first offset %d, model %d", info.FirstOffset, m.leo)
			}
			var h BatchHeader
			for i, rest := 0, recs; len(rest) > 0; i++ {
				ParseBatchHeader(rest, &h)
				data := append([]byte(nil), rest[:h.Size()]...)
				SetBaseOffset(data, m.leo)
				SetPartitionLeaderEpoch(data, epoch)
				ts := tss[i]
				if cfg.LogAppendTime {
					setLogAppendTime(data, clock)
					ts = make([]int64, len(ts))
					for j := range ts {
						ts[j] = clock
					}
				}
				m.batches = append(m.batches, modelBatch{base: m.leo, last: m.leo + int64(h.LastOffsetDelta), data: data, ts: ts})
				m.leo += int64(h.LastOffsetDelta) + 1
				rest = rest[h.Size():]
			}
			if info.LastOffset != m.leo-1 {
				fail(step, "append", "last offset %d, model %d", info.LastOffset, m.leo-1)
			}
		case op < 44: // an invalid append changes nothing
			b, _ := randomBatch(rng, clock)
			b[len(b)-1] ^= 0xff
			var info AppendInfo
			if err := l.AppendAsLeader(b, epoch, false, &info); !errors.Is(err, ErrCorrupt) {
				fail(step, "corrupt append", "got %v", err)
			}
		case op < 70: // read
			off := m.start + rng.Int64N(m.leo-m.start+1)
			maxOff := off + rng.Int64N(m.leo-off+1)
			if rng.IntN(2) == 0 {
				maxOff = m.leo
			}
			maxBytes := int64(rng.IntN(5000))
			minOne := rng.IntN(4) != 0
			err := l.Read(off, maxBytes, maxOff, minOne, &res)
			if err != nil {
				fail(step, "read", "offset %d: %v", off, err)
				continue
			}
			var got []byte
			for _, r := range res.Regions {
				got = append(got, r.Data...)
				buf := make([]byte, r.Len)
				if _, err := r.File.ReadAt(buf, r.Pos); err != nil || !bytes.Equal(buf, r.Data) {
					fail(step, "read", "file region differs from its view: %v", err)
				}
			}
			if want := m.read(off, maxBytes, maxOff, minOne); !bytes.Equal(got, want) {
				fail(step, "read", "offset %d maxBytes %d maxOffset %d minOne %v: got %d bytes, model %d", off, maxBytes, maxOff, minOne, len(got), len(want))
			}
			res.Release()
			if m.start > 0 {
				if err := l.Read(m.start-1, 100, m.leo, true, &res); !errors.Is(err, ErrOffsetOutOfRange) {
					fail(step, "read", "below start: %v", err)
				}
			}
			if err := l.Read(m.leo+1, 100, m.leo+1, true, &res); !errors.Is(err, ErrOffsetOutOfRange) {
				fail(step, "read", "past end: %v", err)
			}
		case op < 78: // time lookups
			ts := clock - int64(rng.IntN(3000))
			got, ok, err := l.OffsetForTimestamp(ts)
			want, wok := m.offsetForTime(ts)
			if err != nil || ok != wok || got != want {
				fail(step, "offsetForTimestamp", "ts %d: got %+v %v %v, model %+v %v", ts, got, ok, err, want, wok)
			}
			got, ok, err = l.MaxTimestamp()
			want, wok = m.maxTimestamp()
			if err != nil || ok != wok || (ok && got != want) {
				fail(step, "maxTimestamp", "got %+v %v %v, model %+v %v", got, ok, err, want, wok)
			}
		case op < 82: // truncate
			if m.leo == m.start {
				continue
			}
			off := m.start + rng.Int64N(m.leo-m.start)
			if err := l.TruncateTo(off); err != nil {
				fail(step, "truncate", "%d: %v", off, err)
			}
			m.truncate(off)
		case op < 85:
			if err := l.Roll(); err != nil {
				fail(step, "roll", "%v", err)
			}
		case op < 88: // retention
			c := l.Config()
			c.RetentionBytes, c.RetentionMs = -1, -1
			if rng.IntN(2) == 0 {
				c.RetentionBytes = int64(rng.IntN(20000))
			} else {
				c.RetentionMs = int64(rng.IntN(2000))
			}
			l.SetConfig(c)
			before := l.LogStartOffset()
			if _, err := l.ApplyRetention(); err != nil {
				fail(step, "retention", "%v", err)
			}
			after := l.LogStartOffset()
			if after < before || after > m.leo {
				fail(step, "retention", "log start %d -> %d (end %d)", before, after, m.leo)
			}
			if c.RetentionBytes >= 0 && l.NumSegments() > 1 {
				l.mu.RLock()
				first := l.segments[0].size.Load()
				l.mu.RUnlock()
				if l.Size()-first >= c.RetentionBytes {
					fail(step, "retention", "size %d with first segment %d still over %d", l.Size(), first, c.RetentionBytes)
				}
			}
			m.start = after
			m.dropBelow()
			c.RetentionBytes, c.RetentionMs = -1, -1
			l.SetConfig(c)
		case op < 91: // delete records
			off := m.start + rng.Int64N(m.leo-m.start+1)
			got, err := l.DeleteRecordsBefore(off)
			if err != nil || got != off {
				fail(step, "deleteRecords", "%d: got %d %v", off, got, err)
			}
			m.start = off
			m.dropBelow()
		case op < 95: // close and reopen
			rp := l.RecoveryPoint()
			start := l.LogStartOffset()
			if err := l.Close(); err != nil {
				fail(step, "close", "%v", err)
			}
			if rng.IntN(2) == 0 {
				rp = 0 // forget the recovery point: recovery scans everything
			}
			l, err = Open(dir, cfg, OpenOptions{RecoveryPoint: rp, LogStartOffset: start})
			if err != nil {
				t.Fatalf("seed %d step %d reopen: %v", seed, step, err)
			}
		case op < 97:
			if err := l.Sync(); err != nil || l.RecoveryPoint() != m.leo {
				fail(step, "sync", "%v, recovery point %d, end %d", err, l.RecoveryPoint(), m.leo)
			}
		default: // truncate fully
			off := m.leo + rng.Int64N(5)
			if err := l.TruncateFullyAndStartAt(off); err != nil {
				fail(step, "truncateFully", "%v", err)
			}
			m.batches, m.start, m.leo = nil, off, off
		}
		if l.LogEndOffset() != m.leo || l.LogStartOffset() != m.start {
			fail(step, fmt.Sprintf("offsets after op %d", op), "log [%d,%d), model [%d,%d)", l.LogStartOffset(), l.LogEndOffset(), m.start, m.leo)
		}
	}
	// Finally read everything back in one go.
	if err := l.Read(m.start, 1<<40, m.leo, true, &res); err != nil {
		t.Fatalf("seed %d final read: %v", seed, err)
	}
	var got []byte
	for _, r := range res.Regions {
		got = append(got, r.Data...)
	}
	if want := m.read(m.start, 1<<40, m.leo, true); !bytes.Equal(got, want) {
		t.Errorf("seed %d final read: got %d bytes, model %d", seed, len(got), len(want))
	}
	res.Release()
}
