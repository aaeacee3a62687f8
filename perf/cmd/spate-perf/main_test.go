package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spate-broker/spate/perf"
)

func TestLoadScenarios(t *testing.T) {
	scs, err := loadScenarios([]string{"s1", "S3", "smoke"}, false, []string{"records=1234", "linger=2ms"})
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 3 || scs[0].Name != "S1" || scs[1].Name != "S3" || scs[2].Name != "smoke" {
		t.Fatalf("scenarios: %+v", scs)
	}
	for _, sc := range scs {
		if sc.Workload.Records != 1234 || sc.Workload.Linger.String() != "2ms" {
			t.Errorf("%s: -set not applied: records %d linger %v", sc.Name, sc.Workload.Records, sc.Workload.Linger)
		}
	}
	q, err := loadScenarios([]string{"s3"}, true, nil)
	if err != nil || q[0].Workload.Duration.D().Seconds() > 3 {
		t.Errorf("quick s3: %+v, %v", q, err)
	}
	for _, bad := range [][]string{{"nosuch"}, {}} {
		if _, err := loadScenarios(bad, false, nil); err == nil {
			t.Errorf("loadScenarios(%q): no error", bad)
		}
	}
	if _, err := loadScenarios([]string{"s1"}, false, []string{"nosuchkey=1"}); err == nil {
		t.Error("unknown workload key: no error")
	}
}

// Exit 1 for a failed run or a fault; a missed target only with -strict.
func TestExitCode(t *testing.T) {
	rep := func(r perf.RunRecord, status string) *perf.Report {
		return &perf.Report{Scenarios: []perf.ScenarioResult{{Name: "S1", Runs: []perf.RunRecord{r}}},
			Targets: []perf.Target{{Scenario: "S1", Status: status}}}
	}
	ok := perf.RunRecord{Metrics: perf.Metrics{perf.MetricLost: 0}}
	for _, c := range []struct {
		rep    *perf.Report
		strict bool
		want   int
	}{
		{rep(ok, perf.Met), true, 0},
		{rep(ok, perf.Missed), false, 0},
		{rep(ok, perf.Missed), true, 1},
		{rep(perf.RunRecord{Err: "broker exited"}, perf.Met), false, 1},
		{rep(perf.RunRecord{Metrics: perf.Metrics{perf.MetricDuplicated: 1}}, perf.Met), false, 1},
	} {
		if got := exitCode(c.rep, c.strict); got != c.want {
			t.Errorf("exitCode(%+v, strict %v) = %d, want %d", c.rep.Scenarios[0].Runs[0], c.strict, got, c.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-runs", "0"}, {"-scenarios", "nosuch"}, {"extra"}, {"-set", "novalue"}, {"-brokers", "kafka"}, {"-brokers", "spate,spate"}} {
		var stderr strings.Builder
		if code := run(context.Background(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}
