package perf

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fakeReport has S1 and S3 summaries of both brokers, with numbers chosen so that some targets
// are met and some missed.
func fakeReport() *Report {
	s1 := ScenarioResult{Name: "S1", Summary: map[string]Metrics{
		"spate": {MetricProduceMBps: 300, MetricConsumeMBps: 300, MetricCPUPerGB: 1, MetricPeakRSSMiB: 140, MetricLost: 0, MetricDuplicated: 0, MetricReordered: 0, MetricCorrupt: 0},
		"kfake": {MetricProduceMBps: 100, MetricConsumeMBps: 200, MetricCPUPerGB: 2, MetricPeakRSSMiB: 400, MetricLost: 0, MetricDuplicated: 0, MetricReordered: 0, MetricCorrupt: 0},
	}}
	for i := 1; i <= 3; i++ {
		for _, b := range []string{"spate", "kfake"} {
			s1.Runs = append(s1.Runs, RunRecord{Broker: b, Run: i, ProducedRecords: 1000, ConsumedRecords: 1000,
				Metrics: Metrics{MetricProduceMBps: 100 * float64(i), MetricProduceRecs: 1e5, MetricConsumeRecs: 2e5, MetricCPUSeconds: 1, MetricLost: 0}})
		}
	}
	s3 := ScenarioResult{Name: "S3", Summary: map[string]Metrics{
		"spate": {MetricE2EP99: 0.9, MetricE2EP999: 3, MetricCPUPerGB: 1, MetricLost: 5, MetricDuplicated: 0, MetricReordered: 0, MetricCorrupt: 0},
		"kfake": {MetricE2EP99: 2, MetricE2EP999: 4, MetricCPUPerGB: 1},
	}, Runs: []RunRecord{{Broker: "spate", Run: 1}, {Broker: "kfake", Run: 1}}}
	rep := &Report{Brokers: []string{"spate", "kfake"}, Runs: 3, Scenarios: []ScenarioResult{s1, s3}}
	rep.Ratios = Ratios(rep.Scenarios, "spate", "kfake")
	rep.Targets = CheckTargets(rep.Scenarios, "spate", "kfake")
	return rep
}

func TestRatioTable(t *testing.T) {
	rep := fakeReport()
	find := func(sc, metric string) Ratio {
		for _, r := range rep.Ratios {
			if r.Scenario == sc && r.Metric == metric {
				return r
			}
		}
		t.Fatalf("no ratio row %s %s", sc, metric)
		return Ratio{}
	}
	if r := find("S1", MetricProduceMBps); !r.HasRatio || r.Ratio != 3 || r.Values["spate"] != 300 {
		t.Errorf("S1 produce: %+v", r)
	}
	if r := find("S3", MetricE2EP99); !r.HasRatio || r.Ratio != 0.45 {
		t.Errorf("S3 e2e p99: %+v", r)
	}
	if r := find("S3", MetricLost); r.HasRatio || r.Values["spate"] != 5 {
		t.Errorf("fault counts are not ratios: %+v", r)
	}
	if r := find("S3", MetricDuplicated); len(r.Values) != 1 {
		t.Errorf("a metric one broker did not measure: %+v", r)
	}
}

func TestTargetsMetMissedAndNotMeasured(t *testing.T) {
	rep := fakeReport()
	type key struct{ sc, metric, want string }
	got := map[key]Target{}
	for _, tg := range rep.Targets {
		got[key{tg.Scenario, tg.Metric, tg.Want}] = tg
	}
	for _, c := range []struct {
		sc, metric, want, status string
	}{
		{"S1", MetricProduceMBps, "≥ 1.5× kfake", Met},  // 3×
		{"S1", MetricConsumeMBps, "≥ 2× kfake", Missed}, // 1.5×
		{"S1", MetricCPUPerGB, "≤ 0.25× kfake", Missed}, // 0.5×
		{"S1", MetricPeakRSSMiB, "≤ 150 MiB", Met},      // 140
		{"S1", MetricFaults, "", Met},                   // none
		{"S3", MetricE2EP99, "≤ 1 ms", Met},             // 0.9
		{"S3", MetricE2EP999, "≤ 2 ms", Missed},         // 3
		{"S3", MetricE2EP99, "≤ 0.5× kfake", Met},       // 0.45×
		{"S3", MetricE2EP999, "≤ 0.5× kfake", Missed},   // 0.75×
		{"S3", MetricFaults, "", Missed},                // 5 lost
		{"S2", MetricCPUPerGB, "≤ 0.25× kfake", NA},     // did not run
		{"S4", MetricFaults, "", NA},                    // did not run
	} {
		var tg Target
		found := false
		for k, v := range got {
			if k.sc == c.sc && k.metric == c.metric && (c.want == "" || k.want == c.want) {
				tg, found = v, true
			}
		}
		if !found {
			t.Errorf("no target %s %s %s", c.sc, c.metric, c.want)
			continue
		}
		if tg.Status != c.status {
			t.Errorf("%s %s %s: %s (got %q), want %s", c.sc, c.metric, c.want, tg.Status, tg.Got, c.status)
		}
	}
	if len(rep.Targets) != len(targetDefs) {
		t.Errorf("%d targets, want %d", len(rep.Targets), len(targetDefs))
	}
}

// A failed run of the subject misses the zero-fault target even when nothing was lost.
func TestFailedRunMissesTheFaultTarget(t *testing.T) {
	sc := ScenarioResult{Name: "S2", Summary: map[string]Metrics{"spate": {}, "kfake": {}},
		Runs: []RunRecord{{Broker: "spate", Run: 1, Err: "exited during the run"}, {Broker: "spate", Run: 2}}}
	for _, tg := range CheckTargets([]ScenarioResult{sc}, "spate", "kfake") {
		if tg.Scenario == "S2" && tg.Metric == MetricFaults && tg.Status != Missed {
			t.Errorf("fault target with a failed run: %+v", tg)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, fakeReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	for _, want := range []string{"spate/kfake", "3.00×", "≥ 1.5× kfake met", "MISSED  S1 consume MB/s", "lost/dup/reord/corrupt", "5/0/0/0", "n/a"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// benchstat reads "Benchmark<Name> <iterations> (<value> <unit>)+" lines, after "key: value"
// configuration lines.
func TestBenchstatLines(t *testing.T) {
	rep := fakeReport()
	var buf bytes.Buffer
	if err := WriteBenchstat(&buf, rep); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^Benchmark(\S+) (\d+)((?: \S+ \S+)+)$`)
	config := regexp.MustCompile(`^[a-z]+: .*$`)
	names := map[string]int{}
	for l := range strings.Lines(buf.String()) {
		l = strings.TrimSuffix(l, "\n")
		if config.MatchString(l) {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a benchmark line: %q", l)
		}
		names[m[1]]++
		f := strings.Fields(m[3])
		for i := 0; i < len(f); i += 2 {
			if _, err := strconv.ParseFloat(f[i], 64); err != nil {
				t.Errorf("%q: value %q", l, f[i])
			}
		}
		if strings.Contains(m[1], "/produce/") && !strings.Contains(l, " ns/op ") {
			t.Errorf("produce line without ns/op: %q", l)
		}
	}
	for _, n := range []string{"S1/produce/broker=spate", "S1/consume/broker=kfake", "S1/process/broker=spate"} {
		if names[n] != 3 {
			t.Errorf("%s: %d lines, want one per run (3)", n, names[n])
		}
	}
}
