package compat

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var kafkagoCodecs = map[string]kafka.Compression{"none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd}

var kafkagoAcks = map[string]kafka.RequiredAcks{"0": kafka.RequireNone, "1": kafka.RequireOne, "all": kafka.RequireAll}

func kafkagoLogger(prefix string) kafka.Logger {
	if debugLevel() == 0 {
		return nil
	}
	return log.New(os.Stderr, prefix, log.Lmicroseconds)
}

// TestKafkaGo runs github.com/segmentio/kafka-go against the broker: Client.CreateTopics,
// Writer with every codec and acks 0/1/all (kafka-go has no idempotent producer), a Reader
// per partition (no group), Client.ListOffsets and Conn.ReadOffset by time, the log start
// after DeleteRecords, and max.message.bytes set with Client.AlterConfigs and
// Client.IncrementalAlterConfigs.
func TestKafkaGo(t *testing.T) {
	tb := startBroker(t, nil)
	ctx := testContext(t)
	transport := &kafka.Transport{ClientID: "compat-kafka-go", MetadataTTL: time.Second}
	t.Cleanup(transport.CloseIdleConnections)
	client := &kafka.Client{Addr: kafka.TCP(tb.addr), Transport: transport, Timeout: 10 * time.Second}
	const topic = "kafka-go-e2e"
	created, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	if err := created.Errors[topic]; err != nil {
		t.Fatalf("CreateTopics %s: %v", topic, err)
	}

	// Produce: one Writer per codec and acks, each run written with one WriteMessages.
	var produced []record
	balancer := &kafka.Hash{}
	for _, codec := range codecs {
		for _, acks := range ackings {
			run := makeRun(codec, acks, len(produced))
			msgs := make([]kafka.Message, len(run))
			for i, r := range run {
				msgs[i] = kafka.Message{Key: []byte(r.Key), Value: []byte(r.Value), Time: r.Time}
				for _, h := range r.Headers {
					msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: h.Key, Value: []byte(h.Value)})
				}
				// acks=0 gets no response, so kafka-go reports no partition: ask the balancer.
				run[i].Partition = int32(balancer.Balance(msgs[i], 0, 1, 2))
			}
			var mu sync.Mutex
			written := map[string]kafka.Message{}
			w := &kafka.Writer{Addr: kafka.TCP(tb.addr), Topic: topic, Balancer: balancer, Transport: transport,
				BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafkagoAcks[acks], Compression: kafkagoCodecs[codec],
				Logger: kafkagoLogger("[kafka-go writer] "), ErrorLogger: kafkagoLogger("[kafka-go writer error] "),
				Completion: func(ms []kafka.Message, err error) {
					mu.Lock()
					defer mu.Unlock()
					for _, m := range ms {
						written[string(m.Value)] = m
					}
				}}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				t.Fatalf("produce %s acks=%s: %v", codec, acks, err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			for i := range run {
				m, ok := written[run[i].Value]
				switch {
				case !ok:
					t.Fatalf("produce %s acks=%s: no completion for %v", codec, acks, run[i])
				case acks == "0":
				case int32(m.Partition) != run[i].Partition:
					t.Fatalf("produce %s acks=%s: %v written to partition %d, the balancer chose %d", codec, acks, run[i], m.Partition, run[i].Partition)
				default:
					run[i].Offset = m.Offset
				}
			}
			produced = append(produced, run...)
			// acks=0 is answered by nothing: wait until every record is in before the next run.
			kafkagoWaitEnds(t, client, topic, endOffsets(produced))
		}
	}

	checkProducedBatches(t, tb, topic, false)

	ends := endOffsets(produced)
	consumed := kafkagoConsume(t, tb.addr, topic, ends, map[int32]int64{})
	checkConsumed(t, produced, consumed)

	// ListOffsets by timestamp, with Client.ListOffsets and with a partition leader's Conn
	// (ListOffsets v1).
	qs := timeQueries(consumed, nil)
	checkTimeQueries(t, "Client.ListOffsets by time", qs, func(q timeQuery) (int64, int64, error) {
		return kafkagoListOffset(ctx, client, topic, q.Partition, time.UnixMilli(q.Time))
	})
	conns := map[int32]*kafka.Conn{}
	for p := int32(0); p < partitions; p++ {
		c, err := kafka.DialLeader(ctx, "tcp", tb.addr, topic, int(p))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[p] = c
	}
	checkTimeQueries(t, "Conn.ReadOffset", qs, func(q timeQuery) (int64, int64, error) {
		off, err := conns[q.Partition].ReadOffset(time.UnixMilli(q.Time))
		return off, noTimestamp, err
	})

	// DeleteRecords: kafka-go has no DeleteRecords API, so the records are deleted with
	// franz-go's kadm; what is checked is kafka-go's view: the first offset and a Reader
	// starting from FirstOffset.
	cut := deleteUpTo(ends)
	kcl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	var dels kadm.Offsets
	for p, o := range cut {
		dels.AddOffset(topic, p, o, -1)
	}
	dres, err := kadm.NewClient(kcl).DeleteRecords(ctx, dels)
	if err != nil {
		t.Fatalf("DeleteRecords (kadm): %v", err)
	}
	dres.Each(func(r kadm.DeleteRecordsResponse) {
		if r.Err != nil || r.LowWatermark != cut[r.Partition] {
			t.Fatalf("DeleteRecords (kadm) p%d: low watermark %d, %v; want %d", r.Partition, r.LowWatermark, r.Err, cut[r.Partition])
		}
	})
	for p, start := range cut {
		first, err := conns[p].ReadFirstOffset()
		if err != nil || first != start {
			t.Fatalf("Conn.ReadFirstOffset p%d after DeleteRecords = %d, %v; want %d", p, first, err, start)
		}
	}
	after := kafkagoConsume(t, tb.addr, topic, ends, cut)
	checkAfterDelete(t, consumed, after, cut)
	checkTimeQueries(t, "Client.ListOffsets by time after DeleteRecords", timeQueriesBeforeAll(consumed, cut), func(q timeQuery) (int64, int64, error) {
		return kafkagoListOffset(ctx, client, topic, q.Partition, time.UnixMilli(q.Time))
	})

	// max.message.bytes, set with AlterConfigs and IncrementalAlterConfigs.
	const limited = "kafka-go-limited"
	created, err = client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: limited, NumPartitions: 1, ReplicationFactor: 1}}})
	if err != nil || created.Errors[limited] != nil {
		t.Fatalf("CreateTopics %s: %v %v", limited, err, created.Errors)
	}
	w := &kafka.Writer{Addr: kafka.TCP(tb.addr), Topic: limited, Transport: transport, BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireOne, MaxAttempts: 1, ErrorLogger: kafkagoLogger("[kafka-go writer error] ")}
	defer w.Close()
	send := func(size int) error {
		err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: incompressible(size)})
		var werrs kafka.WriteErrors // has no Unwrap: errors.Is cannot see through it
		if errors.As(err, &werrs) && len(werrs) == 1 {
			err = werrs[0]
		}
		return err
	}
	tooLarge := func(step string) {
		t.Helper()
		if err := send(bigRecord); !errors.Is(err, kafka.MessageSizeTooLarge) {
			t.Fatalf("%s: produce of %d bytes: %v, want %v", step, bigRecord, err, kafka.MessageSizeTooLarge)
		}
		if err := send(100); err != nil {
			t.Fatalf("%s: produce of 100 bytes: %v", step, err)
		}
	}
	if err := send(bigRecord); err != nil {
		t.Fatalf("produce of %d bytes under the default limit: %v", bigRecord, err)
	}
	alt, err := client.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: limited,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: limitSmall}}}}})
	if err != nil {
		t.Fatalf("AlterConfigs: %v", err)
	}
	for res, err := range alt.Errors {
		if err != nil {
			t.Fatalf("AlterConfigs %v: %v", res, err)
		}
	}
	tooLarge("after AlterConfigs max.message.bytes=" + limitSmall)
	incr := func(v string) {
		t.Helper()
		res, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: limited,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: v, ConfigOperation: kafka.ConfigOperationSet}}}}})
		if err != nil {
			t.Fatalf("IncrementalAlterConfigs %s: %v", v, err)
		}
		for _, r := range res.Resources {
			if r.Error != nil {
				t.Fatalf("IncrementalAlterConfigs %s: %v", v, r.Error)
			}
		}
	}
	incr(limitLarge)
	if err := send(bigRecord); err != nil {
		t.Fatalf("produce of %d bytes after IncrementalAlterConfigs max.message.bytes=%s: %v", bigRecord, limitLarge, err)
	}
	incr(limitSmall2)
	tooLarge("after IncrementalAlterConfigs max.message.bytes=" + limitSmall2)
}

// kafkagoListOffset asks Client.ListOffsets for the offset of partition p at time at.
func kafkagoListOffset(ctx context.Context, client *kafka.Client, topic string, p int32, at time.Time) (int64, int64, error) {
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.TimeOffsetOf(int(p), at)}}})
	if err != nil {
		return -1, -1, err
	}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return -1, -1, po.Error
		}
		for off := range po.Offsets {
			// kafka-go overwrites the response's timestamp with the requested time
			// (protocol/listoffsets Response.Merge), so the record's is not known.
			return off, noTimestamp, nil
		}
	}
	return -1, -1, fmt.Errorf("no offset in %+v", res.Topics)
}

// kafkagoWaitEnds waits until each partition's end offset is exactly ends.
func kafkagoWaitEnds(t *testing.T, client *kafka.Client, topic string, ends map[int32]int64) {
	t.Helper()
	eventually(t, "end offsets", func() error {
		req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
		for p := range ends {
			req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(int(p)))
		}
		res, err := client.ListOffsets(context.Background(), req)
		if err != nil {
			return err
		}
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				return po.Error
			}
			if po.LastOffset != ends[int32(po.Partition)] {
				return fmt.Errorf("partition %d ends at %d, want %d", po.Partition, po.LastOffset, ends[int32(po.Partition)])
			}
		}
		return nil
	})
}

// kafkagoConsume reads every partition from FirstOffset with a Reader (no group) until its
// end offset, and checks that the first offset read is start[p].
func kafkagoConsume(t *testing.T, addr, topic string, ends, start map[int32]int64) []record {
	t.Helper()
	var out []record
	for p := int32(0); p < partitions; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: int(p),
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond, StartOffset: kafka.FirstOffset,
			Logger: kafkagoLogger("[kafka-go reader] "), ErrorLogger: kafkagoLogger("[kafka-go reader error] ")})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for n := start[p]; n < ends[p]; n++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("partition %d: read %d of %d: %v", p, n, ends[p], err)
			}
			if n == start[p] && m.Offset != start[p] {
				t.Fatalf("partition %d: first record read from FirstOffset is at %d, want %d", p, m.Offset, start[p])
			}
			rec := record{Key: string(m.Key), Value: string(m.Value), Time: m.Time, Partition: int32(m.Partition), Offset: m.Offset}
			for _, h := range m.Headers {
				rec.Headers = append(rec.Headers, header{h.Key, string(h.Value)})
			}
			out = append(out, rec)
		}
		cancel()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
