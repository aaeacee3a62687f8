package bench

import (
	"fmt"
	"io"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// sampler turns the producers' and consumers' counters and interval histograms into one
// Sample per interval, keeps the run's latency totals, and prints the progress line.
//
// Only the goroutine running the run calls it (from its ticker loop), so it needs no lock.
type sampler struct {
	start     time.Time
	every     time.Duration
	warmupEnd time.Time
	producers []*producer
	consumers []*consumer
	progress  io.Writer // nil: quiet

	cur, delta          latencies      // the last sample's interval; what arrived since
	prodTotal, e2eTotal *hdr.Histogram // after the warmup: the Result's latencies
	lagTotal            *hdr.Histogram
	prev                totals
	series              []Sample
	lastSample          time.Time
}

// latencies are the histograms of one interval.
type latencies struct{ prod, e2e, lag *hdr.Histogram }

func newLatencies() latencies { return latencies{newHist(), newHist(), newHist()} }

// totals are the run's counters at one moment.
type totals struct {
	sent, acked, ackedBytes, produceErrors int64
	consumed, consumedBytes                int64
}

func newSampler(start time.Time, every, warmup time.Duration, ps []*producer, cs []*consumer, progress io.Writer) *sampler {
	return &sampler{
		start: start, every: every, warmupEnd: start.Add(warmup), producers: ps, consumers: cs, progress: progress,
		cur: newLatencies(), delta: newLatencies(), prodTotal: newHist(), e2eTotal: newHist(), lagTotal: newHist(),
		lastSample: start,
	}
}

func (s *sampler) totals() totals {
	var t totals
	for _, p := range s.producers {
		t.sent += p.sent.Load()
		t.acked += p.ackedRecords.Load()
		t.ackedBytes += p.ackedBytes.Load()
		t.produceErrors += p.errors.Load()
	}
	for _, c := range s.consumers {
		t.consumed += c.records.Load()
		t.consumedBytes += c.bytes.Load()
	}
	return t
}

// sample closes the interval ending now. The final call (last) folds a stub of less than half
// an interval into the previous sample rather than plotting a rate over a sliver of time.
func (s *sampler) sample(now time.Time, last bool) {
	d := s.delta
	d.prod.Reset()
	d.e2e.Reset()
	d.lag.Reset()
	for _, p := range s.producers {
		p.lat.drainInto(d.prod)
		p.lag.drainInto(d.lag)
	}
	for _, c := range s.consumers {
		c.lat.drainInto(d.e2e)
	}
	// An interval counts towards the totals if it began after the warmup (a tick's jitter
	// aside).
	warm := !s.lastSample.Before(s.warmupEnd.Add(-s.every / 10))
	if warm {
		s.prodTotal.Merge(d.prod)
		s.e2eTotal.Merge(d.e2e)
		s.lagTotal.Merge(d.lag)
	}
	t := s.totals()
	smp := Sample{
		TS:              now.Sub(s.start).Seconds(),
		ProducedRecords: t.acked - s.prev.acked,
		ProducedBytes:   t.ackedBytes - s.prev.ackedBytes,
		ConsumedRecords: t.consumed - s.prev.consumed,
		ConsumedBytes:   t.consumedBytes - s.prev.consumedBytes,
		ProduceErrors:   t.produceErrors - s.prev.produceErrors,
	}
	dt := now.Sub(s.lastSample).Seconds()
	s.prev, s.lastSample = t, now
	if n := len(s.series); last && n > 0 && dt < s.every.Seconds()/2 {
		s.cur.prod.Merge(d.prod)
		s.cur.e2e.Merge(d.e2e)
		p := &s.series[n-1]
		p.TS = smp.TS
		p.ProducedRecords += smp.ProducedRecords
		p.ProducedBytes += smp.ProducedBytes
		p.ConsumedRecords += smp.ConsumedRecords
		p.ConsumedBytes += smp.ConsumedBytes
		p.ProduceErrors += smp.ProduceErrors
		p.Produce, p.EndToEnd = point(s.cur.prod), point(s.cur.e2e)
		return
	}
	s.cur, s.delta = d, s.cur
	smp.Produce, smp.EndToEnd = point(d.prod), point(d.e2e)
	s.series = append(s.series, smp)
	if s.progress != nil {
		s.printProgress(smp, dt, t, !warm)
	}
}

// printProgress rewrites the terminal's progress line:
//
//	12s  produce 20.0k rec/s  19.5 MiB/s  p99 1.21ms | consume 20.0k rec/s  19.5 MiB/s  e2e p99 2.05ms | acked 240.0k
//
// Rates are this interval's; percentiles are of the run so far, as the totals count them
// (after the warmup).
func (s *sampler) printProgress(smp Sample, dt float64, t totals, warmup bool) {
	if dt <= 0 {
		return
	}
	p99 := func(h *hdr.Histogram) string {
		if h.TotalCount() == 0 {
			return "-"
		}
		return Micros(h.ValueAtQuantile(99))
	}
	line := fmt.Sprintf("%5.0fs", smp.TS)
	if warmup {
		line += " (warmup)"
	}
	if len(s.producers) > 0 {
		line += fmt.Sprintf("  produce %7s rec/s %7.1f MiB/s  p99 %-8s", Count(float64(smp.ProducedRecords)/dt),
			float64(smp.ProducedBytes)/dt/(1<<20), p99(s.prodTotal))
	}
	if len(s.consumers) > 0 {
		line += fmt.Sprintf(" | consume %7s rec/s %7.1f MiB/s", Count(float64(smp.ConsumedRecords)/dt),
			float64(smp.ConsumedBytes)/dt/(1<<20))
		if s.consumers[0].e2e {
			line += fmt.Sprintf("  e2e p99 %-8s", p99(s.e2eTotal))
		}
	}
	line += fmt.Sprintf(" | acked %s", Count(float64(t.acked)))
	if t.produceErrors > 0 {
		line += fmt.Sprintf(" errors %d", t.produceErrors)
	}
	fmt.Fprintf(s.progress, "\r\x1b[K%s", line)
}

// done ends the progress line.
func (s *sampler) done() {
	if s.progress != nil {
		fmt.Fprintln(s.progress)
	}
}
