package bench

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestPresets: every shipped workload parses, validates, and survives a round trip through
// its own file format; the scenarios say what the issue says.
func TestPresets(t *testing.T) {
	names := Presets()
	for _, want := range []string{"s1", "s2", "s3", "s4", "smoke"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("preset %s missing from %v", want, names)
		}
	}
	for _, name := range names {
		w, err := LoadWorkload(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if w.Name != name {
			t.Errorf("preset %s is named %q", name, w.Name)
		}
		again, err := ParseWorkload(w.YAML())
		if err != nil {
			t.Fatalf("%s: re-parse: %v\n%s", name, err, w.YAML())
		}
		if !reflect.DeepEqual(w, again) {
			t.Errorf("%s: round trip changed it:\n%+v\n%+v", name, w, again)
		}
	}
	s1, _ := LoadWorkload("s1")
	if s1.Records != 300_000 || s1.RecordSize != FixedSize(1024) || s1.Partitions != 6 || s1.Acks != "all" || s1.Consume != "after" {
		t.Errorf("s1: %+v", s1)
	}
	s3, _ := LoadWorkload("s3")
	if s3.Rate != 20_000 || s3.Duration.D() != 30*time.Second || s3.Consume != "concurrent" {
		t.Errorf("s3: %+v", s3)
	}
	s4, _ := LoadWorkload("s4")
	if s4.Partitions != 100 || s4.Producers != 8 || s4.Consumers != 8 || s4.ConsumerMode != "group" {
		t.Errorf("s4: %+v", s4)
	}
}

func TestParseWorkloadRejects(t *testing.T) {
	for _, src := range []string{
		"partitons: 3",      // typo: unknown key
		"record_size: big",  // bad size
		"duration: forever", // bad duration
		"keys: some",        // bad keys
	} {
		if _, err := ParseWorkload([]byte(src)); err == nil {
			t.Errorf("%q: no error", src)
		}
	}
	for _, set := range []map[string]string{
		{"record_size": "16"}, // below the header
		{"acks": "2"},
		{"compression": "brotli"},
		{"records": "0", "duration": "0"},
		{"consume": "sometimes"},
		{"consumer_mode": "shared"},
		{"consumers": "0"}, // consume is concurrent by default
		{"fetch_max_wait": "1ms"},
		{"producers": "0", "consumers": "1"},
	} {
		w := DefaultWorkload()
		w.Records = 1000
		if err := w.Validate(); err != nil {
			t.Fatalf("the base workload: %v", err)
		}
		for k, v := range set {
			if err := w.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Validate(); err == nil {
			t.Errorf("%v: valid?", set)
		}
	}
	if err := (&Workload{}).Set("no-such-key", "1"); err == nil {
		t.Error("Set of an unknown key")
	}
}

func TestWorkloadJSONFile(t *testing.T) {
	w, err := ParseWorkload([]byte(`{"name": "j", "record_size": "normal(512, 64)", "rate": 100, "duration": "2s", "topic_configs": {"segment.bytes": "1048576"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if w.RecordSize != (SizeDist{"normal", 512, 64}) || w.Rate != 100 || w.Duration.D() != 2*time.Second || w.TopicConfigs["segment.bytes"] != "1048576" || w.Partitions != 6 {
		t.Errorf("%+v", w)
	}
}

// TestWorkloadSetGet: every key can be set from its text form and read back (the flags of
// spate-bench run are exactly these keys).
func TestWorkloadSetGet(t *testing.T) {
	values := map[string]string{
		"name": "x", "description": "d", "topics": "2", "topic": "t", "partitions": "12",
		"replication_factor": "3", "create_topics": "false", "delete_topics": "false",
		"topic_configs": "a=b", "record_size": "uniform(100,200)", "keys": "distinct(7)",
		"payload": "text", "producers": "3", "acks": "1", "idempotent": "false",
		"compression": "zstd", "linger": "5ms", "batch_max_bytes": "65536",
		"max_buffered_records": "1000", "rate": "1500.5", "records": "1_000", "duration": "1m0s",
		"warmup": "2s", "consumers": "4", "consume": "after", "consumer_mode": "group",
		"consumer_group": "g", "fetch_max_wait": "100ms", "fetch_max_bytes": "1024",
		"fetch_max_partition_bytes": "512", "consume_timeout": "3s",
	}
	fields := WorkloadFields()
	if len(fields) != len(values) {
		t.Fatalf("%d fields, the test knows %d", len(fields), len(values))
	}
	var w Workload
	for _, f := range fields {
		v, ok := values[f.Key]
		if !ok || f.Help == "" || f.Flag != strings.ReplaceAll(f.Key, "_", "-") {
			t.Fatalf("field %+v", f)
		}
		if err := w.Set(f.Flag, v); err != nil {
			t.Fatal(err)
		}
		got, err := w.Get(f.Key)
		want := strings.ReplaceAll(v, "_", "")
		if f.Key == "rate" || strings.Contains(v, "(") || f.Key == "topic_configs" || f.Key == "replication_factor" {
			want = v
		}
		if err != nil || got != want {
			t.Errorf("%s: Get = %q, %v; want %q", f.Key, got, err, want)
		}
	}
}

func TestSizeDist(t *testing.T) {
	for s, want := range map[string]SizeDist{
		"1024": FixedSize(1024), "1KiB": FixedSize(1024), "fixed(2k)": FixedSize(2000),
		"uniform(100, 4KiB)": {"uniform", 100, 4096}, "normal(1024,256)": {"normal", 1024, 256},
	} {
		got, err := ParseSizeDist(s)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v", s, got, err)
		}
		if again, _ := ParseSizeDist(got.String()); again != got {
			t.Errorf("%q: String %q does not parse back", s, got.String())
		}
	}
	for _, s := range []string{"", "x", "uniform(5)", "uniform(10,5)", "normal(1,2", "-3", "3 parsecs"} {
		if _, err := ParseSizeDist(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, d := range []SizeDist{{"uniform", 100, 200}, {"normal", 100, 50}, FixedSize(77)} {
		sum := 0
		for range 10000 {
			n := d.Sample(r)
			if n < d.Min() || n > d.Max() {
				t.Fatalf("%v drew %d", d, n)
			}
			sum += n
		}
		if mean := float64(sum) / 10000; mean < d.Mean()*0.95 || mean > d.Mean()*1.05 {
			t.Errorf("%v: mean %.1f, want about %.1f", d, mean, d.Mean())
		}
	}
}

func TestKeyDist(t *testing.T) {
	for s, want := range map[string]KeyDist{
		"none": {"none", 0}, "random": {"random", 16}, "random(4)": {"random", 4}, "distinct(10)": {"distinct", 10},
	} {
		got, err := ParseKeyDist(s)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v", s, got, err)
		}
	}
	for _, s := range []string{"some", "distinct", "distinct(0)", "random(-1)", "none(3)"} {
		if _, err := ParseKeyDist(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	g := keyGen{d: KeyDist{"distinct", 3}, table: newKeyTable(KeyDist{"distinct", 3})}
	seen := map[string]bool{}
	for range 100 {
		seen[string(g.next(r))] = true
	}
	if len(seen) != 3 || !seen["key-0"] || !seen["key-2"] {
		t.Errorf("distinct keys drawn: %v", seen)
	}
	g = keyGen{d: KeyDist{"random", 13}}
	if a, b := g.next(r), g.next(r); len(a) != 13 || string(a) == string(b) {
		t.Errorf("random keys %x %x", a, b)
	}
	if (&keyGen{d: KeyDist{Kind: "none"}}).next(r) != nil {
		t.Error("none gave a key")
	}
}

func TestDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"0": 0, "30s": 30 * time.Second, "1.5": 1500 * time.Millisecond, "250ms": 250 * time.Millisecond} {
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err != nil || d.D() != want {
			t.Errorf("%q: %v, %v", s, d, err)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("no error for soon")
	}
}
