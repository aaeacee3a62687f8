package perf

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spate-broker/spate/bench"
)

// The quick harness end to end: Spate and kfake built from the tree, each started as its own
// process for every run, every standard scenario at tiny sizes, profiles on. Real numbers
// must come back from every run: throughput, CPU seconds and RSS from /proc, and every record
// delivered once and intact.
func TestQuickHarnessAgainstBothBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both brokers (about 30 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bins := t.TempDir()
	spate, kfake, err := BuildBrokers(ctx, root, bins)
	if err != nil {
		t.Fatal(err)
	}
	scs, err := StandardScenarios()
	if err != nil {
		t.Fatal(err)
	}
	for i := range scs {
		w := Quick(scs[i].Workload)
		w.Records = min(w.Records, 10000)
		w.Duration = min(w.Duration, bench.Duration(2*time.Second))
		scs[i].Workload = w
	}
	out := t.TempDir()
	var log strings.Builder
	rep, err := Run(ctx, Config{
		Scenarios: scs, Brokers: []Broker{SpateBroker(spate), KfakeBroker(kfake)}, Runs: 1,
		WorkDir: t.TempDir(), OutDir: out, Quick: true, Profile: true, ProfileChunk: time.Second,
		Settle: 50 * time.Millisecond, RunTimeout: time.Minute, Log: &log,
	})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	WriteSummary(&table, rep)
	t.Log("\n" + table.String())

	if len(rep.Scenarios) != 4 {
		t.Fatalf("%d scenarios ran, want 4", len(rep.Scenarios))
	}
	for _, sc := range rep.Scenarios {
		if len(sc.Runs) != 2 {
			t.Errorf("%s: %d runs, want one per broker", sc.Name, len(sc.Runs))
		}
		for _, r := range sc.Runs {
			checkRun(t, out, sc.Name, r)
		}
	}
	for _, r := range rep.Ratios {
		if r.Scenario == "S1" && r.Metric == MetricProduceMBps && (!r.HasRatio || r.Ratio <= 0) {
			t.Errorf("S1 produce ratio: %+v", r)
		}
	}
	for _, tg := range rep.Targets {
		if tg.Status == NA {
			t.Errorf("target not evaluated: %+v", tg)
		}
		if tg.Metric == MetricFaults && tg.Status != Met {
			t.Errorf("records lost, duplicated, reordered or corrupted: %+v", tg)
		}
	}
	for _, f := range []string{"report.json", "table.txt", "bench.txt", "s1.html", "s4.html"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("output %s: %v", f, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(out, "bench.txt"))
	if !strings.Contains(string(data), "BenchmarkS1/produce/broker=spate ") || !strings.Contains(string(data), "BenchmarkS4/process/broker=kfake ") {
		t.Errorf("bench.txt:\n%s", data)
	}
}

func checkRun(t *testing.T, out, scenario string, r RunRecord) {
	t.Helper()
	what := scenario + " " + r.Broker
	if r.Err != "" {
		t.Errorf("%s: %s", what, r.Err)
		return
	}
	m := r.Metrics
	for _, k := range []string{MetricProduceMBps, MetricProduceRecs, MetricConsumeMBps, MetricConsumeRecs,
		MetricAckP99, MetricCPUSeconds, MetricCPUPerGB, MetricClientCPU, MetricPeakRSSMiB, MetricPeakAnonMiB, MetricGBMoved} {
		if m[k] <= 0 {
			t.Errorf("%s: %s = %v, want > 0", what, k, m[k])
		}
	}
	if scenario == "S3" || scenario == "S4" { // concurrent consumers: end-to-end latency
		if m[MetricE2EP99] <= 0 {
			t.Errorf("%s: no end-to-end latency", what)
		}
	}
	for _, k := range append(faultKeys, MetricProduceErrs) {
		if v, ok := m[k]; !ok || v != 0 {
			t.Errorf("%s: %s = %v (present %v), want 0", what, k, v, ok)
		}
	}
	if r.ProducedRecords == 0 || r.ConsumedRecords != r.ProducedRecords {
		t.Errorf("%s: produced %d, consumed %d", what, r.ProducedRecords, r.ConsumedRecords)
	}
	if r.Proc.Mem.PeakRSS <= 0 || r.Proc.CPUSeconds() <= 0 {
		t.Errorf("%s: /proc: %+v", what, r.Proc)
	}
	for _, f := range []string{r.Result, r.CPUProfile, r.HeapProfile} {
		if fi, err := os.Stat(filepath.Join(out, f)); f == "" || err != nil || fi.Size() == 0 {
			t.Errorf("%s: file %q: %v", what, f, err)
		}
	}
}
