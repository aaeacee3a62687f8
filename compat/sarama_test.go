package compat

import (
	"errors"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "compat-sarama"
	cfg.Version = sarama.V3_6_0_0 // zstd needs 2.1+; recent request versions
	cfg.Metadata.RefreshFrequency = time.Minute
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
	return cfg
}

var saramaCodecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

var saramaAcks = map[string]sarama.RequiredAcks{"0": sarama.NoResponse, "1": sarama.WaitForLocal, "all": sarama.WaitForAll}

func newSaramaClient(t *testing.T, addr string, cfg *sarama.Config) sarama.Client {
	t.Helper()
	cl, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestSarama runs github.com/IBM/sarama against the broker: topic creation with
// ClusterAdmin, produce with every codec and acks 0/1/all (idempotent with acks=all),
// partition consumers, GetOffset by time, DeleteRecords, and max.message.bytes set with
// AlterConfigs and IncrementalAlterConfigs.
func TestSarama(t *testing.T) {
	if debugLevel() > 0 {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
	tb := startBroker(t, nil)
	const topic = "sarama-e2e"
	adminClient := newSaramaClient(t, tb.addr, saramaConfig())
	admin, err := sarama.NewClusterAdminFromClient(adminClient)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	client := newSaramaClient(t, tb.addr, saramaConfig())

	// Produce: one SyncProducer per codec and acks, each run sent as one SendMessages.
	var produced []record
	for _, codec := range codecs {
		for _, acks := range ackings {
			cfg := saramaConfig()
			cfg.Producer.Compression = saramaCodecs[codec]
			cfg.Producer.RequiredAcks = saramaAcks[acks]
			if acks == "all" {
				cfg.Producer.Idempotent = true
				cfg.Net.MaxOpenRequests = 1
			}
			run := makeRun(codec, acks, len(produced))
			msgs := make([]*sarama.ProducerMessage, len(run))
			for i, r := range run {
				msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.Key),
					Value: sarama.StringEncoder(r.Value), Timestamp: r.Time}
				for _, h := range r.Headers {
					msgs[i].Headers = append(msgs[i].Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: []byte(h.Value)})
				}
			}
			p, err := sarama.NewSyncProducer([]string{tb.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.SendMessages(msgs); err != nil {
				var perrs sarama.ProducerErrors
				if errors.As(err, &perrs) && len(perrs) > 0 {
					err = perrs[0].Err
				}
				t.Fatalf("produce %s acks=%s: %v", codec, acks, err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				run[i].Partition = m.Partition
				if acks != "0" { // acks=0 answers nothing: sarama leaves Offset unset
					run[i].Offset = m.Offset
				}
			}
			produced = append(produced, run...)
			// acks=0 is answered by nothing: wait until every record is in before the next run
			// (else a later run could overtake it and break the per-key order).
			saramaWaitEnds(t, client, topic, endOffsets(produced))
		}
	}

	checkProducedBatches(t, tb, topic, true)

	consumed := saramaConsume(t, tb.addr, topic, endOffsets(produced), map[int32]int64{})
	checkConsumed(t, produced, consumed)

	// ListOffsets by timestamp.
	checkTimeQueries(t, "GetOffset by time", timeQueries(consumed, nil), func(q timeQuery) (int64, int64, error) {
		off, err := client.GetOffset(topic, q.Partition, q.Time)
		return off, noTimestamp, err
	})

	// DeleteRecords: the log start moves, and a consumer from the oldest offset starts there.
	ends := endOffsets(produced)
	cut := deleteUpTo(ends)
	if err := admin.DeleteRecords(topic, cut); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	for p, start := range cut {
		got, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil || got != start {
			t.Fatalf("GetOffset(p%d, oldest) after DeleteRecords = %d, %v; want %d", p, got, err, start)
		}
	}
	after := saramaConsume(t, tb.addr, topic, ends, cut)
	checkAfterDelete(t, consumed, after, cut)
	checkTimeQueries(t, "GetOffset by time after DeleteRecords", timeQueriesBeforeAll(consumed, cut), func(q timeQuery) (int64, int64, error) {
		off, err := client.GetOffset(topic, q.Partition, q.Time)
		return off, noTimestamp, err
	})

	// max.message.bytes, set with AlterConfigs and IncrementalAlterConfigs.
	const limited = "sarama-limited"
	if err := admin.CreateTopic(limited, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	cfg := saramaConfig()
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	p, err := sarama.NewSyncProducer([]string{tb.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(size int) error {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: limited, Key: sarama.StringEncoder("k"), Value: sarama.ByteEncoder(incompressible(size))})
		return err
	}
	tooLarge := func(step string) {
		t.Helper()
		if err := send(bigRecord); !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
			t.Fatalf("%s: produce of %d bytes: %v, want %v", step, bigRecord, err, sarama.ErrMessageSizeTooLarge)
		}
		if err := send(100); err != nil {
			t.Fatalf("%s: produce of 100 bytes: %v", step, err)
		}
	}
	if err := send(bigRecord); err != nil {
		t.Fatalf("produce of %d bytes under the default limit: %v", bigRecord, err)
	}
	v := limitSmall
	if err := admin.AlterConfig(sarama.TopicResource, limited, map[string]*string{"max.message.bytes": &v}, false); err != nil {
		t.Fatalf("AlterConfig: %v", err)
	}
	tooLarge("after AlterConfigs max.message.bytes=" + limitSmall)
	incr := func(v string) {
		t.Helper()
		err := admin.IncrementalAlterConfig(sarama.TopicResource, limited, map[string]sarama.IncrementalAlterConfigsEntry{
			"max.message.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}}, false)
		if err != nil {
			t.Fatalf("IncrementalAlterConfig %s: %v", v, err)
		}
	}
	incr(limitLarge)
	if err := send(bigRecord); err != nil {
		t.Fatalf("produce of %d bytes after IncrementalAlterConfigs max.message.bytes=%s: %v", bigRecord, limitLarge, err)
	}
	incr(limitSmall2)
	tooLarge("after IncrementalAlterConfigs max.message.bytes=" + limitSmall2)
}

// saramaWaitEnds waits until each partition's end offset (OffsetNewest) is exactly ends.
func saramaWaitEnds(t *testing.T, cl sarama.Client, topic string, ends map[int32]int64) {
	t.Helper()
	eventually(t, "end offsets", func() error {
		for p, want := range ends {
			got, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("partition %d ends at %d, want %d", p, got, want)
			}
		}
		return nil
	})
}

// saramaConsume reads every partition from OffsetOldest with a partition consumer until its
// end offset, and checks that the first offset is start[p].
func saramaConsume(t *testing.T, addr, topic string, ends, start map[int32]int64) []record {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []record
	for p := int32(0); p < partitions; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition %d: %v", p, err)
		}
		timeout := time.After(20 * time.Second)
		for n := start[p]; n < ends[p]; {
			select {
			case m := <-pc.Messages():
				r := record{Key: string(m.Key), Value: string(m.Value), Time: m.Timestamp, Partition: m.Partition, Offset: m.Offset}
				for _, h := range m.Headers {
					r.Headers = append(r.Headers, header{string(h.Key), string(h.Value)})
				}
				if n == start[p] && m.Offset != start[p] {
					t.Fatalf("partition %d: first record consumed from OffsetOldest is at %d, want %d", p, m.Offset, start[p])
				}
				out = append(out, r)
				n++
			case err := <-pc.Errors():
				t.Fatalf("partition %d: %v", p, err)
			case <-timeout:
				t.Fatalf("partition %d: consumed up to %d of %d", p, n, ends[p])
			}
		}
		if err := pc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
