package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/net/html"

	"github.com/spate-broker/spate/bench"
)

// fakeResult makes a plausible result: records/s per second, latencies around baseUs.
func fakeResult(name string, rate float64, baseUs int64) *bench.Result {
	w := bench.DefaultWorkload()
	w.Name, w.Description, w.Records, w.Rate = "s3", "fixed rate with a concurrent consumer", int64(rate)*10, rate
	r := &bench.Result{
		Version: bench.ResultVersion, Name: name, Brokers: []string{"127.0.0.1:9092"}, RunID: "0000abcd",
		Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ElapsedS: 10, Workload: w,
		Host:   bench.Host{Hostname: "box", OS: "linux", Arch: "amd64", CPUs: 2, GoVersion: "go1.26"},
		Topics: []bench.Topic{{Name: "t", Partitions: 6, Created: true}},
	}
	h := hdr.New(1, 1e8, 3)
	for i := range int64(10000) {
		_ = h.RecordValue(baseUs + i%100*baseUs/50)
	}
	lat := &bench.Latency{Count: h.TotalCount(), MinUs: h.Min(), P50Us: h.ValueAtQuantile(50), P90Us: h.ValueAtQuantile(90),
		P99Us: h.ValueAtQuantile(99), P999Us: h.ValueAtQuantile(99.9), MaxUs: h.Max()}
	for _, b := range h.CumulativeDistributionWithTicks(5) {
		lat.Percentiles = append(lat.Percentiles, bench.Percentile{P: b.Quantile, Us: b.ValueAt})
	}
	e2e := *lat
	e2e.P99Us += 100
	r.Produce = bench.Phase{Records: int64(rate) * 10, Bytes: int64(rate) * 10240, ElapsedS: 10, RecordsPerSec: rate, MiBPerSec: rate / 1024, Latency: lat}
	r.Consume = bench.Phase{Records: int64(rate) * 10, Bytes: int64(rate) * 10240, ElapsedS: 10, RecordsPerSec: rate, MiBPerSec: rate / 1024, EndToEnd: &e2e}
	r.Verify = bench.Verification{Checked: true, Sent: int64(rate) * 10, Acked: int64(rate) * 10, Consumed: int64(rate) * 10, Unique: int64(rate) * 10}
	for i := range 10 {
		p := bench.LatencyPoint{Count: int64(rate), P50Us: lat.P50Us, P99Us: lat.P99Us + int64(i), P999Us: lat.P999Us, MaxUs: lat.MaxUs}
		r.Series = append(r.Series, bench.Sample{TS: float64(i + 1), ProducedRecords: int64(rate), ProducedBytes: int64(rate) * 1024,
			ConsumedRecords: int64(rate), ConsumedBytes: int64(rate) * 1024, Produce: p, EndToEnd: p})
	}
	return r
}

// parsePage parses a report and checks what every page must be: HTML that parses, with no
// scripts and no reference to anything outside the file.
func parsePage(t *testing.T, page []byte) *html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		if n.Data == "script" || n.Data == "link" || n.Data == "iframe" || n.Data == "img" {
			t.Errorf("page has a <%s>", n.Data)
		}
		for _, a := range n.Attr {
			if a.Key == "src" || a.Key == "href" || strings.HasSuffix(a.Key, ":href") {
				t.Errorf("<%s %s=%q>: a reference out of the page", n.Data, a.Key, a.Val)
			}
		}
	})
	if bytes.Contains(page, []byte("http://")) || bytes.Contains(page, []byte("https://")) {
		t.Error("page mentions a URL")
	}
	// Every inline SVG is well-formed XML on its own.
	for _, svg := range regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAll(page, -1) {
		dec := xml.NewDecoder(bytes.NewReader(svg))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("SVG is not XML: %v\n%.300s", err, svg)
			}
		}
	}
	return doc
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

// charts returns the page's SVG charts by id, with their polylines' series names.
func charts(doc *html.Node) map[string][]string {
	out := map[string][]string{}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode || n.Data != "svg" {
			return
		}
		id := attr(n, "id")
		out[id] = []string{}
		walk(n, func(g *html.Node) {
			if g.Type == html.ElementNode && g.Data == "g" && attr(g, "class") == "series" {
				out[id] = append(out[id], attr(g, "data-series"))
			}
		})
	})
	return out
}

// checkPolylines checks that every polyline point is a number inside the chart.
func checkPolylines(t *testing.T, doc *html.Node) int {
	t.Helper()
	n := 0
	walk(doc, func(p *html.Node) {
		if p.Type != html.ElementNode || p.Data != "polyline" {
			return
		}
		for _, pt := range strings.Fields(attr(p, "points")) {
			xs, ys, _ := strings.Cut(pt, ",")
			x, err1 := strconv.ParseFloat(xs, 64)
			y, err2 := strconv.ParseFloat(ys, 64)
			if err1 != nil || err2 != nil || x < 0 || x > chartW || y < 0 || y > chartH || math.IsNaN(x+y) {
				t.Errorf("bad point %q", pt)
			}
			n++
		}
	})
	return n
}

// summaryCells returns the summary table as row name → cell texts.
func summaryCells(doc *html.Node) (head []string, rows map[string][]string) {
	rows = map[string][]string{}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode || n.Data != "table" || attr(n, "id") != "summary" {
			return
		}
		walk(n, func(tr *html.Node) {
			if tr.Type != html.ElementNode || tr.Data != "tr" {
				return
			}
			var cells []string
			for c := tr.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					cells = append(cells, strings.TrimSpace(text(c)))
				}
			}
			if len(cells) > 0 && head == nil {
				head = cells
			} else if len(cells) > 1 {
				key := cells[0]
				for rows[key] != nil { // "records/s" appears under produce and consume
					key += "'"
				}
				rows[key] = cells[1:]
			}
		})
	})
	return head, rows
}

func TestReportParsesAndHasThePlots(t *testing.T) {
	r := fakeResult(`spate <b>&"`, 20000, 800)
	var buf bytes.Buffer
	if err := Write(&buf, r); err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, buf.Bytes())
	got := charts(doc)
	for id, series := range map[string][]string{
		IDThroughput:      {"produced (acked)", "consumed"},
		IDThroughputBytes: {"produced (acked)", "consumed"},
		IDProduceLatency:  {"p50", "p99", "p99.9", "max"},
		IDE2ELatency:      {"p50", "p99", "p99.9", "max"},
		IDDistribution:    {"produce-ack", "end-to-end"},
	} {
		if fmt.Sprint(got[id]) != fmt.Sprint(series) {
			t.Errorf("chart %s: series %q, want %q", id, got[id], series)
		}
	}
	if n := checkPolylines(t, doc); n < 10*10 {
		t.Errorf("only %d points plotted", n)
	}
	head, rows := summaryCells(doc)
	if len(head) != 2 || head[1] != r.Name {
		t.Errorf("summary head %q", head)
	}
	for name, want := range map[string]string{
		"records/s":       "20000",
		"MiB/s":           "19.5",
		"ack latency p50": bench.Micros(r.Produce.Latency.P50Us),
		"ack latency p99": bench.Micros(r.Produce.Latency.P99Us),
		"end-to-end p99":  bench.Micros(r.Consume.EndToEnd.P99Us),
		"lost":            "0",
		"corrupt":         "0",
	} {
		if c := rows[name]; len(c) != 1 || c[0] != want {
			t.Errorf("summary %q = %q, want %q", name, c, want)
		}
	}
	page := buf.String()
	for _, want := range []string{"verified: nothing lost", "spate &lt;b&gt;&amp;", "record_size:", "0000abcd"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestReportShowsFailedVerification(t *testing.T) {
	r := fakeResult("broken", 1000, 100)
	r.Verify.Lost, r.Verify.Corrupt = 3, 1
	r.Consume.EndToEnd = nil
	var buf bytes.Buffer
	if err := Write(&buf, r); err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, buf.Bytes())
	if _, ok := charts(doc)[IDE2ELatency]; ok {
		t.Error("an end-to-end chart without end-to-end latency")
	}
	_, rows := summaryCells(doc)
	if rows["lost"][0] != "3" || rows["corrupt"][0] != "1" {
		t.Errorf("lost %q corrupt %q", rows["lost"], rows["corrupt"])
	}
	if !strings.Contains(buf.String(), "FAILED: 3 lost, 0 duplicated, 0 reordered, 1 corrupt") {
		t.Error("no FAILED verdict")
	}
	if !strings.Contains(buf.String(), `<td class="bad">3</td>`) {
		t.Error("lost count not marked bad")
	}
}

func TestComparison(t *testing.T) {
	a, b := fakeResult("spate", 40000, 500), fakeResult("kfake", 20000, 2000)
	var buf bytes.Buffer
	if err := WriteComparison(&buf, []*bench.Result{a, b}); err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, buf.Bytes())
	got := charts(doc)
	for _, id := range []string{IDThroughput, IDThroughput + "-consume", IDProduceLatency, IDE2ELatency} {
		if fmt.Sprint(got[id]) != "[spate kfake]" {
			t.Errorf("chart %s: series %q", id, got[id])
		}
	}
	if fmt.Sprint(got[IDDistribution]) != "[spate ack kfake ack spate e2e kfake e2e]" {
		t.Errorf("distribution series %q", got[IDDistribution])
	}
	checkPolylines(t, doc)
	head, rows := summaryCells(doc)
	if fmt.Sprint(head) != "[ spate kfake kfake / spate]" {
		t.Errorf("head %q", head)
	}
	for name, want := range map[string][]string{
		"records/s":       {"40000", "20000", "0.50×"},
		"ack latency p50": {bench.Micros(a.Produce.Latency.P50Us), bench.Micros(b.Produce.Latency.P50Us), fmt.Sprintf("%.2f×", float64(b.Produce.Latency.P50Us)/float64(a.Produce.Latency.P50Us))},
		"lost":            {"0", "0", ""},
	} {
		if fmt.Sprint(rows[name]) != fmt.Sprint(want) {
			t.Errorf("%s: %q, want %q", name, rows[name], want)
		}
	}
	if !strings.Contains(buf.String(), `class="ratio-worse">0.50×`) {
		t.Error("half the throughput is not marked worse")
	}

	var txt bytes.Buffer
	if err := CompareText(&txt, []*bench.Result{a, b}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"spate", "kfake", "kfake / spate", "40000", "20000", "0.50×", bench.Micros(b.Produce.Latency.P99Us)} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text comparison lacks %q:\n%s", want, txt.String())
		}
	}
}

func TestScales(t *testing.T) {
	for x, want := range map[float64]float64{0.3: 0.5, 1: 1, 1.1: 2, 4: 5, 7: 10, 1234: 2000} {
		if got := niceStep(x); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", x, got, want)
		}
	}
	s := newScale(axis{kind: percentile}, []float64{0, 50, 99.9, 100})
	if s.hi != 3 || s.pos(100) != 1 || s.pos(0) != 0 || math.Abs(s.pos(99)-2.0/3) > 1e-9 {
		t.Errorf("percentile scale %+v", s)
	}
	l := newScale(latencyAxis(), []float64{150, 20000, math.NaN(), 0})
	if l.lo != 2 || l.hi != 5 || len(l.ticks) != 4 || l.tickText[0] != "100µs" || l.tickText[3] != "100.0ms" {
		t.Errorf("log scale %+v", l)
	}
	if e := newScale(secondsAxis(), nil); e.hi <= e.lo {
		t.Errorf("empty scale %+v", e)
	}
}
