// Package report renders bench results as self-contained HTML pages: one run's report
// (Write) and a side-by-side comparison of several runs (WriteComparison), plus the
// comparison as a text table for terminals (CompareText).
//
// Pages have no scripts and fetch nothing: the style is inline and every plot is an inline SVG
// drawn here (chart.go), so a report can be mailed, archived or opened offline. The plots:
// throughput over time, latency percentiles over time, and the latency distribution
// (HdrHistogram's percentile plot).
//
// It knows the Result format and nothing of how a run is made.
package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spate-broker/spate/bench"
)

// Chart ids, stable so tests and people can find the plots.
const (
	IDThroughput      = "throughput"
	IDThroughputBytes = "throughput-bytes"
	IDProduceLatency  = "produce-latency-over-time"
	IDE2ELatency      = "e2e-latency-over-time"
	IDDistribution    = "latency-distribution"
)

// Write renders one run's report.
func Write(w io.Writer, r *bench.Result) error {
	p := page{
		Title:    fmt.Sprintf("spate-bench: %s (%s)", r.Name, r.Workload.Name),
		Subtitle: r.Workload.Description,
		Runs:     []*bench.Result{r},
		Meta:     meta(r),
		Table:    summaryTable([]*bench.Result{r}),
		Workload: string(r.Workload.YAML()),
		Errors:   r.Errors,
		Warnings: r.Warnings,
	}
	for _, c := range runCharts(r) {
		p.Charts = append(p.Charts, template.HTML(c.svg())) // built from escaped parts
	}
	return pageTemplate.Execute(w, p)
}

func meta(r *bench.Result) [][2]string {
	var topics []string
	for _, t := range r.Topics {
		topics = append(topics, fmt.Sprintf("%s (%d partitions)", t.Name, t.Partitions))
	}
	h := r.Host
	m := [][2]string{
		{"brokers", strings.Join(r.Brokers, ", ")},
		{"started", r.Start.Format(time.RFC3339)},
		{"elapsed", fmt.Sprintf("%.1f s", r.ElapsedS)},
		{"topics", strings.Join(topics, ", ")},
		{"load generator host", fmt.Sprintf("%s, %s/%s, %d CPUs %s, %s", h.Hostname, h.OS, h.Arch, h.CPUs, h.CPUModel, h.GoVersion)},
		{"run id", r.RunID},
	}
	if r.Interrupted {
		m = append(m, [2]string{"interrupted", "yes: stopped early, loss not checked"})
	}
	return m
}

func runCharts(r *bench.Result) []*chart {
	s := r.Series
	var cs []*chart
	thr := &chart{id: IDThroughput, title: "Throughput (records/s)", x: secondsAxis(), y: rateAxis("records/s")}
	mib := &chart{id: IDThroughputBytes, title: "Throughput (MiB/s)", x: secondsAxis(), y: axis{label: "MiB/s", format: trimFloat}}
	if r.Workload.Producers > 0 {
		xs, ys := rates(s, func(s bench.Sample) int64 { return s.ProducedRecords })
		thr.lines = append(thr.lines, line{name: "produced (acked)", xs: xs, ys: ys})
		xs, ys = rates(s, func(s bench.Sample) int64 { return s.ProducedBytes })
		mib.lines = append(mib.lines, line{name: "produced (acked)", xs: xs, ys: scaleAll(ys, 1.0/(1<<20))})
	}
	if r.Workload.Consumers > 0 {
		xs, ys := rates(s, func(s bench.Sample) int64 { return s.ConsumedRecords })
		thr.lines = append(thr.lines, line{name: "consumed", xs: xs, ys: ys})
		xs, ys = rates(s, func(s bench.Sample) int64 { return s.ConsumedBytes })
		mib.lines = append(mib.lines, line{name: "consumed", xs: xs, ys: scaleAll(ys, 1.0/(1<<20))})
	}
	cs = append(cs, thr, mib)
	overTime := func(id, title string, pick func(bench.Sample) bench.LatencyPoint) *chart {
		c := &chart{id: id, title: title, x: secondsAxis(), y: latencyAxis()}
		for _, q := range []struct {
			name string
			v    func(bench.LatencyPoint) int64
		}{
			{"p50", func(p bench.LatencyPoint) int64 { return p.P50Us }},
			{"p99", func(p bench.LatencyPoint) int64 { return p.P99Us }},
			{"p99.9", func(p bench.LatencyPoint) int64 { return p.P999Us }},
			{"max", func(p bench.LatencyPoint) int64 { return p.MaxUs }},
		} {
			xs, ys := latencies(s, func(s bench.Sample) (bench.LatencyPoint, int64) { p := pick(s); return p, q.v(p) })
			c.lines = append(c.lines, line{name: q.name, xs: xs, ys: ys, dash: q.name == "max"})
		}
		return c
	}
	if r.Produce.Latency != nil {
		cs = append(cs, overTime(IDProduceLatency, "Produce-ack latency per second (from the intended send time)",
			func(s bench.Sample) bench.LatencyPoint { return s.Produce }))
	}
	if r.Consume.EndToEnd != nil {
		cs = append(cs, overTime(IDE2ELatency, "End-to-end latency per second (intended send to consume)",
			func(s bench.Sample) bench.LatencyPoint { return s.EndToEnd }))
	}
	dist := &chart{id: IDDistribution, title: "Latency distribution (by percentile)", x: axis{label: "percentile", kind: percentile}, y: latencyAxis()}
	if xs, ys := distribution(r.Produce.Latency); xs != nil {
		dist.lines = append(dist.lines, line{name: "produce-ack", xs: xs, ys: ys})
	}
	if xs, ys := distribution(r.Consume.EndToEnd); xs != nil {
		dist.lines = append(dist.lines, line{name: "end-to-end", xs: xs, ys: ys})
	}
	if len(dist.lines) > 0 {
		cs = append(cs, dist)
	}
	return cs
}

func scaleAll(ys []float64, f float64) []float64 {
	out := make([]float64, len(ys))
	for i, y := range ys {
		out[i] = y * f
	}
	return out
}

// table is a summary table: one row per metric, one column per run (plus ratio columns in a
// comparison).
type table struct {
	Head []string
	Rows []row
}

type row struct {
	Name    string
	Section bool // a heading row
	Cells   []cell
}

type cell struct {
	Text  string
	Class string // "bad" for failed checks, "ratio-better"/"ratio-worse"
}

// metric is one row of the summary: how to read it from a result and which way is better.
type metric struct {
	name   string
	value  func(*bench.Result) (float64, bool) // false: not measured
	format func(float64) string
	higher bool // higher is better (throughput); else lower (latency, faults)
	fault  bool // nonzero is a failure
}

func latencyMetric(name string, l func(*bench.Result) *bench.Latency, v func(*bench.Latency) int64) metric {
	return metric{name: name, value: func(r *bench.Result) (float64, bool) {
		if x := l(r); x != nil {
			return float64(v(x)), true
		}
		return 0, false
	}, format: func(f float64) string { return bench.Micros(int64(f)) }}
}

func metrics() []metric {
	prodLat := func(r *bench.Result) *bench.Latency { return r.Produce.Latency }
	e2eLat := func(r *bench.Result) *bench.Latency { return r.Consume.EndToEnd }
	num := func(f float64) string { return fmt.Sprintf("%.0f", f) }
	mib := func(f float64) string { return fmt.Sprintf("%.1f", f) }
	ms := []metric{
		{name: "§produce"},
		{name: "records acked", value: func(r *bench.Result) (float64, bool) { return float64(r.Produce.Records), r.Workload.Producers > 0 }, format: num, higher: true},
		{name: "records/s", value: func(r *bench.Result) (float64, bool) { return r.Produce.RecordsPerSec, r.Produce.ElapsedS > 0 }, format: num, higher: true},
		{name: "MiB/s", value: func(r *bench.Result) (float64, bool) { return r.Produce.MiBPerSec, r.Produce.ElapsedS > 0 }, format: mib, higher: true},
		{name: "errors", value: func(r *bench.Result) (float64, bool) { return float64(r.Produce.Errors), r.Workload.Producers > 0 }, format: num, fault: true},
	}
	for _, q := range []struct {
		name string
		v    func(*bench.Latency) int64
	}{
		{"p50", func(l *bench.Latency) int64 { return l.P50Us }},
		{"p90", func(l *bench.Latency) int64 { return l.P90Us }},
		{"p99", func(l *bench.Latency) int64 { return l.P99Us }},
		{"p99.9", func(l *bench.Latency) int64 { return l.P999Us }},
		{"max", func(l *bench.Latency) int64 { return l.MaxUs }},
	} {
		ms = append(ms, latencyMetric("ack latency "+q.name, prodLat, q.v))
	}
	sendLag := func(r *bench.Result) *bench.Latency { return r.Produce.SendLag }
	ms = append(ms,
		latencyMetric("send lag p99 (generator)", sendLag, func(l *bench.Latency) int64 { return l.P99Us }),
		latencyMetric("send lag max (generator)", sendLag, func(l *bench.Latency) int64 { return l.MaxUs }),
	)
	ms = append(ms,
		metric{name: "§consume"},
		metric{name: "records read", value: func(r *bench.Result) (float64, bool) { return float64(r.Consume.Records), r.Workload.Consumers > 0 }, format: num, higher: true},
		metric{name: "records/s", value: func(r *bench.Result) (float64, bool) { return r.Consume.RecordsPerSec, r.Consume.ElapsedS > 0 }, format: num, higher: true},
		metric{name: "MiB/s", value: func(r *bench.Result) (float64, bool) { return r.Consume.MiBPerSec, r.Consume.ElapsedS > 0 }, format: mib, higher: true},
	)
	for _, q := range []struct {
		name string
		v    func(*bench.Latency) int64
	}{
		{"p50", func(l *bench.Latency) int64 { return l.P50Us }},
		{"p90", func(l *bench.Latency) int64 { return l.P90Us }},
		{"p99", func(l *bench.Latency) int64 { return l.P99Us }},
		{"p99.9", func(l *bench.Latency) int64 { return l.P999Us }},
		{"max", func(l *bench.Latency) int64 { return l.MaxUs }},
	} {
		ms = append(ms, latencyMetric("end-to-end "+q.name, e2eLat, q.v))
	}
	verified := func(f func(bench.Verification) int64) func(*bench.Result) (float64, bool) {
		return func(r *bench.Result) (float64, bool) { return float64(f(r.Verify)), r.Verify.Checked }
	}
	ms = append(ms,
		metric{name: "§verification"},
		metric{name: "lost", value: verified(func(v bench.Verification) int64 { return v.Lost }), format: num, fault: true},
		metric{name: "duplicated", value: verified(func(v bench.Verification) int64 { return v.Duplicated }), format: num, fault: true},
		metric{name: "reordered", value: verified(func(v bench.Verification) int64 { return v.Reordered }), format: num, fault: true},
		metric{name: "corrupt", value: verified(func(v bench.Verification) int64 { return v.Corrupt }), format: num, fault: true},
		metric{name: "unacked but read", value: verified(func(v bench.Verification) int64 { return v.Unacked }), format: num},
		metric{name: "foreign (skipped)", value: verified(func(v bench.Verification) int64 { return v.Foreign }), format: num},
	)
	return ms
}

// summaryTable builds the table of runs; with more than one run, each run after the first
// gets a ratio column against the first.
func summaryTable(rs []*bench.Result) table {
	t := table{Head: []string{""}}
	for i, r := range rs {
		t.Head = append(t.Head, r.Name)
		if i > 0 {
			t.Head = append(t.Head, fmt.Sprintf("%s / %s", r.Name, rs[0].Name))
		}
	}
	for _, m := range metrics() {
		if name, ok := strings.CutPrefix(m.name, "§"); ok {
			t.Rows = append(t.Rows, row{Name: name, Section: true})
			continue
		}
		rw := row{Name: m.name}
		measured := false
		base, baseOK := m.value(rs[0])
		for i, r := range rs {
			v, ok := m.value(r)
			c := cell{Text: "–"}
			if ok {
				measured = true
				c.Text = m.format(v)
				if m.fault && v > 0 {
					c.Class = "bad"
				}
			}
			rw.Cells = append(rw.Cells, c)
			if i > 0 {
				rw.Cells = append(rw.Cells, ratioCell(m, base, baseOK, v, ok))
			}
		}
		if measured {
			t.Rows = append(t.Rows, rw)
		}
	}
	return t
}

func ratioCell(m metric, base float64, baseOK bool, v float64, ok bool) cell {
	if !ok || !baseOK || m.fault || base == 0 {
		return cell{Text: ""}
	}
	ratio := v / base
	c := cell{Text: fmt.Sprintf("%.2f×", ratio)}
	better := ratio > 1
	if !m.higher {
		better = ratio < 1
	}
	switch {
	case math.Abs(ratio-1) < 0.02:
	case better:
		c.Class = "ratio-better"
	default:
		c.Class = "ratio-worse"
	}
	return c
}

// page is what pageTemplate renders.
type page struct {
	Title, Subtitle string
	Runs            []*bench.Result
	Meta            [][2]string
	Table           table
	Charts          []template.HTML
	Workload        string
	Workloads       []namedText // comparison: each run's workload
	Errors          []string
	Warnings        []string
}

type namedText struct{ Name, Text string }

func verdict(r *bench.Result) (string, string) {
	switch {
	case !r.Verify.Checked:
		return "not verified (nothing consumed)", "na"
	case r.Verify.OK():
		return "verified: nothing lost, duplicated, reordered or corrupt", "ok"
	default:
		v := r.Verify
		return fmt.Sprintf("FAILED: %d lost, %d duplicated, %d reordered, %d corrupt", v.Lost, v.Duplicated, v.Reordered, v.Corrupt), "bad"
	}
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"verdict": func(r *bench.Result) string { s, _ := verdict(r); return s },
	"verdictClass": func(r *bench.Result) string {
		_, c := verdict(r)
		return c
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.section td { font-weight: 600; background: #f4f4f4; text-align: left; }
table.meta td { text-align: left; white-space: normal; }
td.bad { color: #b00020; font-weight: 600; }
td.ratio-better { color: #00703c; } td.ratio-worse { color: #b00020; }
.verdict { padding: 6px 10px; border-radius: 4px; display: inline-block; margin: 4px 0; }
.verdict.ok { background: #e3f5e9; } .verdict.bad { background: #fde2e4; font-weight: 600; } .verdict.na { background: #eee; }
svg.chart { display: block; margin: 12px 0; max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 8px 12px; overflow-x: auto; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{with .Subtitle}}<p class="sub">{{.}}</p>{{end}}
{{range .Runs}}<div class="verdict {{verdictClass .}}" data-run="{{.Name}}">{{.Name}}: {{verdict .}}</div><br>
{{end}}
{{with .Meta}}<table class="meta">{{range .}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>{{end}}
<h2>Summary</h2>
<table id="summary">
<tr>{{range .Table.Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Table.Rows}}{{if .Section}}<tr class="section"><td colspan="{{len $.Table.Head}}">{{.Name}}</td></tr>
{{else}}<tr><td>{{.Name}}</td>{{range .Cells}}<td{{with .Class}} class="{{.}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{end}}{{end}}</table>
<p class="sub">Latencies are measured from each record's intended send time (its slot in the
schedule at a fixed rate, or the moment it was handed to the client at full speed), so stalls count against every record they delay.</p>
<h2>Plots</h2>
{{range .Charts}}{{.}}
{{end}}
{{with .Warnings}}<h2>Warnings</h2><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Errors}}<h2>Client errors</h2><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h2>Workload</h2>
{{with .Workload}}<pre>{{.}}</pre>{{end}}
{{range .Workloads}}<h3>{{.Name}}</h3><pre>{{.Text}}</pre>{{end}}
</body>
</html>
`))
