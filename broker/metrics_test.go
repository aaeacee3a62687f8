package broker

import (
	"bytes"
	"strings"
	"testing"
)

// TestMetricsExposeRequestsAndPartitions: after produces, the Prometheus text names the
// request counts, latency histogram, bytes in and the partition's log end offset.
func TestMetricsExposeRequestsAndPartitions(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "metered", 1, nil)
	pid, epoch := initProducerID(t, cl)
	for i := 0; i < 3; i++ {
		if code, _ := rawProduce(t, cl, "metered", pid, epoch, int32(i*2), 2); code != 0 {
			t.Fatalf("produce: %d", code)
		}
	}
	var buf bytes.Buffer
	tb.b.Metrics().WritePrometheus(&buf)
	text := buf.String()
	for _, want := range []string{
		`spate_requests_total{api="Produce"} 3`,
		`spate_partition_log_end_offset{topic="metered",partition="0"} 6`,
		`spate_request_duration_seconds_bucket{api="Produce",vmrange=`,
		`spate_produce_bytes_total `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
