package report

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spate-broker/spate/bench"
)

// WriteComparison renders several runs side by side: the summary table with each run's ratio
// to the first, and each plot with one line per run.
func WriteComparison(w io.Writer, rs []*bench.Result) error {
	if len(rs) == 0 {
		return errors.New("compare: no results")
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	p := page{
		Title: "spate-bench comparison: " + strings.Join(names, " vs "),
		Runs:  rs,
		Table: summaryTable(rs),
	}
	workloads := map[string]bool{}
	for _, r := range rs {
		p.Meta = append(p.Meta, [2]string{r.Name, fmt.Sprintf("workload %s against %s, %s, %.1f s, %d CPUs (%s)",
			r.Workload.Name, strings.Join(r.Brokers, ","), r.Start.Format("2006-01-02 15:04:05"), r.ElapsedS, r.Host.CPUs, r.Host.Hostname)})
		workloads[string(r.Workload.YAML())] = true
		for _, e := range r.Warnings {
			p.Warnings = append(p.Warnings, r.Name+": "+e)
		}
		for _, e := range r.Errors {
			p.Errors = append(p.Errors, r.Name+": "+e)
		}
	}
	if len(workloads) == 1 {
		p.Workload = string(rs[0].Workload.YAML())
	} else {
		p.Warnings = append(p.Warnings, "the runs used different workloads")
		for _, r := range rs {
			p.Workloads = append(p.Workloads, namedText{r.Name, string(r.Workload.YAML())})
		}
	}
	for _, c := range comparisonCharts(rs) {
		p.Charts = append(p.Charts, template.HTML(c.svg())) // built from escaped parts
	}
	return pageTemplate.Execute(w, p)
}

func comparisonCharts(rs []*bench.Result) []*chart {
	prod := &chart{id: IDThroughput, title: "Produce throughput (records/s)", x: secondsAxis(), y: rateAxis("records/s")}
	cons := &chart{id: IDThroughput + "-consume", title: "Consume throughput (records/s)", x: secondsAxis(), y: rateAxis("records/s")}
	prodP99 := &chart{id: IDProduceLatency, title: "Produce-ack latency p99 per second", x: secondsAxis(), y: latencyAxis()}
	e2eP99 := &chart{id: IDE2ELatency, title: "End-to-end latency p99 per second", x: secondsAxis(), y: latencyAxis()}
	dist := &chart{id: IDDistribution, title: "Latency distribution (by percentile)", x: axis{label: "percentile", kind: percentile}, y: latencyAxis()}
	for _, r := range rs {
		if r.Workload.Producers > 0 {
			xs, ys := rates(r.Series, func(s bench.Sample) int64 { return s.ProducedRecords })
			prod.lines = append(prod.lines, line{name: r.Name, xs: xs, ys: ys})
		}
		if r.Workload.Consumers > 0 {
			xs, ys := rates(r.Series, func(s bench.Sample) int64 { return s.ConsumedRecords })
			cons.lines = append(cons.lines, line{name: r.Name, xs: xs, ys: ys})
		}
		if r.Produce.Latency != nil {
			xs, ys := latencies(r.Series, func(s bench.Sample) (bench.LatencyPoint, int64) { return s.Produce, s.Produce.P99Us })
			prodP99.lines = append(prodP99.lines, line{name: r.Name, xs: xs, ys: ys})
		}
		if r.Consume.EndToEnd != nil {
			xs, ys := latencies(r.Series, func(s bench.Sample) (bench.LatencyPoint, int64) { return s.EndToEnd, s.EndToEnd.P99Us })
			e2eP99.lines = append(e2eP99.lines, line{name: r.Name, xs: xs, ys: ys})
		}
	}
	// The distribution plot: solid produce-ack and dashed end-to-end lines, one colour per run.
	for i, r := range rs {
		if xs, ys := distribution(r.Produce.Latency); xs != nil {
			dist.lines = append(dist.lines, line{name: r.Name + " ack", xs: xs, ys: ys, color: palette[i%len(palette)]})
		}
	}
	for i, r := range rs {
		if xs, ys := distribution(r.Consume.EndToEnd); xs != nil {
			dist.lines = append(dist.lines, line{name: r.Name + " e2e", xs: xs, ys: ys, dash: true, color: palette[i%len(palette)]})
		}
	}
	var cs []*chart
	for _, c := range []*chart{prod, cons, prodP99, e2eP99, dist} {
		if len(c.lines) > 0 {
			cs = append(cs, c)
		}
	}
	return cs
}

// CompareText writes the comparison table for a terminal.
func CompareText(w io.Writer, rs []*bench.Result) error {
	if len(rs) == 0 {
		return errors.New("compare: no results")
	}
	t := summaryTable(rs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(t.Head, "\t")+"\t")
	for _, r := range t.Rows {
		if r.Section {
			fmt.Fprintf(tw, "%s:%s\t\n", r.Name, strings.Repeat("\t", len(t.Head)-1))
			continue
		}
		cells := []string{r.Name}
		for _, c := range r.Cells {
			cells = append(cells, c.Text)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	return tw.Flush()
}
