package compat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// confluentConfig is the common librdkafka configuration plus extra.
func confluentConfig(addr string, extra kafka.ConfigMap) *kafka.ConfigMap {
	cm := kafka.ConfigMap{"bootstrap.servers": addr, "client.id": "compat-confluent"}
	if debugLevel() > 0 {
		cm["debug"] = "broker,protocol,msg,fetch,topic,consumer,admin"
	}
	for k, v := range extra {
		cm[k] = v
	}
	return &cm
}

// newConfluentConsumer is a consumer for explicit assignments only: librdkafka insists on a
// group.id, but nothing here joins, commits or fetches group offsets.
func newConfluentConsumer(t *testing.T, addr string) *kafka.Consumer {
	t.Helper()
	c, err := kafka.NewConsumer(confluentConfig(addr, kafka.ConfigMap{
		"group.id": "compat-confluent-unused", "enable.auto.commit": false, "enable.auto.offset.store": false,
		"auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConfluent runs github.com/confluentinc/confluent-kafka-go (librdkafka, cgo) against the
// broker: AdminClient.CreateTopics, a Producer per codec and acks 0/1/all (idempotent with
// acks=all), a Consumer with explicit assignments, OffsetsForTimes, AdminClient.DeleteRecords,
// and max.message.bytes set with AlterConfigs and IncrementalAlterConfigs.
func TestConfluent(t *testing.T) {
	tb := startBroker(t, nil)
	ctx := testContext(t)
	admin, err := kafka.NewAdminClient(confluentConfig(tb.addr, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := "confluent-e2e"
	confluentCreateTopic(ctx, t, admin, topic, partitions)
	meta := newConfluentConsumer(t, tb.addr) // watermarks and lookups by time

	// Produce: one Producer per codec and acks.
	var produced []record
	for _, codec := range codecs {
		for _, acks := range ackings {
			run := makeRun(codec, acks, len(produced))
			p, err := kafka.NewProducer(confluentConfig(tb.addr, kafka.ConfigMap{
				"acks": acks, "compression.type": codec, "enable.idempotence": acks == "all", "linger.ms": 5}))
			if err != nil {
				t.Fatal(err)
			}
			deliveries := make(chan kafka.Event, len(run))
			for _, r := range run {
				m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
					Key: []byte(r.Key), Value: []byte(r.Value), Timestamp: r.Time}
				for _, h := range r.Headers {
					m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: []byte(h.Value)})
				}
				if err := p.Produce(m, deliveries); err != nil {
					t.Fatalf("produce %s acks=%s: %v", codec, acks, err)
				}
			}
			reports := map[string]*kafka.Message{}
			for range run {
				select {
				case ev := <-deliveries:
					m := ev.(*kafka.Message)
					if m.TopicPartition.Error != nil {
						t.Fatalf("produce %s acks=%s: %v", codec, acks, m.TopicPartition.Error)
					}
					reports[string(m.Value)] = m
				case <-ctx.Done():
					t.Fatalf("produce %s acks=%s: %d of %d delivery reports", codec, acks, len(reports), len(run))
				}
			}
			p.Close()
			for i := range run {
				m := reports[run[i].Value]
				run[i].Partition = m.TopicPartition.Partition
				if acks != "0" { // acks=0 is answered by nothing: no offset
					run[i].Offset = int64(m.TopicPartition.Offset)
				}
			}
			produced = append(produced, run...)
			// acks=0 is answered by nothing: wait until every record is in before the next run.
			confluentWaitEnds(t, meta, topic, endOffsets(produced))
		}
	}

	checkProducedBatches(t, tb, topic, true)

	ends := endOffsets(produced)
	consumed := confluentConsume(t, tb.addr, topic, ends, map[int32]int64{})
	checkConsumed(t, produced, consumed)

	// ListOffsets by timestamp.
	offsetsForTime := func(q timeQuery) (int64, int64, error) {
		res, err := meta.OffsetsForTimes([]kafka.TopicPartition{{Topic: &topic, Partition: q.Partition, Offset: kafka.Offset(q.Time)}}, 10000)
		if err != nil {
			return -1, -1, err
		}
		if len(res) != 1 || res[0].Error != nil {
			return -1, -1, fmt.Errorf("result %v", res)
		}
		return int64(res[0].Offset), noTimestamp, nil
	}
	checkTimeQueries(t, "OffsetsForTimes", timeQueries(consumed, nil), offsetsForTime)

	// DeleteRecords: the low watermark moves, and a consumer from the beginning starts there.
	cut := deleteUpTo(ends)
	var dels []kafka.TopicPartition
	for p, o := range cut {
		dels = append(dels, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.Offset(o)})
	}
	dres, err := admin.DeleteRecords(ctx, dels)
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	for _, r := range dres.DeleteRecordsResults {
		p := r.TopicPartition.Partition
		if r.TopicPartition.Error != nil || r.DeletedRecords == nil || int64(r.DeletedRecords.LowWatermark) != cut[p] {
			t.Fatalf("DeleteRecords p%d: %v %+v; want low watermark %d", p, r.TopicPartition.Error, r.DeletedRecords, cut[p])
		}
	}
	for p, start := range cut {
		low, _, err := meta.QueryWatermarkOffsets(topic, p, 10000)
		if err != nil || low != start {
			t.Fatalf("QueryWatermarkOffsets p%d after DeleteRecords: low %d, %v; want %d", p, low, err, start)
		}
	}
	after := confluentConsume(t, tb.addr, topic, ends, cut)
	checkAfterDelete(t, consumed, after, cut)
	checkTimeQueries(t, "OffsetsForTimes after DeleteRecords", timeQueriesBeforeAll(consumed, cut), offsetsForTime)

	// max.message.bytes, set with AlterConfigs and IncrementalAlterConfigs.
	limited := "confluent-limited"
	confluentCreateTopic(ctx, t, admin, limited, 1)
	p, err := kafka.NewProducer(confluentConfig(tb.addr, kafka.ConfigMap{"acks": "1", "enable.idempotence": false, "linger.ms": 0}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(size int) error {
		done := make(chan kafka.Event, 1)
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &limited, Partition: 0}, Key: []byte("k"), Value: incompressible(size)}
		if err := p.Produce(m, done); err != nil {
			return err
		}
		select {
		case ev := <-done:
			return ev.(*kafka.Message).TopicPartition.Error
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tooLarge := func(step string) {
		t.Helper()
		err := send(bigRecord)
		if kerr, ok := err.(kafka.Error); !ok || kerr.Code() != kafka.ErrMsgSizeTooLarge {
			t.Fatalf("%s: produce of %d bytes: %v, want %v", step, bigRecord, err, kafka.ErrMsgSizeTooLarge)
		}
		if err := send(100); err != nil {
			t.Fatalf("%s: produce of 100 bytes: %v", step, err)
		}
	}
	if err := send(bigRecord); err != nil {
		t.Fatalf("produce of %d bytes under the default limit: %v", bigRecord, err)
	}
	alter := func(what string, f func(context.Context, []kafka.ConfigResource, ...kafka.AlterConfigsAdminOption) ([]kafka.ConfigResourceResult, error), e kafka.ConfigEntry) {
		t.Helper()
		res, err := f(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: limited, Config: []kafka.ConfigEntry{e}}})
		if err != nil {
			t.Fatalf("%s %s=%s: %v", what, e.Name, e.Value, err)
		}
		for _, r := range res {
			if r.Error.Code() != kafka.ErrNoError {
				t.Fatalf("%s %s=%s: %v", what, e.Name, e.Value, r.Error)
			}
		}
	}
	alter("AlterConfigs", admin.AlterConfigs, kafka.ConfigEntry{Name: "max.message.bytes", Value: limitSmall})
	tooLarge("after AlterConfigs max.message.bytes=" + limitSmall)
	alter("IncrementalAlterConfigs", admin.IncrementalAlterConfigs, kafka.ConfigEntry{Name: "max.message.bytes", Value: limitLarge, IncrementalOperation: kafka.AlterConfigOpTypeSet})
	if err := send(bigRecord); err != nil {
		t.Fatalf("produce of %d bytes after IncrementalAlterConfigs max.message.bytes=%s: %v", bigRecord, limitLarge, err)
	}
	alter("IncrementalAlterConfigs", admin.IncrementalAlterConfigs, kafka.ConfigEntry{Name: "max.message.bytes", Value: limitSmall2, IncrementalOperation: kafka.AlterConfigOpTypeSet})
	tooLarge("after IncrementalAlterConfigs max.message.bytes=" + limitSmall2)
}

func confluentCreateTopic(ctx context.Context, t *testing.T, admin *kafka.AdminClient, topic string, n int) {
	t.Helper()
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: n, ReplicationFactor: 1}},
		kafka.SetAdminOperationTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("CreateTopics %s: %v", topic, err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			t.Fatalf("CreateTopics %s: %v", r.Topic, r.Error)
		}
	}
}

// confluentWaitEnds waits until each partition's high watermark is exactly ends.
func confluentWaitEnds(t *testing.T, c *kafka.Consumer, topic string, ends map[int32]int64) {
	t.Helper()
	eventually(t, "end offsets", func() error {
		for p, want := range ends {
			_, high, err := c.QueryWatermarkOffsets(topic, p, 5000)
			if err != nil {
				return err
			}
			if high != want {
				return fmt.Errorf("partition %d ends at %d, want %d", p, high, want)
			}
		}
		return nil
	})
}

// confluentConsume assigns every partition at OffsetBeginning to a new consumer and reads
// until each partition's end offset, checking that the first offset read is start[p].
func confluentConsume(t *testing.T, addr, topic string, ends, start map[int32]int64) []record {
	t.Helper()
	c := newConfluentConsumer(t, addr)
	var assign []kafka.TopicPartition
	for p := int32(0); p < partitions; p++ {
		assign = append(assign, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(assign); err != nil {
		t.Fatal(err)
	}
	got := map[int32][]record{}
	want, n := int64(0), int64(0)
	for p := range ends {
		want += ends[p] - start[p]
	}
	deadline := time.Now().Add(20 * time.Second)
	for n < want {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d records", n, want)
		}
		switch ev := c.Poll(100).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				t.Fatalf("consume: %v", ev.TopicPartition.Error)
			}
			p, off := ev.TopicPartition.Partition, int64(ev.TopicPartition.Offset)
			if len(got[p]) == 0 && off != start[p] {
				t.Fatalf("partition %d: first record consumed from OffsetBeginning is at %d, want %d", p, off, start[p])
			}
			r := record{Key: string(ev.Key), Value: string(ev.Value), Time: ev.Timestamp, Partition: p, Offset: off}
			for _, h := range ev.Headers {
				r.Headers = append(r.Headers, header{h.Key, string(h.Value)})
			}
			got[p] = append(got[p], r)
			n++
		case kafka.Error:
			if ev.IsFatal() {
				t.Fatalf("consume: %v", ev)
			}
			t.Logf("consumer error event: %v", ev)
		}
	}
	if err := c.Unassign(); err != nil {
		t.Fatal(err)
	}
	var out []record
	for p := int32(0); p < partitions; p++ {
		out = append(out, got[p]...)
	}
	return out
}
