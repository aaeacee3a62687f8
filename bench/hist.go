package bench

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are kept in HdrHistograms of microseconds: 1 µs to 5 min, 3 significant digits
// (every value within 0.1% of the truth; values below 2,048 µs exact). About 160 KiB each.
const (
	histLowestUs  = 1
	histHighestUs = int64(5 * time.Minute / time.Microsecond)
	histDigits    = 3
)

func newHist() *hdr.Histogram { return hdr.New(histLowestUs, histHighestUs, histDigits) }

// toUs converts a latency to what the histograms hold, clamped to their range: a latency
// below 1 µs (or negative: the clock stepped back) counts as 1 µs, one beyond 5 min as 5 min.
func toUs(d time.Duration) int64 {
	return min(max(int64(d/time.Microsecond), histLowestUs), histHighestUs)
}

// interval is a latency histogram filled by one producer or consumer and emptied by the
// sampler once a second.
type interval struct {
	mu sync.Mutex
	h  *hdr.Histogram // Invariant: guarded by mu.
}

func newInterval() *interval { return &interval{h: newHist()} }

// recordLocked adds one latency; the caller holds mu.
func (iv *interval) recordLocked(d time.Duration) {
	_ = iv.h.RecordValue(toUs(d)) // cannot fail: toUs clamps to the range
}

func (iv *interval) record(d time.Duration) {
	iv.mu.Lock()
	iv.recordLocked(d)
	iv.mu.Unlock()
}

// drainInto adds the interval's values to dst and empties the interval.
func (iv *interval) drainInto(dst *hdr.Histogram) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.h.TotalCount() == 0 {
		return
	}
	dst.Merge(iv.h)
	iv.h.Reset()
}

// summarize returns a histogram's summary for a Result.
func summarize(h *hdr.Histogram, withHDR bool) *Latency {
	if h.TotalCount() == 0 {
		return nil
	}
	l := &Latency{
		Count:   h.TotalCount(),
		MinUs:   h.Min(),
		MeanUs:  h.Mean(),
		P50Us:   h.ValueAtQuantile(50),
		P90Us:   h.ValueAtQuantile(90),
		P99Us:   h.ValueAtQuantile(99),
		P999Us:  h.ValueAtQuantile(99.9),
		P9999Us: h.ValueAtQuantile(99.99),
		MaxUs:   h.Max(),
	}
	for _, b := range h.CumulativeDistributionWithTicks(5) {
		if n := len(l.Percentiles); n > 0 && l.Percentiles[n-1].P == b.Quantile {
			continue
		}
		l.Percentiles = append(l.Percentiles, Percentile{P: b.Quantile, Us: b.ValueAt})
	}
	if withHDR {
		if enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
			l.HDR = string(enc)
		}
	}
	return l
}

// point returns a histogram's per-second summary for a Sample.
func point(h *hdr.Histogram) LatencyPoint {
	if h.TotalCount() == 0 {
		return LatencyPoint{}
	}
	return LatencyPoint{
		Count:  h.TotalCount(),
		P50Us:  h.ValueAtQuantile(50),
		P99Us:  h.ValueAtQuantile(99),
		P999Us: h.ValueAtQuantile(99.9),
		MaxUs:  h.Max(),
	}
}
