// Command spate-perf runs issue 4's standard scenarios (S1–S4) against a Spate built from the
// tree and, alternating in the same run, against franz-go's kfake (perf/cmd/perf-kfake, with
// a data dir), each broker its own process restarted for every run; it prints one table of
// Spate/kfake ratios of the medians with the targets marked met or missed, and writes
// the results (report.json, table.txt, bench.txt for benchstat, each run's bench result, an
// HTML comparison per scenario, broker logs, profiles) to a folder.
//
//	spate-perf [-runs 3] [-quick] [-scenarios s1,s2,s3,s4] [-brokers spate,kfake] [-profile] [-out dir]
//
// Run from the module (it builds ./cmd/spate and ./perf/cmd/perf-kfake); `make perf` and
// `make perf-quick` call it. Exit status: 0, or 1 when a run failed or lost, duplicated,
// reordered or corrupted records (and with -strict when a target was missed), 2 on usage
// errors, 3 when it could not start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spate-broker/spate/bench"
	"github.com/spate-broker/spate/perf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("spate-perf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 3, "runs per broker per scenario (alternating); the table shows medians")
	quick := fs.Bool("quick", false, "a smoke test: tiny scenarios (≤ 20k records, ≤ 3 s) and 1 run unless -runs is given")
	scenarios := fs.String("scenarios", "s1,s2,s3,s4", "scenarios to run (bench presets or workload files; s1–s4 are issue 4's S1–S4)")
	brokers := fs.String("brokers", "spate,kfake", "brokers to run: spate and/or kfake; the first is the subject of the ratios")
	out := fs.String("out", "", "results folder (default: perf/results/<UTC time> in the module)")
	workDir := fs.String("work-dir", "", "where the brokers' data dirs go (default: the temp folder)")
	profile := fs.Bool("profile", false, "take CPU profiles of the brokers during each run and a heap profile at its end")
	chunk := fs.Duration("profile-chunk", 2*time.Second, "CPU profiles are taken back to back in chunks this long, then merged")
	spateBin := fs.String("spate-bin", "", "use this spate binary (default: build ./cmd/spate)")
	kfakeBin := fs.String("kfake-bin", "", "use this perf-kfake binary (default: build ./perf/cmd/perf-kfake)")
	runTimeout := fs.Duration("run-timeout", 10*time.Minute, "give up on a run after this long")
	strict := fs.Bool("strict", false, "exit 1 when a target is missed")
	var sets []string
	fs.Func("set", "set a workload key in every scenario: -set key=value (repeatable; see spate-bench workloads s1)", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want key=value")
		}
		sets = append(sets, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	runsSet := false
	fs.Visit(func(f *flag.Flag) { runsSet = runsSet || f.Name == "runs" })
	if *quick && !runsSet {
		*runs = 1
	}
	if fs.NArg() > 0 || *runs < 1 {
		fs.Usage()
		return 2
	}
	scs, err := loadScenarios(splitList(*scenarios), *quick, sets)
	if err != nil {
		fmt.Fprintln(stderr, "spate-perf:", err)
		return 2
	}
	names := splitList(*brokers)
	for i, n := range names {
		if n != "spate" && n != "kfake" || slices.Contains(names[:i], n) {
			fmt.Fprintf(stderr, "spate-perf: -brokers: %q (want spate and/or kfake, once each)\n", n)
			return 2
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "spate-perf: -brokers: none given")
		return 2
	}
	root, err := perf.ModuleRoot(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "spate-perf:", err)
		return 3
	}
	if *out == "" {
		*out = filepath.Join(root, "perf", "results", time.Now().UTC().Format("20060102-150405"))
	}
	bins, err := os.MkdirTemp("", "spate-perf-bin-")
	if err != nil {
		fmt.Fprintln(stderr, "spate-perf:", err)
		return 3
	}
	defer os.RemoveAll(bins)
	if *spateBin == "" || *kfakeBin == "" {
		fmt.Fprintln(stdout, "building ./cmd/spate and ./perf/cmd/perf-kfake …")
		s, k, err := perf.BuildBrokers(ctx, root, bins)
		if err != nil {
			fmt.Fprintln(stderr, "spate-perf:", err)
			return 3
		}
		if *spateBin == "" {
			*spateBin = s
		}
		if *kfakeBin == "" {
			*kfakeBin = k
		}
	}
	var bs []perf.Broker
	for _, n := range names {
		bs = append(bs, map[string]perf.Broker{"spate": perf.SpateBroker(*spateBin), "kfake": perf.KfakeBroker(*kfakeBin)}[n])
	}
	cfg := perf.Config{
		Scenarios: scs, Brokers: bs, Runs: *runs, WorkDir: *workDir, OutDir: *out, Quick: *quick,
		Profile: *profile, ProfileChunk: *chunk, RunTimeout: *runTimeout, Log: stdout,
		Notes: []string{"kfake runs with a data dir (kfake.DataDir: segment files, no fsync per write), as Spate by default"},
	}
	if len(sets) > 0 {
		cfg.Notes = append(cfg.Notes, "workload overrides: "+strings.Join(sets, " "))
	}
	fmt.Fprintf(stdout, "results in %s\n", *out)
	rep, err := perf.Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintln(stderr, "spate-perf:", err)
		return 3
	}
	fmt.Fprintln(stdout)
	perf.WriteSummary(stdout, rep)
	fmt.Fprintf(stdout, "\nresults: %s (report.json, table.txt, bench.txt, runs/, logs/, profiles/)\n", *out)
	if err != nil {
		fmt.Fprintln(stderr, "spate-perf:", err)
		return 1
	}
	linkLatest(*out)
	return exitCode(rep, *strict)
}

func loadScenarios(names []string, quick bool, sets []string) ([]perf.Scenario, error) {
	std, err := perf.StandardScenarios()
	if err != nil {
		return nil, err
	}
	var out []perf.Scenario
	for _, n := range names {
		i := slices.IndexFunc(std, func(s perf.Scenario) bool { return strings.EqualFold(s.Name, n) })
		var sc perf.Scenario
		if i >= 0 {
			sc = std[i]
		} else {
			w, err := bench.LoadWorkload(n)
			if err != nil {
				return nil, err
			}
			sc = perf.Scenario{Name: w.Name, Workload: w}
		}
		for _, s := range sets {
			k, v, _ := strings.Cut(s, "=")
			if err := sc.Workload.Set(k, v); err != nil {
				return nil, err
			}
		}
		if quick {
			sc.Workload = perf.Quick(sc.Workload)
		}
		if err := sc.Workload.Validate(); err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, errors.New("no scenarios")
	}
	return out, nil
}

// exitCode: 1 when a run failed or its records were not all delivered intact (or, strict, a
// target was missed).
func exitCode(rep *perf.Report, strict bool) int {
	for _, sc := range rep.Scenarios {
		for _, r := range sc.Runs {
			if r.Err != "" || r.Metrics[perf.MetricLost]+r.Metrics[perf.MetricDuplicated]+
				r.Metrics[perf.MetricReordered]+r.Metrics[perf.MetricCorrupt] > 0 {
				return 1
			}
		}
	}
	if rep.Interrupted {
		return 1
	}
	for _, t := range rep.Targets {
		if strict && t.Status == perf.Missed {
			return 1
		}
	}
	return 0
}

// linkLatest points <results>/latest at the newest results folder (best effort).
func linkLatest(out string) {
	latest := filepath.Join(filepath.Dir(out), "latest")
	if fi, err := os.Lstat(latest); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return // not ours
	}
	os.Remove(latest)
	_ = os.Symlink(filepath.Base(out), latest)
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
