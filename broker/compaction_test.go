package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spate-broker/spate/logstore"
)

func compactionClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeCompacted reads a partition from the start until it has seen offset last, and returns
// the records by offset.
func consumeCompacted(ctx context.Context, t *testing.T, addr, topic string, last int64) map[int64]*kgo.Record {
	t.Helper()
	cl := compactionClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int64]*kgo.Record{}
	prev := int64(-1)
	for prev < last {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("consume %s: %v (up to offset %d of %d)", topic, err, prev, last)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset <= prev {
				t.Errorf("offset %d after %d", r.Offset, prev)
			}
			prev = r.Offset
			got[r.Offset] = r
		})
	}
	return got
}

// TestCompactedTopicKeepsLatestValuePerKey creates a topic with cleanup.policy=compact and
// tiny segments, produces updates and a tombstone (plain and lz4, idempotent), runs compaction
// passes, and consumes with franz-go: only the latest value of each key is left, at the offset
// it was produced at; the tombstone stays for one pass (delete.retention.ms=0) and then goes;
// the producer goes on after compaction, and all of it survives a restart.
func TestCompactedTopicKeepsLatestValuePerKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tb := startBroker(t, "", nil)
	const topic = "compacted"
	adm := kadm.NewClient(compactionClient(t, tb.addr))
	configs := map[string]*string{}
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.bytes": "1024",
		"min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"} {
		configs[k] = kadm.StringPtr(v)
	}
	if resp, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	plain := compactionClient(t, tb.addr, kgo.DefaultProduceTopic(topic))
	lz4 := compactionClient(t, tb.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	latest := map[string]*kgo.Record{}
	produce := func(cl *kgo.Client, key string, value []byte) {
		t.Helper()
		r := &kgo.Record{Key: []byte(key), Value: value}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", key, err)
		}
		latest[key] = r
	}
	for i := 0; i < 200; i++ {
		cl := plain
		if i%3 == 0 {
			cl = lz4
		}
		produce(cl, fmt.Sprintf("key-%d", i%10), []byte(fmt.Sprintf("value-%d", i)))
	}
	produce(plain, "key-3", nil) // tombstone

	tp := logstore.TopicPartition{Topic: topic, Partition: 0}
	l := tb.b.store.Log(tp)
	if c := l.Config(); !c.Compacted || c.DeleteRetentionMs != 0 || c.MinCleanableDirtyRatio != 0.01 || c.RetentionMs != -1 {
		t.Fatalf("log config %+v does not follow the topic's configs", c)
	}
	segments := l.NumSegments()
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	st, err := l.Compact(ctx, true)
	if err != nil || !st.Ran || !st.Complete {
		t.Fatalf("compact: %+v %v", st, err)
	}
	t.Logf("pass over %d segments: %+v", segments, st)

	check := func(when string, wantTombstone bool) {
		t.Helper()
		last := int64(-1)
		for _, r := range latest {
			if r.Value != nil || wantTombstone {
				last = max(last, r.Offset)
			}
		}
		got := consumeCompacted(ctx, t, tb.addr, topic, last)
		want := 0
		for key, r := range latest {
			if r.Value == nil && !wantTombstone {
				continue
			}
			want++
			g := got[r.Offset]
			if g == nil || string(g.Key) != key || string(g.Value) != string(r.Value) || (g.Value == nil) != (r.Value == nil) {
				t.Errorf("%s: %s at %d: got %v, want %q", when, key, r.Offset, g, r.Value)
			}
		}
		if len(got) != want {
			var all []string
			for off, r := range got {
				all = append(all, fmt.Sprintf("%d:%s=%s", off, r.Key, r.Value))
			}
			sort.Strings(all)
			t.Errorf("%s: consumed %d records, want %d (one per key): %v", when, len(got), want, all)
		}
	}
	check("after the first pass", true)

	// The tombstone got its delete horizon (now + 0 ms) on the first pass; the next one drops it.
	time.Sleep(2 * time.Millisecond)
	if st, err := l.Compact(ctx, true); err != nil || st.TombstonesRemoved != 1 {
		t.Fatalf("second pass: %+v %v", st, err)
	}
	check("after the second pass", false)

	// The idempotent producers go on where they were; a pass cleans their new records too.
	compact := func(l *logstore.Log) {
		t.Helper()
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
		if st, err := l.Compact(ctx, true); err != nil || !st.Complete {
			t.Fatalf("compact: %+v %v", st, err)
		}
	}
	produce(plain, "key-1", []byte("after compaction"))
	produce(lz4, "key-11", []byte("new key"))
	compact(l)
	check("after more produces", false)

	tb.stop()
	tb = startBroker(t, tb.dir, nil)
	check("after a restart", false)
	produce(compactionClient(t, tb.addr, kgo.DefaultProduceTopic(topic)), "key-2", []byte("after restart"))
	compact(tb.b.store.Log(tp))
	check("after a restart, a produce and a pass", false)
}

// TestCompactedTopicRefusesKeylessRecords: a record without a key produced to a compacted
// topic is refused with INVALID_RECORD, as Kafka refuses it.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(compactionClient(t, tb.addr))
	for _, topic := range []string{"compacted-keys", "plain-keys"} {
		configs := map[string]*string{}
		if topic == "compacted-keys" {
			configs["cleanup.policy"] = kadm.StringPtr("compact,delete")
		}
		if resp, err := adm.CreateTopic(ctx, 1, 1, configs, topic); err != nil || resp.Err != nil {
			t.Fatalf("create topic: %v %v", err, resp.Err)
		}
	}
	cl := compactionClient(t, tb.addr, kgo.RecordRetries(0))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "plain-keys", Value: []byte("no key")}).FirstErr(); err != nil {
		t.Fatalf("keyless record to a topic that is not compacted: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "compacted-keys", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("keyed record: %v", err)
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "compacted-keys", Value: []byte("no key")}).FirstErr()
	if err == nil {
		t.Fatal("a keyless record to a compacted topic was accepted")
	}
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record to a compacted topic: %v, want INVALID_RECORD", err)
	}
}
