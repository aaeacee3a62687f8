package bench

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Workload is what a run does. It is read from a small YAML (or JSON) file whose keys are the
// yaml tags below, and each key is also a flag of `spate-bench run` (with '-' for '_').
// Unset keys keep DefaultWorkload's values.
type Workload struct {
	Name        string `yaml:"name" json:"name" help:"workload name (shown in reports)"`
	Description string `yaml:"description,omitempty" json:"description,omitempty" help:"one line on what the workload measures"`

	Topics            int               `yaml:"topics" json:"topics" help:"number of topics"`
	Topic             string            `yaml:"topic,omitempty" json:"topic,omitempty" help:"topic name (topics > 1: prefix, '-<i>' appended); empty: fresh names per run"`
	Partitions        int32             `yaml:"partitions" json:"partitions" help:"partitions per topic (when creating)"`
	ReplicationFactor int16             `yaml:"replication_factor" json:"replication_factor" help:"replication factor (when creating)"`
	CreateTopics      bool              `yaml:"create_topics" json:"create_topics" help:"create the topics if missing"`
	DeleteTopics      bool              `yaml:"delete_topics" json:"delete_topics" help:"delete the topics this run created when it ends"`
	TopicConfigs      map[string]string `yaml:"topic_configs,omitempty" json:"topic_configs,omitempty" help:"topic configs when creating, k=v,k=v"`

	RecordSize SizeDist `yaml:"record_size" json:"record_size" help:"record value bytes: N, uniform(MIN,MAX) or normal(MEAN,STDDEV)"`
	Keys       KeyDist  `yaml:"keys" json:"keys" help:"record keys: none, random, random(BYTES) or distinct(N)"`
	Payload    string   `yaml:"payload" json:"payload" help:"payload bytes: random (incompressible) or text (words: gzip ~4x)"`

	Producers          int      `yaml:"producers" json:"producers" help:"producer clients"`
	Acks               string   `yaml:"acks" json:"acks" help:"acks: all, 1 or 0"`
	Idempotent         bool     `yaml:"idempotent" json:"idempotent" help:"idempotent producer (acks=all only)"`
	Compression        string   `yaml:"compression" json:"compression" help:"none, gzip, snappy, lz4 or zstd"`
	Linger             Duration `yaml:"linger" json:"linger" help:"producer linger"`
	BatchMaxBytes      int32    `yaml:"batch_max_bytes" json:"batch_max_bytes" help:"producer batch max bytes (0: client default)"`
	MaxBufferedRecords int      `yaml:"max_buffered_records" json:"max_buffered_records" help:"records a producer buffers before Produce blocks (0: client default)"`
	Rate               float64  `yaml:"rate" json:"rate" help:"target records/s over all producers; 0: as fast as possible"`
	Records            int64    `yaml:"records" json:"records" help:"records to produce over all producers (0: until duration; both set: whichever ends first)"`
	Duration           Duration `yaml:"duration" json:"duration" help:"how long to produce (0: until records are sent)"`
	Warmup             Duration `yaml:"warmup" json:"warmup" help:"latency of the first seconds is plotted but left out of the totals"`

	Consumers              int      `yaml:"consumers" json:"consumers" help:"consumer clients"`
	Consume                string   `yaml:"consume" json:"consume" help:"when consumers run: concurrent (with the producers), after (once all is produced) or none"`
	ConsumerMode           string   `yaml:"consumer_mode" json:"consumer_mode" help:"partitions (direct, partitions dealt to consumers) or group (one consumer group)"`
	ConsumerGroup          string   `yaml:"consumer_group,omitempty" json:"consumer_group,omitempty" help:"group id (group mode); empty: a fresh group per run"`
	FetchMaxWait           Duration `yaml:"fetch_max_wait" json:"fetch_max_wait" help:"fetch max wait"`
	FetchMaxBytes          int32    `yaml:"fetch_max_bytes" json:"fetch_max_bytes" help:"fetch max bytes (0: client default)"`
	FetchMaxPartitionBytes int32    `yaml:"fetch_max_partition_bytes" json:"fetch_max_partition_bytes" help:"fetch max partition bytes (0: client default)"`
	ConsumeTimeout         Duration `yaml:"consume_timeout" json:"consume_timeout" help:"after producing, stop consuming once nothing new arrived for this long"`
}

// DefaultWorkload holds the defaults a workload file starts from. It sets neither records
// nor duration: a workload must say how much to produce.
func DefaultWorkload() Workload {
	return Workload{
		Name:              "default",
		Topics:            1,
		Partitions:        6,
		ReplicationFactor: 1,
		CreateTopics:      true,
		DeleteTopics:      true,
		RecordSize:        FixedSize(1024),
		Keys:              KeyDist{Kind: "none"},
		Payload:           "random",
		Producers:         1,
		Acks:              "all",
		Idempotent:        true,
		Compression:       "none",
		Linger:            Duration(time.Millisecond),
		Consumers:         1,
		Consume:           "concurrent",
		ConsumerMode:      "partitions",
		FetchMaxWait:      Duration(500 * time.Millisecond),
		ConsumeTimeout:    Duration(10 * time.Second),
	}
}

// Validate checks the workload and returns the first problem.
func (w *Workload) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("workload %q: "+format, append([]any{w.Name}, a...)...)
	}
	switch {
	case w.Topics < 1:
		return bad("topics must be at least 1")
	case w.Partitions < 1:
		return bad("partitions must be at least 1")
	case w.ReplicationFactor < 1:
		return bad("replication_factor must be at least 1")
	case w.RecordSize.Min() < HeaderSize:
		return bad("record_size %v: records are at least %d bytes (the bench header)", w.RecordSize, HeaderSize)
	case w.RecordSize.Max() > 64<<20:
		return bad("record_size %v: at most 64 MiB", w.RecordSize)
	case w.Producers < 0 || w.Consumers < 0:
		return bad("producers and consumers cannot be negative")
	case w.Producers > 1024 || w.Consumers > 1024:
		return bad("at most 1024 producers and 1024 consumers")
	case w.Producers == 0 && w.Consumers == 0:
		return bad("nothing to do: no producers and no consumers")
	case w.Producers > 0 && w.Records <= 0 && w.Duration <= 0:
		return bad("give records or duration (or both)")
	case w.Records < 0 || w.Duration < 0 || w.Rate < 0 || w.Warmup < 0:
		return bad("records, duration, rate and warmup cannot be negative")
	case w.Rate > 0 && w.Rate < float64(w.Producers)/3600:
		return bad("rate %v is below one record per producer per hour", w.Rate)
	case !slices.Contains([]string{"all", "1", "0"}, w.Acks):
		return bad("acks %q: want all, 1 or 0", w.Acks)
	case !slices.Contains([]string{"none", "gzip", "snappy", "lz4", "zstd"}, w.Compression):
		return bad("compression %q: want none, gzip, snappy, lz4 or zstd", w.Compression)
	case !slices.Contains([]string{"random", "text"}, w.Payload):
		return bad("payload %q: want random or text", w.Payload)
	case !slices.Contains([]string{"concurrent", "after", "none"}, w.Consume):
		return bad("consume %q: want concurrent, after or none", w.Consume)
	case !slices.Contains([]string{"partitions", "group"}, w.ConsumerMode):
		return bad("consumer_mode %q: want partitions or group", w.ConsumerMode)
	case w.Consume != "none" && w.Consumers == 0:
		return bad("consume is %q but there are no consumers", w.Consume)
	case w.Consumers > 0 && w.Consume == "none":
		return bad("consumers given but consume is none")
	case w.FetchMaxWait != 0 && w.FetchMaxWait.D() < 10*time.Millisecond:
		return bad("fetch_max_wait %v: at least 10ms", w.FetchMaxWait)
	case w.Consumers > 0 && w.Producers == 0:
		return bad("consumers verify this run's records: they need producers")
	}
	return nil
}

// idempotent reports whether the producers write idempotently (which needs acks=all).
func (w *Workload) idempotent() bool { return w.Idempotent && w.Acks == "all" }

// ParseWorkload reads a workload file's bytes (YAML, or JSON, which is YAML) over the
// defaults. Unknown keys are errors.
func ParseWorkload(data []byte) (Workload, error) {
	w := DefaultWorkload()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&w); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return Workload{}, err
	}
	return w, nil
}

// LoadWorkload returns a preset by name (see Presets) or reads a workload file. A file's
// workload without a name is named after the file.
func LoadWorkload(nameOrPath string) (Workload, error) {
	if data, err := presetFS.ReadFile("workloads/" + nameOrPath + ".yaml"); err == nil && !strings.ContainsAny(nameOrPath, "/\\") {
		w, err := ParseWorkload(data)
		if err != nil {
			return Workload{}, fmt.Errorf("preset %s: %w", nameOrPath, err)
		}
		return w, nil
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		return Workload{}, fmt.Errorf("workload %q is neither a preset (%s) nor a readable file: %w",
			nameOrPath, strings.Join(Presets(), ", "), err)
	}
	w, err := ParseWorkload(data)
	if err != nil {
		return Workload{}, fmt.Errorf("workload file %s: %w", nameOrPath, err)
	}
	if w.Name == DefaultWorkload().Name {
		w.Name = strings.TrimSuffix(filepath.Base(nameOrPath), filepath.Ext(nameOrPath))
	}
	return w, nil
}

//go:embed workloads/*.yaml
var presetFS embed.FS

// Presets lists the names of the shipped workloads (files in bench/workloads).
func Presets() []string {
	entries, _ := presetFS.ReadDir("workloads")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), path.Ext(e.Name())))
	}
	return names
}

// PresetSource returns a preset's file as shipped.
func PresetSource(name string) ([]byte, error) {
	return presetFS.ReadFile("workloads/" + name + ".yaml")
}

// YAML returns the workload in its file format.
func (w *Workload) YAML() []byte {
	b, err := yaml.Marshal(w)
	if err != nil {
		panic("BUG: marshal workload: " + err.Error())
	}
	return b
}

// Duration is a time.Duration written as "1.5s" in workload files and results.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; a bare number is seconds.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		var secs float64
		if _, err2 := fmt.Sscanf(s, "%g", &secs); err2 != nil || fmt.Sprint(secs) != s {
			return fmt.Errorf("bad duration %q (want e.g. 30s, 1m, 500ms)", s)
		}
		v = time.Duration(secs * float64(time.Second))
	}
	*d = Duration(v)
	return nil
}
