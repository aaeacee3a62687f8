package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// ResultVersion is the version of the result format; readers refuse newer ones.
const ResultVersion = 1

// Result is what a run measured and verified; it is written as JSON (WriteJSON) and rendered by
// bench/report. Latencies are microseconds (fields ending in _us), rates per second.
type Result struct {
	Version     int       `json:"version"`
	Name        string    `json:"name"` // label of the run (e.g. the broker), defaults to the workload name
	Brokers     []string  `json:"brokers"`
	RunID       string    `json:"run_id"` // the run id in every record's header, hex
	Start       time.Time `json:"start"`
	ElapsedS    float64   `json:"elapsed_s"`
	Interrupted bool      `json:"interrupted,omitempty"` // stopped early (signal, context)
	Workload    Workload  `json:"workload"`
	Host        Host      `json:"host"`
	Topics      []Topic   `json:"topics"`

	Produce  Phase        `json:"produce"`
	Consume  Phase        `json:"consume"`
	Verify   Verification `json:"verify"`
	Series   []Sample     `json:"series"`           // one per second of the run
	Errors   []string     `json:"errors,omitempty"` // distinct client errors, first few
	Warnings []string     `json:"warnings,omitempty"`
}

// Host describes the machine the load generator ran on.
type Host struct {
	Hostname  string `json:"hostname"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	GoVersion string `json:"go_version"`
}

// Topic is one topic the run used.
type Topic struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	Created    bool   `json:"created"`
}

// Phase is the throughput and latency of producing or consuming. For producing, Latency is
// the produce-ack latency; for consuming, EndToEnd is produce-to-consume latency (measured only
// when consumers run concurrently with producers: otherwise it would be the wait between the
// phases).
type Phase struct {
	Records       int64    `json:"records"`
	Bytes         int64    `json:"bytes"` // key + value bytes
	Errors        int64    `json:"errors"`
	ElapsedS      float64  `json:"elapsed_s"`
	RecordsPerSec float64  `json:"records_per_s"`
	MiBPerSec     float64  `json:"mib_per_s"`
	Latency       *Latency `json:"latency,omitempty"`
	EndToEnd      *Latency `json:"end_to_end,omitempty"`
	// SendLag (producing at a fixed rate): how long after its intended time each record was
	// handed to the client — the load generator's own delay, included in Latency. If it is
	// large, the generator (or its machine) is the bottleneck, not the broker.
	SendLag *Latency `json:"send_lag,omitempty"`
}

// Latency summarizes a latency histogram (microseconds).
type Latency struct {
	Count   int64   `json:"count"`
	MinUs   int64   `json:"min_us"`
	MeanUs  float64 `json:"mean_us"`
	P50Us   int64   `json:"p50_us"`
	P90Us   int64   `json:"p90_us"`
	P99Us   int64   `json:"p99_us"`
	P999Us  int64   `json:"p99_9_us"`
	P9999Us int64   `json:"p99_99_us"`
	MaxUs   int64   `json:"max_us"`
	// Percentiles is the distribution: the latency at each percentile, denser towards 100
	// (HdrHistogram's percentile spectrum).
	Percentiles []Percentile `json:"percentiles"`
	// HDR is the whole histogram, HdrHistogram V2 compressed and base64 (as HdrHistogram's
	// tools read it), for merging or re-analysis.
	HDR string `json:"hdr,omitempty"`
}

// Percentile is a point of a latency distribution.
type Percentile struct {
	P  float64 `json:"p"` // 0 … 100
	Us int64   `json:"us"`
}

// Sample is one second of the run: counts in the second ending at TS, latency percentiles of
// the records acknowledged (or consumed) in it.
type Sample struct {
	TS              float64      `json:"t_s"` // seconds since the start, end of the interval
	ProducedRecords int64        `json:"produced_records"`
	ProducedBytes   int64        `json:"produced_bytes"`
	ConsumedRecords int64        `json:"consumed_records"`
	ConsumedBytes   int64        `json:"consumed_bytes"`
	ProduceErrors   int64        `json:"produce_errors,omitempty"`
	Produce         LatencyPoint `json:"produce"`
	EndToEnd        LatencyPoint `json:"end_to_end"`
}

// LatencyPoint is the latency of one sample (zero Count: none recorded).
type LatencyPoint struct {
	Count  int64 `json:"count"`
	P50Us  int64 `json:"p50_us"`
	P99Us  int64 `json:"p99_us"`
	P999Us int64 `json:"p99_9_us"`
	MaxUs  int64 `json:"max_us"`
}

// Verification is what the consumers saw of the producers' records.
type Verification struct {
	Checked    bool  `json:"checked"`  // false: nothing consumed (consume: none)
	Sent       int64 `json:"sent"`     // records handed to the producer clients
	Acked      int64 `json:"acked"`    // acknowledged by the broker
	Consumed   int64 `json:"consumed"` // records of this run consumed, duplicates included
	Unique     int64 `json:"unique"`   // distinct records of this run consumed
	Lost       int64 `json:"lost"`     // acknowledged, never consumed
	Duplicated int64 `json:"duplicated"`
	// Reordered: records consumed after a later record of the same producer in the same
	// partition (hence with the same key); Kafka promises that order per partition.
	Reordered int64 `json:"reordered"`
	Corrupt   int64 `json:"corrupt"` // checksum mismatch
	// Unacked: consumed although their produce failed or was never answered (allowed: a
	// failed produce may still have been written).
	Unacked int64 `json:"unacked"`
	// Foreign: records not of this run (another run's, or not bench records) that were read
	// and skipped. Corruption of a record's first 3 bytes (magic, version) lands here too, and
	// then shows as loss.
	Foreign int64 `json:"foreign"`
}

// OK reports whether nothing was lost, duplicated, reordered or corrupted.
func (v Verification) OK() bool {
	return v.Lost == 0 && v.Duplicated == 0 && v.Reordered == 0 && v.Corrupt == 0
}

// WriteJSON writes the result, indented.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteFile writes the result as JSON to path.
func (r *Result) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	bw := bufio.NewWriter(f)
	err = r.WriteJSON(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	return nil
}

// ReadResult reads a result JSON file.
func ReadResult(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	if r.Version < 1 || r.Version > ResultVersion {
		return nil, fmt.Errorf("read result %s: format version %d, this build reads 1 to %d", path, r.Version, ResultVersion)
	}
	return &r, nil
}

// Summary writes a few human-readable lines about the result.
func (r *Result) Summary(w io.Writer) {
	fmt.Fprintf(w, "%s: workload %s against %s, %.1fs%s\n", r.Name, r.Workload.Name,
		strings.Join(r.Brokers, ","), r.ElapsedS, map[bool]string{true: " (interrupted)"}[r.Interrupted])
	phase := func(name string, p Phase, lat *Latency, latName string) {
		if p.Records == 0 && p.Errors == 0 {
			return
		}
		fmt.Fprintf(w, "  %-8s %9d records %8s rec/s %8.1f MiB/s", name, p.Records, Count(p.RecordsPerSec), p.MiBPerSec)
		if p.Errors > 0 {
			fmt.Fprintf(w, "  %d errors", p.Errors)
		}
		fmt.Fprintln(w)
		if lat != nil {
			fmt.Fprintf(w, "  %-8s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", latName,
				Micros(lat.P50Us), Micros(lat.P90Us), Micros(lat.P99Us), Micros(lat.P999Us), Micros(lat.MaxUs))
		}
	}
	phase("produce", r.Produce, r.Produce.Latency, "ack")
	if l := r.Produce.SendLag; l != nil {
		fmt.Fprintf(w, "  %-8s p50 %s  p99 %s  max %s (the load generator's own delay, part of the above)\n", "send lag",
			Micros(l.P50Us), Micros(l.P99Us), Micros(l.MaxUs))
	}
	phase("consume", r.Consume, r.Consume.EndToEnd, "e2e")
	v := r.Verify
	if v.Checked {
		verdict := "OK"
		if !v.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  verify   %s: acked %d, consumed %d (unique %d), lost %d, duplicated %d, reordered %d, corrupt %d",
			verdict, v.Acked, v.Consumed, v.Unique, v.Lost, v.Duplicated, v.Reordered, v.Corrupt)
		if v.Foreign > 0 || v.Unacked > 0 {
			fmt.Fprintf(w, ", unacked %d, foreign %d", v.Unacked, v.Foreign)
		}
		fmt.Fprintln(w)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error    %s\n", e)
	}
	for _, e := range r.Warnings {
		fmt.Fprintf(w, "  warning  %s\n", e)
	}
}

// Micros formats microseconds for people: 850µs, 1.25ms, 3.2s.
func Micros(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 10_000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	case us < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}

// Count formats a count or rate for people: 950, 20.0k, 1.25M.
func Count(n float64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%.0f", n)
	case n < 1e6:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.2fM", n/1e6)
	}
}

func hostInfo() Host {
	h := Host{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	h.Hostname, _ = os.Hostname()
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}
