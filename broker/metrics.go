package broker

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metrics are the broker's Prometheus series (VictoriaMetrics/metrics: lock-free counters,
// cheap enough to stay on in benchmarks). WritePrometheus exposes them.
type Metrics struct {
	set         *metrics.Set
	requests    map[int16]*metrics.Counter
	errors      map[int16]*metrics.Counter
	latency     map[int16]*metrics.Histogram
	unsupported *metrics.Counter
	malformed   *metrics.Counter
	bytesIn     *metrics.Counter
	bytesOut    *metrics.Counter
}

func newMetrics() *Metrics {
	s := metrics.NewSet()
	m := &Metrics{
		set:         s,
		requests:    map[int16]*metrics.Counter{},
		errors:      map[int16]*metrics.Counter{},
		latency:     map[int16]*metrics.Histogram{},
		unsupported: s.NewCounter("spate_requests_unsupported_total"),
		malformed:   s.NewCounter("spate_requests_malformed_total"),
		bytesIn:     s.NewCounter("spate_produce_bytes_total"),
		bytesOut:    s.NewCounter("spate_fetch_bytes_total"),
	}
	for k := range apis {
		name := kmsg.NameForKey(k)
		m.requests[k] = s.NewCounter(fmt.Sprintf(`spate_requests_total{api=%q}`, name))
		m.errors[k] = s.NewCounter(fmt.Sprintf(`spate_request_errors_total{api=%q}`, name))
		m.latency[k] = s.NewHistogram(fmt.Sprintf(`spate_request_duration_seconds{api=%q}`, name))
	}
	return m
}

func (m *Metrics) request(key int16) {
	if c := m.requests[key]; c != nil {
		c.Inc()
	}
}

// done records a request's latency, from dispatch to reply.
func (m *Metrics) done(h *reqHeader) {
	if l := m.latency[h.key]; l != nil {
		l.UpdateDuration(h.start)
	}
}

func (m *Metrics) failed(key int16) {
	if c := m.errors[key]; c != nil {
		c.Inc()
	}
}

func partitionLabels(p *partition) string {
	return fmt.Sprintf(`{topic=%q,partition="%d"}`, p.tp.Topic, p.tp.Partition)
}

// addPartition registers a partition's gauges (log end offset, log start offset, size).
func (m *Metrics) addPartition(p *partition) {
	l := partitionLabels(p)
	m.set.GetOrCreateGauge("spate_partition_log_end_offset"+l, func() float64 { return float64(p.log.LogEndOffset()) })
	m.set.GetOrCreateGauge("spate_partition_log_start_offset"+l, func() float64 { return float64(p.log.LogStartOffset()) })
	m.set.GetOrCreateGauge("spate_partition_size_bytes"+l, func() float64 { return float64(p.log.Size()) })
}

func (m *Metrics) removePartition(p *partition) {
	l := partitionLabels(p)
	for _, n := range []string{"spate_partition_log_end_offset", "spate_partition_log_start_offset", "spate_partition_size_bytes"} {
		m.set.UnregisterMetric(n + l)
	}
}

// Set returns the metric set, for the admin HTTP endpoint.
func (b *Broker) Metrics() *metrics.Set { return b.metrics.set }
