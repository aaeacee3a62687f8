package perf

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Ratio is one row of the ratio table: a metric of a scenario, its median (fault counts: sum)
// per broker, and subject / baseline (Spate / kfake).
type Ratio struct {
	Scenario string             `json:"scenario"`
	Metric   string             `json:"metric"`
	Values   map[string]float64 `json:"values"`
	Ratio    float64            `json:"ratio,omitempty"`
	HasRatio bool               `json:"has_ratio"` // both measured and the baseline non-zero
}

// Ratios builds the ratio table of the scenarios' summaries, subject over baseline.
func Ratios(scs []ScenarioResult, subject, baseline string) []Ratio {
	var out []Ratio
	for _, sc := range scs {
		for _, info := range MetricInfos {
			r := Ratio{Scenario: sc.Name, Metric: info.Key, Values: map[string]float64{}}
			for broker, m := range sc.Summary {
				if v, ok := m[info.Key]; ok {
					r.Values[broker] = v
				}
			}
			if len(r.Values) == 0 {
				continue
			}
			s, sok := r.Values[subject]
			b, bok := r.Values[baseline]
			if sok && bok && b != 0 && (info.Better == HigherIsBetter || info.Better == LowerIsBetter) {
				r.Ratio, r.HasRatio = s/b, true
			}
			out = append(out, r)
		}
	}
	return out
}

// Target statuses.
const (
	Met    = "met"
	Missed = "missed"
	NA     = "n/a" // the scenario did not run, or the numbers it needs are missing
)

// Target is one of issue 4's targets, checked against a scenario's summary.
type Target struct {
	Scenario string `json:"scenario"`
	Metric   string `json:"metric"` // a Metric* key, or "faults"
	Want     string `json:"want"`   // e.g. "≥ 1.5× kfake"
	Got      string `json:"got"`
	Status   string `json:"status"`
}

// MetricFaults is the pseudo-metric of the zero-loss target: lost, duplicated, reordered and
// corrupt records and failed runs of the subject.
const MetricFaults = "faults"

type targetKind int

const (
	ratioAtLeast targetKind = iota // subject/baseline ≥ limit
	ratioAtMost                    // subject/baseline ≤ limit
	valueAtMost                    // subject's own value ≤ limit
	noFaults                       // nothing lost, duplicated, reordered or corrupt; no failed run
)

type targetDef struct {
	scenario, metric string
	kind             targetKind
	limit            float64
	unit             string // of limit, for valueAtMost
}

// targetDefs are issue 4's targets ("What it must show").
var targetDefs = []targetDef{
	{"S1", MetricProduceMBps, ratioAtLeast, 1.5, ""},
	{"S1", MetricConsumeMBps, ratioAtLeast, 2, ""},
	{"S1", MetricCPUPerGB, ratioAtMost, 0.25, ""},
	{"S1", MetricPeakRSSMiB, valueAtMost, 150, "MiB"},
	{"S1", MetricFaults, noFaults, 0, ""},
	{"S2", MetricCPUPerGB, ratioAtMost, 0.25, ""},
	{"S2", MetricFaults, noFaults, 0, ""},
	{"S3", MetricE2EP99, valueAtMost, 1, "ms"},
	{"S3", MetricE2EP999, valueAtMost, 2, "ms"},
	{"S3", MetricE2EP99, ratioAtMost, 0.5, ""},
	{"S3", MetricE2EP999, ratioAtMost, 0.5, ""},
	{"S3", MetricCPUPerGB, ratioAtMost, 0.25, ""},
	{"S3", MetricFaults, noFaults, 0, ""},
	{"S4", MetricCPUPerGB, ratioAtMost, 0.25, ""},
	{"S4", MetricFaults, noFaults, 0, ""},
}

// faultKeys are the verification counts the zero-loss target adds up.
var faultKeys = []string{MetricLost, MetricDuplicated, MetricReordered, MetricCorrupt}

// CheckTargets checks issue 4's targets for the subject against the baseline.
func CheckTargets(scs []ScenarioResult, subject, baseline string) []Target {
	var out []Target
	for _, d := range targetDefs {
		t := Target{Scenario: d.scenario, Metric: d.metric, Status: NA}
		switch d.kind {
		case ratioAtLeast:
			t.Want = fmt.Sprintf("≥ %g× %s", d.limit, baseline)
		case ratioAtMost:
			t.Want = fmt.Sprintf("≤ %g× %s", d.limit, baseline)
		case valueAtMost:
			t.Want = fmt.Sprintf("≤ %g %s", d.limit, d.unit)
		case noFaults:
			t.Want = "zero lost/dup/reordered/corrupt, no failed run"
		}
		var sc *ScenarioResult
		for i := range scs {
			if scs[i].Name == d.scenario {
				sc = &scs[i]
			}
		}
		if sc != nil {
			check(&t, d, sc, subject, baseline)
		}
		out = append(out, t)
	}
	return out
}

func check(t *Target, d targetDef, sc *ScenarioResult, subject, baseline string) {
	s, sok := sc.Summary[subject][d.metric]
	b, bok := sc.Summary[baseline][d.metric]
	verdict := func(ok bool) string {
		if ok {
			return Met
		}
		return Missed
	}
	switch d.kind {
	case ratioAtLeast, ratioAtMost:
		if !sok || !bok || b == 0 {
			return
		}
		r := s / b
		t.Got = fmt.Sprintf("%.2f×", r)
		t.Status = verdict(d.kind == ratioAtLeast && r >= d.limit || d.kind == ratioAtMost && r <= d.limit)
	case valueAtMost:
		if !sok {
			return
		}
		t.Got = fmt.Sprintf("%s %s", formatValue(s), d.unit)
		t.Status = verdict(s <= d.limit)
	case noFaults:
		runs, failed := 0, 0
		for _, r := range sc.Runs {
			if r.Broker == subject {
				runs++
				if r.Err != "" {
					failed++
				}
			}
		}
		if runs == 0 {
			return
		}
		var faults float64
		for _, k := range faultKeys {
			faults += sc.Summary[subject][k]
		}
		t.Got = fmt.Sprintf("%s, %d of %d runs failed", faultString(sc.Summary[subject]), failed, runs)
		t.Status = verdict(faults == 0 && failed == 0)
	}
}

// faultString is "lost/dup/reord/corrupt" counts, e.g. "0/0/0/0 lost/dup/reord/corrupt".
func faultString(m Metrics) string {
	var parts []string
	for _, k := range faultKeys {
		parts = append(parts, strconv.FormatFloat(m[k], 'f', 0, 64))
	}
	return strings.Join(parts, "/") + " lost/dup/reord/corrupt"
}

// WriteTable writes the ratio table (medians of each broker, subject/baseline) with the
// targets that concern each row, then the list of targets.
func WriteTable(w io.Writer, rep *Report) error {
	subject, baseline := rep.Subject(), rep.Baseline()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cols := append([]string{"scenario", "metric"}, rep.Brokers...)
	if baseline != "" {
		cols = append(cols, subject+"/"+baseline)
	}
	cols = append(cols, "target")
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, r := range rep.Ratios {
		info := Info(r.Metric)
		row := []string{r.Scenario, info.Label}
		switch r.Metric {
		case MetricDuplicated, MetricReordered, MetricCorrupt:
			continue // on the lost row
		case MetricLost: // one row for the verification, with the zero-loss target
			row[1] = "lost/dup/reord/corrupt"
			for _, b := range rep.Brokers {
				row = append(row, strings.TrimSuffix(faultString(rep.summary(r.Scenario, b)), " lost/dup/reord/corrupt"))
			}
			if baseline != "" {
				row = append(row, "")
			}
			row = append(row, targetCell(rep.Targets, r.Scenario, MetricFaults))
			fmt.Fprintln(tw, strings.Join(row, "\t"))
			continue
		}
		for _, b := range rep.Brokers {
			if v, ok := r.Values[b]; ok {
				row = append(row, formatValue(v))
			} else {
				row = append(row, "–")
			}
		}
		if baseline != "" {
			if r.HasRatio {
				row = append(row, fmt.Sprintf("%.2f×", r.Ratio))
			} else {
				row = append(row, "")
			}
		}
		row = append(row, targetCell(rep.Targets, r.Scenario, r.Metric))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(rep.Targets) == 0 {
		fmt.Fprintln(w, "targets (issue 4): not checked (they compare two brokers)")
		return nil
	}
	fmt.Fprintln(w, "targets (issue 4):")
	for _, t := range rep.Targets {
		status := t.Status
		if status == Missed {
			status = "MISSED"
		}
		label := "records"
		if t.Metric != MetricFaults {
			label = Info(t.Metric).Label
		}
		got := t.Got
		if got == "" {
			got = "not measured"
		}
		fmt.Fprintf(w, "  %-7s %s %s %s: %s\n", status, t.Scenario, label, t.Want, got)
	}
	return nil
}

func targetCell(ts []Target, scenario, metric string) string {
	var parts []string
	for _, t := range ts {
		if t.Scenario == scenario && t.Metric == metric {
			parts = append(parts, t.Want+" "+t.Status)
		}
	}
	return strings.Join(parts, "; ")
}

// formatValue prints a number with about four significant digits.
func formatValue(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0 || a >= 10000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
