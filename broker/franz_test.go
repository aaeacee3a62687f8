package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

type wantRecord struct {
	key, value string
	header     string
	ts         time.Time
	partition  int32
}

// TestFranzProduceConsumeEveryCodecAndAcks produces keyed records with headers and timestamps
// with each compression codec and acks setting, then consumes them back and checks every
// field, the offsets and the per-key order.
func TestFranzProduceConsumeEveryCodecAndAcks(t *testing.T) {
	tb := startBroker(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "franz-e2e"
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	acks := map[string]kgo.Acks{"0": kgo.NoAck(), "1": kgo.LeaderAck(), "all": kgo.AllISRAcks()}
	var want []wantRecord
	base := time.UnixMilli(1_700_000_000_000)
	n := 0
	for cname, codec := range codecs {
		for aname, ack := range acks {
			opts := []kgo.Opt{kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(ack)}
			if aname != "all" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			cl := newClient(t, tb.addr, opts...)
			for i := 0; i < 20; i++ {
				r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%d", i%4)),
					Value:     []byte(fmt.Sprintf("%s/%s/%d", cname, aname, i)),
					Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(n))}},
					Timestamp: base.Add(time.Duration(n) * time.Millisecond)}
				res := cl.ProduceSync(ctx, r)
				if err := res.FirstErr(); err != nil {
					t.Fatalf("produce %s acks=%s: %v", cname, aname, err)
				}
				want = append(want, wantRecord{string(r.Key), string(r.Value), fmt.Sprint(n), r.Timestamp, r.Partition})
				n++
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// acks=0 gives no response: wait until every record is visible.
	deadline := time.Now().Add(10 * time.Second)
	for {
		offs, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		offs.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total == int64(len(want)) || time.Now().After(deadline) {
			if total != int64(len(want)) {
				t.Fatalf("end offsets sum to %d, want %d", total, len(want))
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	consumer := newClient(t, tb.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string][]*kgo.Record{}
	count := 0
	for count < len(want) {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = append(got[string(r.Key)], r)
			count++
		})
	}
	// Per key, records arrive in produce order, with every field intact and dense offsets per
	// partition.
	byKey := map[string][]wantRecord{}
	for _, w := range want {
		byKey[w.key] = append(byKey[w.key], w)
	}
	for k, ws := range byKey {
		rs := got[k]
		if len(rs) != len(ws) {
			t.Fatalf("key %s: got %d records, want %d", k, len(rs), len(ws))
		}
		for i, w := range ws {
			r := rs[i]
			if string(r.Value) != w.value || len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != w.header ||
				!r.Timestamp.Equal(w.ts) || r.Partition != w.partition {
				t.Fatalf("key %s record %d: got %q %v %v p%d, want %q h=%s %v p%d", k, i, r.Value, r.Headers, r.Timestamp, r.Partition, w.value, w.header, w.ts, w.partition)
			}
			if i > 0 && r.Offset <= rs[i-1].Offset {
				t.Fatalf("key %s: offsets not increasing: %d after %d", k, r.Offset, rs[i-1].Offset)
			}
		}
	}
	// ListOffsets by time: the first record at or after each time.
	for _, w := range want[:10] {
		offs, err := adm.ListOffsetsAfterMilli(ctx, w.ts.UnixMilli(), topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, w.partition)
		var rec *kgo.Record
		for _, r := range got[w.key] {
			if string(r.Value) == w.value {
				rec = r
			}
		}
		if o.Err != nil || o.Offset != rec.Offset || o.Timestamp != w.ts.UnixMilli() {
			t.Fatalf("offset after %v: got %d ts %d err %v, want %d", w.ts, o.Offset, o.Timestamp, o.Err, rec.Offset)
		}
	}
	offs, err := adm.ListOffsetsAfterMilli(ctx, base.Add(time.Hour).UnixMilli(), topic)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Offset != -1 && o.Err == nil {
			// kadm maps "no such offset" (-1) to the end offset; either is Kafka's answer.
			end, _ := adm.ListEndOffsets(ctx, topic)
			e, _ := end.Lookup(topic, o.Partition)
			if o.Offset != e.Offset {
				t.Fatalf("offset after the future in p%d: %d, want -1 or end %d", o.Partition, o.Offset, e.Offset)
			}
		}
	})
}

// TestListOffsetsByTimeInsideCompressedBatches: records batched and compressed together are
// looked up record by record (the broker decompresses for time lookups), for every codec, and
// the max-timestamp lookup (-3) names the record, not the batch.
func TestListOffsetsByTimeInsideCompressedBatches(t *testing.T) {
	tb := startBroker(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.addr))
	base := time.UnixMilli(1_700_000_000_000)
	for i, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		topic := fmt.Sprintf("ts-codec-%d", i)
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		cl := newClient(t, tb.addr, kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(time.Second), kgo.DefaultProduceTopic(topic))
		var recs []*kgo.Record
		for j := 0; j < 10; j++ {
			// Timestamps 0, 2, 4, ... 18 ms after base, except record 7 carries the maximum.
			ts := base.Add(time.Duration(2*j) * time.Millisecond)
			if j == 7 {
				ts = base.Add(time.Minute)
			}
			recs = append(recs, &kgo.Record{Value: []byte(strings.Repeat(fmt.Sprint(j), 300)), Timestamp: ts})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if recs[0].Offset != 0 || recs[9].Offset != 9 {
			t.Fatalf("offsets %d..%d", recs[0].Offset, recs[9].Offset)
		}
		for _, c := range []struct {
			ms         int64
			wantOffset int64
			wantTs     int64
		}{{-5, 0, 0}, {0, 0, 0}, {3, 2, 4}, {13, 7, 60000}, {14, 7, 60000}, {15, 7, 60000}} {
			offs, err := adm.ListOffsetsAfterMilli(ctx, base.UnixMilli()+c.ms, topic)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := offs.Lookup(topic, 0)
			if o.Offset != c.wantOffset || o.Timestamp != base.UnixMilli()+c.wantTs {
				t.Fatalf("codec %d: offset after +%dms = %d (ts %d), want %d (ts +%d)", i, c.ms, o.Offset, o.Timestamp-base.UnixMilli(), c.wantOffset, c.wantTs)
			}
		}
		offs, err := adm.ListMaxTimestampOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := offs.Lookup(topic, 0); o.Offset != 7 || o.Timestamp != base.Add(time.Minute).UnixMilli() {
			t.Fatalf("codec %d: max timestamp offset %d ts %d, want 7", i, o.Offset, o.Timestamp)
		}
	}
}
