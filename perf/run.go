package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spate-broker/spate/bench"
)

// Scenario is a named workload of the standard set.
type Scenario struct {
	Name     string // "S1"
	Workload bench.Workload
}

// StandardScenarios are issue 4's S1–S4, from bench's presets s1–s4.
func StandardScenarios() ([]Scenario, error) {
	var out []Scenario
	for _, n := range []string{"s1", "s2", "s3", "s4"} {
		w, err := bench.LoadWorkload(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Scenario{Name: strings.ToUpper(n), Workload: w})
	}
	return out, nil
}

// Quick shrinks a workload to a smoke test of a few seconds: at most 20,000 records, 3 s of
// producing, 0.5 s of warmup; rates, sizes, partitions and clients stay as they are.
func Quick(w bench.Workload) bench.Workload {
	if w.Records > 20000 || w.Records == 0 && w.Duration == 0 {
		w.Records = 20000
	}
	if w.Duration > bench.Duration(3*time.Second) {
		w.Duration = bench.Duration(3 * time.Second)
	}
	w.Warmup = min(w.Warmup, bench.Duration(500*time.Millisecond))
	w.ConsumeTimeout = min(w.ConsumeTimeout, bench.Duration(5*time.Second))
	w.Description = "(quick) " + w.Description
	return w
}

// Config is what Run does.
type Config struct {
	Scenarios []Scenario
	// Brokers are measured in turn; the first is the subject of the ratios and targets, the
	// second (if any) the baseline.
	Brokers []Broker
	Runs    int    // runs per broker per scenario
	WorkDir string // the brokers' data dirs are made here (default: os.TempDir())
	OutDir  string // results (created)
	Quick   bool   // recorded in the report; the scenarios are already shrunk
	// Profile takes CPU profiles of each broker during each run, in back-to-back chunks of
	// ProfileChunk (default 2 s), and a heap profile at the end of it.
	Profile      bool
	ProfileChunk time.Duration
	RunTimeout   time.Duration // per run (default 10 min)
	StopTimeout  time.Duration // SIGTERM to exit, before SIGKILL (default 60 s)
	Settle       time.Duration // pause between runs (default 500 ms)
	Log          io.Writer     // one line per run; nil: quiet
	Notes        []string      // added to the report
}

// Report is everything a Run measured; it is written as report.json.
type Report struct {
	Version     int              `json:"version"`
	Start       time.Time        `json:"start"`
	ElapsedS    float64          `json:"elapsed_s"`
	Machine     Machine          `json:"machine"`
	Brokers     []string         `json:"brokers"` // subject first, then the baseline
	Runs        int              `json:"runs"`
	Quick       bool             `json:"quick"`
	Profile     bool             `json:"profile"`
	Scenarios   []ScenarioResult `json:"scenarios"`
	Ratios      []Ratio          `json:"ratios"`
	Targets     []Target         `json:"targets"`
	Notes       []string         `json:"notes,omitempty"`
	Interrupted bool             `json:"interrupted,omitempty"`
}

// ReportVersion is the version of report.json's format.
const ReportVersion = 1

// Subject is the broker the ratios are about (Spate).
func (r *Report) Subject() string { return r.Brokers[0] }

// Baseline is the broker the subject is compared with (kfake); empty when only one ran.
func (r *Report) Baseline() string {
	if len(r.Brokers) < 2 {
		return ""
	}
	return r.Brokers[1]
}

func (r *Report) summary(scenario, broker string) Metrics {
	for _, sc := range r.Scenarios {
		if sc.Name == scenario {
			return sc.Summary[broker]
		}
	}
	return nil
}

// ScenarioResult is a scenario's runs, in the order they ran, and each broker's summary.
type ScenarioResult struct {
	Name     string             `json:"name"`
	Workload bench.Workload     `json:"workload"`
	Runs     []RunRecord        `json:"runs"`
	Summary  map[string]Metrics `json:"summary"` // broker → medians (fault counts: sums) of its successful runs
}

// RunRecord is one run of one scenario against one broker.
type RunRecord struct {
	Broker   string    `json:"broker"`
	Run      int       `json:"run"` // 1-based, per broker
	Start    time.Time `json:"start"`
	ElapsedS float64   `json:"elapsed_s"` // broker start to stop
	Metrics  Metrics   `json:"metrics,omitempty"`
	// ProducedRecords (acknowledged) and ConsumedRecords (duplicates included) are the
	// iteration counts of the run's benchstat lines.
	ProducedRecords int64     `json:"produced_records"`
	ConsumedRecords int64     `json:"consumed_records"`
	Proc            ProcStats `json:"proc"`
	// Err: the run failed (broker did not start or died, workload could not run, timeout);
	// its numbers are left out of the medians and it counts as a fault.
	Err          string   `json:"error,omitempty"`
	Warnings     []string `json:"warnings,omitempty"` // the load generator's, and stopping the broker
	ClientErrors []string `json:"client_errors,omitempty"`
	Result       string   `json:"result,omitempty"` // bench result JSON, relative to the output folder
	CPUProfile   string   `json:"cpu_profile,omitempty"`
	HeapProfile  string   `json:"heap_profile,omitempty"`
	BrokerLog    string   `json:"broker_log"`
}

// Run runs every scenario Runs times against each broker, alternating brokers (ABBA), and
// writes the results into cfg.OutDir. Cancelling ctx ends it early with what was measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Brokers) == 0 || len(cfg.Scenarios) == 0 || cfg.Runs < 1 {
		return nil, errors.New("perf: need brokers, scenarios and at least one run")
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.ProfileChunk <= 0 {
		cfg.ProfileChunk = 2 * time.Second
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = 10 * time.Minute
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = time.Minute
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	for _, d := range []string{"runs", "logs", "profiles"} {
		if err := os.MkdirAll(filepath.Join(cfg.OutDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("perf: results folder: %w", err)
		}
	}
	rep := &Report{Version: ReportVersion, Start: time.Now(), Machine: ReadMachine(), Runs: cfg.Runs,
		Quick: cfg.Quick, Profile: cfg.Profile, Notes: cfg.Notes}
	for _, b := range cfg.Brokers {
		rep.Brokers = append(rep.Brokers, b.Name)
	}
	for _, sc := range cfg.Scenarios {
		sr := ScenarioResult{Name: sc.Name, Workload: sc.Workload}
		for i := range cfg.Runs {
			for j := range cfg.Brokers {
				b := cfg.Brokers[j]
				if i%2 == 1 { // ABBA: every other round in reverse order
					b = cfg.Brokers[len(cfg.Brokers)-1-j]
				}
				if ctx.Err() != nil {
					break
				}
				rr := runOnce(ctx, cfg, sc, b, i+1)
				logRun(cfg.Log, sc.Name, rr)
				sr.Runs = append(sr.Runs, rr)
			}
		}
		sr.Summary = summarizeRuns(sr.Runs, rep.Brokers)
		rep.Scenarios = append(rep.Scenarios, sr)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Interrupted = ctx.Err() != nil
	rep.ElapsedS = time.Since(rep.Start).Seconds()
	rep.Ratios = Ratios(rep.Scenarios, rep.Subject(), rep.Baseline())
	if rep.Baseline() != "" {
		rep.Targets = CheckTargets(rep.Scenarios, rep.Subject(), rep.Baseline())
	}
	return rep, WriteOutputs(cfg.OutDir, rep)
}

func summarizeRuns(runs []RunRecord, brokers []string) map[string]Metrics {
	out := map[string]Metrics{}
	for _, b := range brokers {
		var ms []Metrics
		for _, r := range runs {
			if r.Broker == b && r.Err == "" {
				ms = append(ms, r.Metrics)
			}
		}
		out[b] = Summarize(ms)
	}
	return out
}

// runOnce starts the broker, runs the scenario's workload against it, reads the broker's CPU
// time and peak RSS, takes its profiles if asked, and stops it.
func runOnce(ctx context.Context, cfg Config, sc Scenario, b Broker, run int) RunRecord {
	runtime.GC() // the previous run's garbage (in this process, the load generator) is not this run's
	debug.FreeOSMemory()
	time.Sleep(cfg.Settle)
	rr := RunRecord{Broker: b.Name, Run: run, Start: time.Now()}
	base := fmt.Sprintf("%s-%s-%d", strings.ToLower(sc.Name), b.Name, run)
	rr.BrokerLog = filepath.Join("logs", base+".log")
	p, err := StartBroker(ctx, b, cfg.WorkDir, filepath.Join(cfg.OutDir, rr.BrokerLog))
	if err != nil {
		rr.Err = err.Error()
		return rr
	}
	var prof *cpuProfiler
	if cfg.Profile {
		rr.CPUProfile = filepath.Join("profiles", base+".cpu.pprof")
		prof = startCPUProfile(p.Admin, cfg.ProfileChunk, filepath.Join(cfg.OutDir, rr.CPUProfile))
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.RunTimeout)
	died := make(chan struct{})
	go func() { // a broker that dies ends the run rather than leaving the clients retrying
		select {
		case <-p.Exited():
			close(died)
			cancel()
		case <-runCtx.Done():
		}
	}()
	// Topics stay: the broker is stopped and its data dir removed instead, so that deleting
	// them is not counted as work of the scenario.
	w := sc.Workload
	w.DeleteTopics = false
	client0, _ := ReadProcStats(os.Getpid())
	res, err := bench.Run(runCtx, bench.Options{Brokers: []string{p.Addr}, Workload: w, Name: b.Name})
	stats, serr := p.Stats() // now, before profiles are wrapped up and the broker is stopped
	client1, cerr := ReadProcStats(os.Getpid())
	runErr := runCtx.Err()
	cancel()
	if prof != nil {
		if perr := prof.stop(); perr != nil {
			rr.Warnings = append(rr.Warnings, perr.Error())
		}
		rr.HeapProfile = filepath.Join("profiles", base+".heap.pprof")
		if herr := fetchHeap(p.Admin, filepath.Join(cfg.OutDir, rr.HeapProfile)); herr != nil {
			rr.Warnings = append(rr.Warnings, herr.Error())
			rr.HeapProfile = ""
		}
	}
	if stopErr := p.Stop(cfg.StopTimeout); stopErr != nil {
		rr.Warnings = append(rr.Warnings, stopErr.Error())
	}
	rr.ElapsedS = time.Since(rr.Start).Seconds()
	rr.Proc = stats
	select {
	case <-died:
		rr.Err = fmt.Sprintf("%s exited during the run (log %s)", b.Name, rr.BrokerLog)
		return rr
	default:
	}
	switch {
	case err != nil:
		rr.Err = err.Error()
		return rr
	case ctx.Err() != nil:
		rr.Err = "interrupted"
	case runErr != nil:
		rr.Err = fmt.Sprintf("timed out after %v", cfg.RunTimeout)
	case serr != nil:
		rr.Err = serr.Error()
	}
	rr.Warnings = append(res.Warnings, rr.Warnings...)
	rr.ClientErrors = res.Errors
	rr.ProducedRecords, rr.ConsumedRecords = res.Produce.Records, res.Consume.Records
	rr.Result = filepath.Join("runs", base+".json")
	res.Name = fmt.Sprintf("%s-%d", b.Name, run)
	if werr := res.WriteFile(filepath.Join(cfg.OutDir, rr.Result)); werr != nil {
		rr.Warnings = append(rr.Warnings, werr.Error())
		rr.Result = ""
	}
	if rr.Err == "" {
		rr.Metrics = MetricsOf(res, stats)
		if cerr == nil && client0.ClockTick > 0 {
			rr.Metrics[MetricClientCPU] = client1.CPUSeconds() - client0.CPUSeconds()
		}
	}
	return rr
}

func logRun(w io.Writer, scenario string, r RunRecord) {
	if r.Err != "" {
		fmt.Fprintf(w, "%s %-6s run %d: FAILED: %s\n", scenario, r.Broker, r.Run, r.Err)
		return
	}
	m := r.Metrics
	fmt.Fprintf(w, "%s %-6s run %d: produce %7.1f MB/s %9.0f rec/s, consume %7.1f MB/s, ack p99 %s ms",
		scenario, r.Broker, r.Run, m[MetricProduceMBps], m[MetricProduceRecs], m[MetricConsumeMBps], formatValue(m[MetricAckP99]))
	if v, ok := m[MetricE2EP99]; ok {
		fmt.Fprintf(w, ", e2e p99 %s p99.9 %s ms", formatValue(v), formatValue(m[MetricE2EP999]))
	}
	fmt.Fprintf(w, ", cpu %.2f s (%.2f s/GB; load generator %.2f s), peak rss %.0f MiB (anon %.0f), %s\n",
		m[MetricCPUSeconds], m[MetricCPUPerGB], m[MetricClientCPU], m[MetricPeakRSSMiB], m[MetricPeakAnonMiB], faultString(m))
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "    warning: %s\n", warn)
	}
	for _, e := range r.ClientErrors {
		fmt.Fprintf(w, "    client error: %s\n", e)
	}
}
