package perf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/spate-broker/spate/bench"
	"github.com/spate-broker/spate/bench/report"
)

// Machine describes where the run happened (brokers and load generator share it).
type Machine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Kernel      string `json:"kernel,omitempty"`
	MemTotalMiB int64  `json:"mem_total_mib,omitempty"`
	GoVersion   string `json:"go_version"`
}

// ReadMachine describes this machine (from /proc where there is one).
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = procField(data, "model name")
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(procField(data, "MemTotal")); len(f) == 2 && f[1] == "kB" {
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			m.MemTotalMiB = kb >> 10
		}
	}
	return m
}

// procField returns the value of the first "key: value" line with this key.
func procField(data []byte, key string) string {
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (m Machine) String() string {
	s := fmt.Sprintf("%d × %s, %s/%s", m.CPUs, m.CPUModel, m.OS, m.Arch)
	if m.Kernel != "" {
		s += " " + m.Kernel
	}
	if m.MemTotalMiB > 0 {
		s += fmt.Sprintf(", %.1f GiB RAM", float64(m.MemTotalMiB)/1024)
	}
	return s + ", " + m.GoVersion
}

// WriteOutputs writes report.json, table.txt, bench.txt (benchstat) and, per scenario, an
// HTML page comparing its runs (bench/report) into dir.
func WriteOutputs(dir string, rep *Report) error {
	var table bytes.Buffer
	WriteSummary(&table, rep)
	var bench bytes.Buffer
	if err := WriteBenchstat(&bench, rep); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("perf: encode report: %w", err)
	}
	for name, data := range map[string][]byte{"report.json": append(js, '\n'), "table.txt": table.Bytes(), "bench.txt": bench.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("perf: %w", err)
		}
	}
	for _, sc := range rep.Scenarios {
		if err := writeComparison(dir, sc); err != nil {
			return err
		}
	}
	return nil
}

// WriteSummary writes the header (machine, settings) and the table.
func WriteSummary(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "perf: %s, %d run(s) per broker per scenario, alternating; medians", rep.Start.Format("2006-01-02 15:04:05 MST"), rep.Runs)
	if rep.Quick {
		fmt.Fprint(w, " (QUICK: tiny sizes, a smoke test, not the standard scenarios)")
	}
	if rep.Interrupted {
		fmt.Fprint(w, " (INTERRUPTED)")
	}
	fmt.Fprintf(w, "\nmachine: %s\n", rep.Machine)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
	if err := WriteTable(w, rep); err != nil {
		fmt.Fprintf(w, "table: %v\n", err)
	}
	var failed []string
	for _, sc := range rep.Scenarios {
		for _, r := range sc.Runs {
			if r.Err != "" {
				failed = append(failed, fmt.Sprintf("%s %s run %d: %s", sc.Name, r.Broker, r.Run, r.Err))
			}
		}
	}
	if len(failed) > 0 {
		fmt.Fprintln(w, "\nfailed runs:")
		for _, f := range failed {
			fmt.Fprintln(w, "  "+f)
		}
	}
}

// WriteBenchstat writes each successful run as benchmark result lines, so that runs can be
// compared with benchstat (`benchstat -col /broker bench.txt`, or `benchstat old/bench.txt
// new/bench.txt`):
//
//	BenchmarkS1/produce/broker=spate  300000  3210 ns/op  312.1 MB/s  311500 records/s  0.0021 ack-p50-sec …
//	BenchmarkS1/consume/broker=spate  300000  …
//	BenchmarkS1/process/broker=spate  1  2.53 cpu-sec  0.84 cpu-sec/GB  1.29e+08 peak-rss-B  0 lost …
//
// The iteration count of produce and consume lines is records, and ns/op is per record.
func WriteBenchstat(w io.Writer, rep *Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "goos: %s\ngoarch: %s\npkg: github.com/spate-broker/spate/perf\ncpu: %s\n",
		rep.Machine.OS, rep.Machine.Arch, rep.Machine.CPUModel)
	groups := []struct {
		name    string
		records string
		keys    []string
	}{
		{"produce", MetricProduceRecs, []string{MetricProduceMBps, MetricProduceRecs, MetricAckP50, MetricAckP99, MetricAckP999}},
		{"consume", MetricConsumeRecs, []string{MetricConsumeMBps, MetricConsumeRecs, MetricE2EP50, MetricE2EP99, MetricE2EP999}},
		{"process", "", []string{MetricCPUSeconds, MetricCPUPerGB, MetricClientCPU, MetricPeakRSSMiB, MetricPeakAnonMiB, MetricLost, MetricDuplicated, MetricReordered, MetricCorrupt}},
	}
	for _, sc := range rep.Scenarios {
		for _, r := range sc.Runs {
			if r.Err != "" {
				continue
			}
			for _, g := range groups {
				line := fmt.Sprintf("Benchmark%s/%s/broker=%s", sc.Name, g.name, r.Broker)
				n := int64(1)
				if g.records != "" {
					rate, ok := r.Metrics[g.records]
					if !ok || rate == 0 {
						continue
					}
					n = max(1, r.ProducedRecords)
					if g.name == "consume" {
						n = max(1, r.ConsumedRecords)
					}
					line += fmt.Sprintf(" %d %.1f ns/op", n, 1e9/rate)
				} else {
					line += fmt.Sprintf(" %d", n)
				}
				values := 0
				for _, k := range g.keys {
					if v, ok := r.Metrics[k]; ok {
						info := Info(k)
						line += " " + strconv.FormatFloat(v*info.Scale, 'g', 6, 64) + " " + info.Unit
						values++
					}
				}
				if values > 0 {
					fmt.Fprintln(bw, line)
				}
			}
		}
	}
	return bw.Flush()
}

// writeComparison renders all runs of a scenario side by side (bench/report).
func writeComparison(dir string, sc ScenarioResult) error {
	var rs []*bench.Result
	for _, r := range sc.Runs {
		if r.Result == "" {
			continue
		}
		res, err := bench.ReadResult(filepath.Join(dir, r.Result))
		if err != nil {
			return fmt.Errorf("perf: %w", err)
		}
		rs = append(rs, res)
	}
	if len(rs) == 0 {
		return nil
	}
	path := filepath.Join(dir, strings.ToLower(sc.Name)+".html")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("perf: %w", err)
	}
	err = report.WriteComparison(f, rs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("perf: comparison %s: %w", path, err)
	}
	return nil
}
