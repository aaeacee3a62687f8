package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spate-broker/spate/bench"
	"github.com/spate-broker/spate/bench/spatetest"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRunReportCompare drives the commands as a user would: run twice against a broker
// (flags over a preset), then render one result and compare both.
func TestRunReportCompare(t *testing.T) {
	addr := spatetest.Start(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	code, out, errs := runCmd(t, "run", "-brokers", addr, "-workload", "smoke", "-records", "1500", "-rate", "3000",
		"-record-size", "512", "-set", "partitions=2", "-name", "first", "-json", a, "-html", filepath.Join(dir, "a.html"))
	if code != 0 {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "verify   OK: acked 1500") || strings.Contains(out, "\r") {
		t.Errorf("summary:\n%s", out)
	}
	res, err := bench.ReadResult(a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "first" || res.Workload.Name != "smoke" || res.Workload.Partitions != 2 || res.Workload.RecordSize != bench.FixedSize(512) || res.Verify.Unique != 1500 {
		t.Errorf("result: name %q workload %+v verify %+v", res.Name, res.Workload, res.Verify)
	}
	prof, tr := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "trace.out")
	if code, out, errs = runCmd(t, "run", "-quiet", "-brokers", addr, "-workload", "smoke", "-records", "1000", "-rate", "0", "-consume", "after", "-json", b,
		"-cpuprofile", prof, "-trace", tr); code != 0 || out != "" {
		t.Fatalf("quiet run: exit %d, stdout %q\n%s", code, out, errs)
	}
	// The generator's own profile (gzipped protobuf) and execution trace ("go 1.N trace").
	if p, err := os.ReadFile(prof); err != nil || len(p) < 2 || p[0] != 0x1f || p[1] != 0x8b {
		t.Errorf("-cpuprofile: %v, %d bytes", err, len(p))
	}
	if p, err := os.ReadFile(tr); err != nil || !bytes.HasPrefix(p, []byte("go 1.")) || !bytes.Contains(p[:16], []byte(" trace")) || len(p) < 1000 {
		t.Errorf("-trace: %v, %d bytes", err, len(p))
	}

	if code, out, errs = runCmd(t, "report", a); code != 0 {
		t.Fatalf("report: exit %d\n%s", code, errs)
	}
	page, err := os.ReadFile(filepath.Join(dir, "a.html"))
	if err != nil || !strings.Contains(string(page), `<svg id="throughput"`) || !strings.Contains(out, "a.html") {
		t.Errorf("report: %v, %q", err, out)
	}

	cmp := filepath.Join(dir, "cmp.html")
	if code, out, errs = runCmd(t, "compare", "-o", cmp, a, b); code != 0 {
		t.Fatalf("compare: exit %d\n%s", code, errs)
	}
	// b's run is named after its workload (smoke); a's is "first".
	for _, want := range []string{"first", "smoke", "smoke / first", "lost"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	page, err = os.ReadFile(cmp)
	if err != nil || !strings.Contains(string(page), "first vs smoke") {
		t.Errorf("comparison page: %v", err)
	}
	// The same result twice: the names repeat, so the files name them.
	if code, out, _ = runCmd(t, "compare", "-o", "", a, a); code != 0 || !strings.Contains(out, "a / a") {
		t.Errorf("compare a a: exit %d\n%s", code, out)
	}
	if code, out, _ = runCmd(t, "compare", "-o", "", "-names", "x,y", a, b); code != 0 || !strings.Contains(out, "y / x") {
		t.Errorf("compare -names: exit %d\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"run", "-workload", "no-such-preset"},
		{"run", "-acks", "2"},
		{"run", "-record-size", "huge"},
		{"run", "-set", "nokey"},
		{"run", "extra-arg"},
		{"report"},
		{"compare"},
		{"compare", "-names", "one", filepath.Join(t.TempDir(), "missing.json")},
		{"workloads", "no-such-preset"},
	} {
		code, _, errs := runCmd(t, args...)
		if code == 0 || errs == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}

func TestWorkloadsCommand(t *testing.T) {
	code, out, _ := runCmd(t, "workloads")
	if code != 0 {
		t.Fatal(code)
	}
	for _, p := range bench.Presets() {
		if !strings.Contains(out, p+" ") {
			t.Errorf("workloads lacks %s:\n%s", p, out)
		}
	}
	code, out, _ = runCmd(t, "workloads", "s1")
	if code != 0 || !strings.Contains(out, "records: 300000") || !strings.Contains(out, "#   consume_timeout: 10s") {
		t.Errorf("workloads s1: exit %d\n%s", code, out)
	}
}
