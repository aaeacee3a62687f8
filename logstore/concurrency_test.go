package logstore

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadersNeverSeePartialBatches: one appender (rolling tiny segments, with retention and
// truncation mixed in) and several readers at random offsets; every batch a reader gets is
// whole, passes its CRC check and has the offsets the reader asked for. Readers are bounded
// by a watermark that truncation never goes below, as consumers are by the high watermark
// (only uncommitted data is ever truncated).
func TestReadersNeverSeePartialBatches(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.IndexIntervalBytes, cfg.PreallocateBytes = 16<<10, 512, 8192
	l, err := Open(t.TempDir(), cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stop atomic.Bool
	var hw atomic.Int64 // readers stay below it; truncation stays above it
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		recs := []Record{{Value: make([]byte, 300)}, {Value: make([]byte, 200)}, {Value: []byte("x")}}
		var info AppendInfo
		for i := 0; !stop.Load(); i++ {
			b := AppendBatch(nil, BatchSpec{BaseTimestamp: time.Now().UnixMilli(), ProducerID: -1, BaseSequence: -1, Records: recs})
			if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
				t.Error(err)
				return
			}
			hw.Store(max(hw.Load(), l.LogEndOffset()-20))
			switch {
			case i%500 == 499:
				l.TruncateTo(max(l.LogEndOffset()-7, hw.Load()))
			case i%300 == 299:
				l.DeleteRecordsBefore(l.LogEndOffset() - 300)
			}
		}
	}()
	var reads atomic.Int64
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			var res ReadResult
			var h BatchHeader
			for i := seed; !stop.Load(); i += 7919 {
				start, end := l.LogStartOffset(), hw.Load()
				if end <= start {
					continue
				}
				off := start + i%(end-start)
				err := l.Read(off, 64<<10, end, true, &res)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention or truncation moved under us
				}
				if err != nil {
					t.Error(err)
					return
				}
				first := true
				for _, reg := range res.Regions {
					for b := reg.Data; len(b) > 0; b = b[h.Size():] {
						if err := CheckBatch(b, 0, &h); err != nil {
							t.Errorf("reader got a bad batch at offset %d: %v", off, err)
							return
						}
						if first && (h.BaseOffset > off || h.LastOffset() < off) {
							t.Errorf("read at %d returned a first batch [%d,%d]", off, h.BaseOffset, h.LastOffset())
							return
						}
						first = false
					}
				}
				res.Release()
				reads.Add(1)
			}
		}(int64(r * 31))
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
	if reads.Load() < 100 {
		t.Fatalf("only %d reads ran", reads.Load())
	}
}

// TestOpenThousandsOfSegmentsMapsOnlyTheTail: reopening a log of 2000 sealed segments after a
// clean close reads and maps only the last (active) segment; sealed ones are registered from
// their names and sizes and loaded on first use.
func TestOpenThousandsOfSegmentsMapsOnlyTheTail(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.PreallocateBytes = 200, 4096
	dir := t.TempDir()
	l, err := Open(dir, cfg, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := AppendBatch(nil, BatchSpec{BaseTimestamp: 1, ProducerID: -1, BaseSequence: -1, Records: []Record{{Value: make([]byte, 100)}}})
	var info AppendInfo
	for i := 0; i < 2000; i++ {
		if err := l.AppendAsLeader(b, 0, false, &info); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.NumSegments(); n != 2000 {
		t.Fatalf("%d segments, want 2000", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	l, err = Open(dir, cfg, OpenOptions{RecoveryPoint: 2000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opened 2000 segments in %v", time.Since(began))
	defer l.Close()
	loaded := 0
	l.mu.RLock()
	for _, s := range l.segments {
		if s.loaded.Load() {
			loaded++
		}
	}
	l.mu.RUnlock()
	if loaded != 1 || l.LogEndOffset() != 2000 {
		t.Fatalf("after open: %d segments loaded (want 1), log end %d", loaded, l.LogEndOffset())
	}
	var res ReadResult
	if err := l.Read(1234, 1000, 2000, true, &res); err != nil || res.FirstOffset != 1234 {
		t.Fatalf("read of a sealed segment: %v first %d", err, res.FirstOffset)
	}
	res.Release()
}
