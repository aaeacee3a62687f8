package perf

import (
	"slices"

	"github.com/spate-broker/spate/bench"
)

// Metrics are one run's numbers by key (the Metric* constants). A key is absent when the run
// did not measure it (end-to-end latency of a run that consumed after producing).
type Metrics map[string]float64

// Metric keys. Rates are per second of the phase (bench's produce and consume elapsed times);
// MB are 10^6 bytes of record keys and values (as benchstat's MB/s); latencies are ms.
const (
	MetricProduceMBps = "produce_mb_s"
	MetricProduceRecs = "produce_records_s"
	MetricConsumeMBps = "consume_mb_s"
	MetricConsumeRecs = "consume_records_s"
	MetricAckP50      = "ack_p50_ms"
	MetricAckP99      = "ack_p99_ms"
	MetricAckP999     = "ack_p99_9_ms"
	MetricE2EP50      = "e2e_p50_ms"
	MetricE2EP99      = "e2e_p99_ms"
	MetricE2EP999     = "e2e_p99_9_ms"
	// The load generator's send lag (fixed rate only): how late it handed records to the
	// client after their intended send time. It is part of every latency above, whatever the
	// broker: a latency target below it cannot be shown on this machine with this generator.
	MetricLagP99      = "send_lag_p99_ms"
	MetricLagP999     = "send_lag_p99_9_ms"
	MetricCPUSeconds  = "cpu_s"         // broker user+system CPU over the whole run
	MetricClientCPU   = "client_cpu_s"  // the load generator's (this process's) CPU during the workload
	MetricGBMoved     = "gb_moved"      // produced + consumed, 10^9 bytes
	MetricCPUPerGB    = "cpu_s_per_gb"  // cpu_s / gb_moved
	MetricPeakRSSMiB  = "peak_rss_mib"  // broker VmHWM
	MetricPeakAnonMiB = "peak_anon_mib" // broker RssAnon, highest sampled (heap, stacks: not mapped files)
	MetricLost        = "lost"
	MetricDuplicated  = "duplicated"
	MetricReordered   = "reordered"
	MetricCorrupt     = "corrupt"
	MetricProduceErrs = "produce_errors" // records whose produce failed (not acknowledged)
)

// Direction says which way a metric is better.
type Direction int

const (
	HigherIsBetter Direction = 1
	LowerIsBetter  Direction = -1
	MustBeZero     Direction = 0 // a count of faults: summed over runs, not a median
	Neutral        Direction = 2 // neither: shown, not compared
)

// MetricInfo describes a metric for tables and benchstat lines.
type MetricInfo struct {
	Key    string
	Label  string // in the ratio table
	Unit   string // benchstat unit (benchstat scales it: sec, B and others with SI prefixes)
	Scale  float64
	Better Direction
}

const (
	msToSec   = 1e-3
	mibToByte = 1 << 20
)

// MetricInfos lists the metrics in table order. A benchstat value is the metric × Scale.
var MetricInfos = []MetricInfo{
	{MetricProduceMBps, "produce MB/s", "MB/s", 1, HigherIsBetter},
	{MetricProduceRecs, "produce records/s", "records/s", 1, HigherIsBetter},
	{MetricConsumeMBps, "consume MB/s", "MB/s", 1, HigherIsBetter},
	{MetricConsumeRecs, "consume records/s", "records/s", 1, HigherIsBetter},
	{MetricAckP50, "produce-ack p50 ms", "ack-p50-sec", msToSec, LowerIsBetter},
	{MetricAckP99, "produce-ack p99 ms", "ack-p99-sec", msToSec, LowerIsBetter},
	{MetricAckP999, "produce-ack p99.9 ms", "ack-p99.9-sec", msToSec, LowerIsBetter},
	{MetricE2EP50, "end-to-end p50 ms", "e2e-p50-sec", msToSec, LowerIsBetter},
	{MetricE2EP99, "end-to-end p99 ms", "e2e-p99-sec", msToSec, LowerIsBetter},
	{MetricE2EP999, "end-to-end p99.9 ms", "e2e-p99.9-sec", msToSec, LowerIsBetter},
	{MetricLagP99, "generator send lag p99 ms", "send-lag-p99-sec", msToSec, Neutral},
	{MetricLagP999, "generator send lag p99.9 ms", "send-lag-p99.9-sec", msToSec, Neutral},
	{MetricCPUSeconds, "broker CPU s", "cpu-sec", 1, LowerIsBetter},
	{MetricClientCPU, "load generator CPU s", "client-cpu-sec", 1, Neutral},
	{MetricGBMoved, "GB moved", "GB", 1, Neutral},
	{MetricCPUPerGB, "broker CPU s/GB", "cpu-sec/GB", 1, LowerIsBetter},
	{MetricPeakRSSMiB, "broker peak RSS MiB", "peak-rss-B", mibToByte, LowerIsBetter},
	{MetricPeakAnonMiB, "broker peak anon RSS MiB", "peak-anon-B", mibToByte, LowerIsBetter},
	{MetricLost, "lost", "lost", 1, MustBeZero},
	{MetricDuplicated, "duplicated", "duplicated", 1, MustBeZero},
	{MetricReordered, "reordered", "reordered", 1, MustBeZero},
	{MetricCorrupt, "corrupt", "corrupt", 1, MustBeZero},
	{MetricProduceErrs, "produce errors", "produce-errors", 1, MustBeZero},
}

// Info returns the description of a metric key.
func Info(key string) MetricInfo {
	for _, m := range MetricInfos {
		if m.Key == key {
			return m
		}
	}
	panic("BUG: unknown metric " + key)
}

// MetricsOf takes a run's numbers from the load generator's result and the broker's /proc
// accounting.
func MetricsOf(res *bench.Result, st ProcStats) Metrics {
	m := Metrics{}
	phase := func(p bench.Phase, mbps, recs string) {
		if p.ElapsedS > 0 && p.Records > 0 {
			m[mbps] = float64(p.Bytes) / p.ElapsedS / 1e6
			m[recs] = p.RecordsPerSec
		}
	}
	lat := func(l *bench.Latency, p50, p99, p999 string) {
		if l != nil && l.Count > 0 {
			m[p50], m[p99], m[p999] = float64(l.P50Us)/1e3, float64(l.P99Us)/1e3, float64(l.P999Us)/1e3
		}
	}
	phase(res.Produce, MetricProduceMBps, MetricProduceRecs)
	phase(res.Consume, MetricConsumeMBps, MetricConsumeRecs)
	lat(res.Produce.Latency, MetricAckP50, MetricAckP99, MetricAckP999)
	lat(res.Consume.EndToEnd, MetricE2EP50, MetricE2EP99, MetricE2EP999)
	if l := res.Produce.SendLag; l != nil && l.Count > 0 {
		m[MetricLagP99], m[MetricLagP999] = float64(l.P99Us)/1e3, float64(l.P999Us)/1e3
	}
	m[MetricCPUSeconds] = st.CPUSeconds()
	gb := float64(res.Produce.Bytes+res.Consume.Bytes) / 1e9
	m[MetricGBMoved] = gb
	if gb > 0 {
		m[MetricCPUPerGB] = st.CPUSeconds() / gb
	}
	m[MetricPeakRSSMiB] = float64(st.Mem.PeakRSS) / (1 << 20)
	if st.PeakAnonBytes > 0 {
		m[MetricPeakAnonMiB] = float64(st.PeakAnonBytes) / (1 << 20)
	}
	v := res.Verify
	m[MetricLost], m[MetricDuplicated] = float64(v.Lost), float64(v.Duplicated)
	m[MetricReordered], m[MetricCorrupt] = float64(v.Reordered), float64(v.Corrupt)
	m[MetricProduceErrs] = float64(res.Produce.Errors)
	return m
}

// Summarize folds runs into one Metrics: the median of each measured metric, the sum of each
// fault count.
func Summarize(runs []Metrics) Metrics {
	out := Metrics{}
	for _, info := range MetricInfos {
		var vals []float64
		for _, r := range runs {
			if v, ok := r[info.Key]; ok {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			continue
		}
		if info.Better == MustBeZero {
			var sum float64
			for _, v := range vals {
				sum += v
			}
			out[info.Key] = sum
		} else {
			out[info.Key] = Median(vals)
		}
	}
	return out
}

// Median returns the middle value (the mean of the two middle values of an even count); 0
// for none.
func Median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
