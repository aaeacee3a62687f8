// Command spate-bench is a load generator for Kafka-compatible brokers (Spate, Apache Kafka,
// Redpanda, kfake …): it runs a workload, verifies every record, and writes results as JSON
// and as a self-contained HTML report; it also compares several results side by side.
//
//	spate-bench run [-brokers host:port,…] [-workload s1|file.yaml] [-<key> value …] [-json r.json] [-html r.html]
//	spate-bench report [-o r.html] r.json
//	spate-bench compare [-o comparison.html] a.json b.json …
//	spate-bench workloads [name]
//
// Every workload key (see `spate-bench workloads s1`) is also a flag of run, with '-' for '_'.
// run exits 1 when records were lost, duplicated, reordered or corrupted (unless -check=false),
// 2 on usage errors, 3 when the run could not start.
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
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/spate-broker/spate/bench"
	"github.com/spate-broker/spate/bench/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: spate-bench <command> [flags]

commands:
  run        run a workload against a broker; print a summary, write JSON and HTML results
  report     render a result JSON file as a self-contained HTML report
  compare    compare result JSON files: a text table, and an HTML page with plots
  workloads  list the preset workloads, or print one as a workload file

'spate-bench <command> -h' lists a command's flags.
`

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1 // verification failed, or a report could not be written
	exitUsage     = 2
	exitCannotRun = 3
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "report":
		return cmdReport(args[1:], stdout, stderr)
	case "compare":
		return cmdCompare(args[1:], stdout, stderr)
	case "workloads":
		return cmdWorkloads(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "spate-bench: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: spate-bench %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// setting is one workload key given on the command line, applied over the loaded workload.
type setting struct{ key, value string }

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "run [flags]", stderr)
	brokers := fs.String("brokers", envOr("SPATE_BENCH_BROKERS", "127.0.0.1:9092"), "comma-separated seed brokers (env SPATE_BENCH_BROKERS)")
	workload := fs.String("workload", "smoke", "a preset ("+strings.Join(bench.Presets(), ", ")+") or a workload file (.yaml or .json)")
	name := fs.String("name", "", "label of this run in reports, e.g. the broker's name (default: the workload's name)")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	htmlOut := fs.String("html", "", "write the HTML report to this file")
	quiet := fs.Bool("quiet", false, "no progress line and no summary (the progress line only shows on a terminal anyway)")
	check := fs.Bool("check", true, "exit 1 when records were lost, duplicated, reordered or corrupted")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load generator itself to this file")
	traceOut := fs.String("trace", "", "write an execution trace of the load generator itself to this file (go tool trace)")
	var settings []setting
	fs.Func("set", "set a workload key: -set key=value (repeatable; same as -<key> value)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return errors.New("want key=value")
		}
		settings = append(settings, setting{k, v})
		return nil
	})
	for _, f := range bench.WorkloadFields() {
		if fs.Lookup(f.Flag) != nil { // -name labels the run; the workload's name takes -set name=…
			continue
		}
		fs.Func(f.Flag, "workload: "+f.Help, func(v string) error {
			settings = append(settings, setting{f.Key, v})
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spate-bench run: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	w, err := bench.LoadWorkload(*workload)
	if err != nil {
		fmt.Fprintln(stderr, "spate-bench run:", err)
		return exitUsage
	}
	for _, s := range settings {
		if err := w.Set(s.key, s.value); err != nil {
			fmt.Fprintln(stderr, "spate-bench run:", err)
			return exitUsage
		}
	}
	if err := w.Validate(); err != nil {
		fmt.Fprintln(stderr, "spate-bench run:", err)
		return exitUsage
	}
	opts := bench.Options{Brokers: splitList(*brokers), Workload: w, Name: *name}
	if !*quiet && isTerminal(stdout) {
		opts.Progress = stdout
	}
	for _, r := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{{*cpuProfile, pprof.StartCPUProfile, pprof.StopCPUProfile}, {*traceOut, trace.Start, trace.Stop}} {
		if r.path == "" {
			continue
		}
		f, err := os.Create(r.path)
		if err == nil {
			err = r.start(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "spate-bench run:", err)
			return exitUsage
		}
		defer func() {
			r.stop()
			f.Close()
		}()
	}
	res, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "spate-bench run:", err)
		return exitCannotRun
	}
	if !*quiet {
		res.Summary(stdout)
	}
	code := exitOK
	if *jsonOut != "" {
		if err := res.WriteFile(*jsonOut); err != nil {
			fmt.Fprintln(stderr, "spate-bench run:", err)
			code = exitFailed
		}
	}
	if *htmlOut != "" {
		if err := writeHTML(*htmlOut, func(w io.Writer) error { return report.Write(w, res) }); err != nil {
			fmt.Fprintln(stderr, "spate-bench run:", err)
			code = exitFailed
		}
	}
	if *check && res.Verify.Checked && !res.Verify.OK() {
		fmt.Fprintln(stderr, "spate-bench run: verification failed")
		code = exitFailed
	}
	return code
}

func cmdReport(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("report", "report [-o report.html] result.json", stderr)
	out := fs.String("o", "", "output file (default: the result's name with .html)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	res, err := bench.ReadResult(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "spate-bench report:", err)
		return exitFailed
	}
	path := *out
	if path == "" {
		path = strings.TrimSuffix(fs.Arg(0), filepath.Ext(fs.Arg(0))) + ".html"
	}
	if err := writeHTML(path, func(w io.Writer) error { return report.Write(w, res) }); err != nil {
		fmt.Fprintln(stderr, "spate-bench report:", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, "wrote", path)
	return exitOK
}

func cmdCompare(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("compare", "compare [-o comparison.html] [-names a,b,…] a.json b.json …", stderr)
	out := fs.String("o", "comparison.html", "HTML output file (empty: only the text table)")
	names := fs.String("names", "", "comma-separated labels for the runs, in order (default: each run's name; the file name where names repeat)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return exitUsage
	}
	var rs []*bench.Result
	for _, path := range fs.Args() {
		r, err := bench.ReadResult(path)
		if err != nil {
			fmt.Fprintln(stderr, "spate-bench compare:", err)
			return exitFailed
		}
		rs = append(rs, r)
	}
	if *names != "" {
		labels := splitList(*names)
		if len(labels) != len(rs) {
			fmt.Fprintf(stderr, "spate-bench compare: %d names for %d results\n", len(labels), len(rs))
			return exitUsage
		}
		for i, l := range labels {
			rs[i].Name = l
		}
	} else {
		uniqueNames(rs, fs.Args())
	}
	if err := report.CompareText(stdout, rs); err != nil {
		fmt.Fprintln(stderr, "spate-bench compare:", err)
		return exitFailed
	}
	if *out != "" {
		if err := writeHTML(*out, func(w io.Writer) error { return report.WriteComparison(w, rs) }); err != nil {
			fmt.Fprintln(stderr, "spate-bench compare:", err)
			return exitFailed
		}
		fmt.Fprintln(stdout, "wrote", *out)
	}
	return exitOK
}

// uniqueNames renames runs whose names repeat after their files.
func uniqueNames(rs []*bench.Result, paths []string) {
	count := map[string]int{}
	for _, r := range rs {
		count[r.Name]++
	}
	for i, r := range rs {
		if count[r.Name] > 1 {
			r.Name = strings.TrimSuffix(filepath.Base(paths[i]), filepath.Ext(paths[i]))
		}
	}
}

func cmdWorkloads(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("workloads", "workloads [name]", stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	switch fs.NArg() {
	case 0:
		for _, n := range bench.Presets() {
			w, err := bench.LoadWorkload(n)
			if err != nil {
				fmt.Fprintln(stderr, "spate-bench workloads:", err)
				return exitFailed
			}
			fmt.Fprintf(stdout, "%-8s %s\n", n, w.Description)
		}
		return exitOK
	case 1:
		src, err := bench.PresetSource(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "spate-bench workloads: no preset %q (have %s)\n", fs.Arg(0), strings.Join(bench.Presets(), ", "))
			return exitUsage
		}
		w, _ := bench.LoadWorkload(fs.Arg(0))
		fmt.Fprintf(stdout, "%s\n# With every default filled in:\n#\n", strings.TrimRight(string(src), "\n"))
		for line := range strings.Lines(string(w.YAML())) {
			fmt.Fprintf(stdout, "#   %s", line)
		}
		return exitOK
	}
	fs.Usage()
	return exitUsage
}

func writeHTML(path string, render func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	err = render(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// isTerminal reports whether w is a character device (a terminal), where the progress line's
// carriage returns make sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
