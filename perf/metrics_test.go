package perf

import (
	"math"
	"slices"
	"testing"

	"github.com/spate-broker/spate/bench"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 100, 5}, 5},
	} {
		in := slices.Clone(c.in)
		if got := Median(in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("Median reordered its input: %v", in)
		}
	}
}

// Summaries take medians of measurements, sums of fault counts, and only what was measured.
func TestSummarizeMediansAndFaultSums(t *testing.T) {
	runs := []Metrics{
		{MetricProduceMBps: 100, MetricLost: 0, MetricCorrupt: 1},
		{MetricProduceMBps: 300, MetricLost: 2, MetricCorrupt: 0, MetricE2EP99: 4},
		{MetricProduceMBps: 200, MetricLost: 0, MetricCorrupt: 0},
	}
	got := Summarize(runs)
	want := Metrics{MetricProduceMBps: 200, MetricLost: 2, MetricCorrupt: 1, MetricE2EP99: 4}
	if len(got) != len(want) {
		t.Fatalf("Summarize = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(Summarize(nil)) != 0 {
		t.Error("summary of no runs is not empty")
	}
}

func TestMetricsOfResult(t *testing.T) {
	res := &bench.Result{
		Produce: bench.Phase{Records: 1000, Bytes: 2_000_000, ElapsedS: 2, RecordsPerSec: 500,
			Latency: &bench.Latency{Count: 1000, P50Us: 1500, P99Us: 3000, P999Us: 9000},
			SendLag: &bench.Latency{Count: 1000, P50Us: 20, P99Us: 750, P999Us: 1900}},
		Consume: bench.Phase{Records: 1000, Bytes: 2_000_000, ElapsedS: 1, RecordsPerSec: 1000},
		Verify:  bench.Verification{Checked: true, Lost: 1, Duplicated: 2, Reordered: 3, Corrupt: 4},
	}
	st := ProcStats{UserTicks: 30, SystemTicks: 10, ClockTick: 100, Mem: MemStatus{PeakRSS: 64 << 20}, PeakAnonBytes: 16 << 20}
	m := MetricsOf(res, st)
	want := Metrics{
		MetricProduceMBps: 1, MetricProduceRecs: 500, MetricConsumeMBps: 2, MetricConsumeRecs: 1000,
		MetricAckP50: 1.5, MetricAckP99: 3, MetricAckP999: 9, MetricLagP99: 0.75, MetricLagP999: 1.9,
		MetricCPUSeconds: 0.4, MetricGBMoved: 0.004, MetricCPUPerGB: 100,
		MetricPeakRSSMiB: 64, MetricPeakAnonMiB: 16,
		MetricLost: 1, MetricDuplicated: 2, MetricReordered: 3, MetricCorrupt: 4, MetricProduceErrs: 0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := m[MetricE2EP99]; ok {
		t.Error("end-to-end latency present though the run did not measure it")
	}
}

func TestQuickShrinksTheScenarios(t *testing.T) {
	scs, err := StandardScenarios()
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 4 || scs[0].Name != "S1" || scs[3].Name != "S4" {
		t.Fatalf("standard scenarios: %v", scs)
	}
	for _, sc := range scs {
		q := Quick(sc.Workload)
		if err := q.Validate(); err != nil {
			t.Errorf("%s quick: %v", sc.Name, err)
		}
		if q.Records > 20000 || q.Duration.D() > 3e9 || q.Records == 0 && q.Duration == 0 {
			t.Errorf("%s quick: records %d duration %v", sc.Name, q.Records, q.Duration)
		}
		if q.Partitions != sc.Workload.Partitions || q.Producers != sc.Workload.Producers || q.Rate != sc.Workload.Rate {
			t.Errorf("%s quick changed the shape of the workload", sc.Name)
		}
	}
}
