package compat

// Transactions driven by confluent-kafka-go (librdkafka): a transactional producer, consumers of
// both isolation levels, and offsets sent to a transaction on behalf of a consumer group. The
// helpers txnRec, txnSorted, txnCheck, txnGroupOffsets and startTxnBroker serve
// txn_sarama_test.go too.

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/spate-broker/spate/broker"
)

// txnRec is one record as produced (where the producer was told it went) or consumed.
type txnRec struct {
	P      int32
	Offset int64
	Key    string
	Value  string
}

func (r txnRec) String() string { return fmt.Sprintf("p%d@%d %s=%s", r.P, r.Offset, r.Key, r.Value) }

// txnSorted is the records of recs ordered by partition, then offset: what a consumer reading
// each partition in turn must see.
func txnSorted(recs ...[]txnRec) []txnRec {
	var out []txnRec
	for _, rs := range recs {
		out = append(out, rs...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].P != out[j].P {
			return out[i].P < out[j].P
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// txnCheckProduced asserts that a transaction's records went to every one of parts partitions,
// each key to one partition, and that within a partition the offsets follow the produce order.
func txnCheckProduced(t *testing.T, what string, recs []txnRec, parts int32) {
	t.Helper()
	last := map[int32]int64{}
	keyAt := map[string]int32{}
	for _, r := range recs {
		if r.Offset < 0 {
			t.Fatalf("%s: %v has no offset", what, r)
		}
		if prev, ok := last[r.P]; ok && r.Offset <= prev {
			t.Fatalf("%s: %v produced after offset %d of its partition", what, r, prev)
		}
		last[r.P] = r.Offset
		if p, ok := keyAt[r.Key]; ok && p != r.P {
			t.Fatalf("%s: key %s in partitions %d and %d", what, r.Key, p, r.P)
		}
		keyAt[r.Key] = r.P
	}
	if int32(len(last)) != parts {
		t.Fatalf("%s: records in partitions %v, want all %d: %v", what, last, parts, recs)
	}
}

// txnCheck asserts that got is exactly want: the same records, at the same offsets, in the same
// order.
func txnCheck(t *testing.T, what string, got, want []txnRec) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: consumed %d records\n%v\nwant %d\n%v", what, len(got), got, len(want), want)
	}
}

// startTxnBroker is a broker with group timers for tests and a small __transaction_state.
func startTxnBroker(t *testing.T) *testBroker {
	t.Helper()
	return startBroker(t, func(c *broker.Config) {
		c.Groups.InitialRebalanceDelay = 100 * time.Millisecond
		c.Groups.MinSessionTimeout = 100 * time.Millisecond
		c.Txn.StatePartitions = 5
	})
}

// txnGroupOffsets returns the group's committed offsets (OffsetFetch with require_stable, so
// that a pending transactional commit would be an error), as topic → partition → offset.
func txnGroupOffsets(t *testing.T, adm *kadm.Client, group string) map[string]map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := adm.FetchOffsets(kadm.RequireStable(ctx), group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[string]map[int32]int64{}
	for topic, ps := range res {
		for p, o := range ps {
			if o.Err != nil {
				t.Fatalf("fetch offsets of %s: %s/%d: %v", group, topic, p, o.Err)
			}
			if out[topic] == nil {
				out[topic] = map[int32]int64{}
			}
			out[topic][p] = o.At
		}
	}
	return out
}

// txnConfluentProducer is a transactional librdkafka producer, initialized.
func txnConfluentProducer(ctx context.Context, t *testing.T, addr, txnID string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(confluentConfig(addr, kafka.ConfigMap{
		"transactional.id": txnID, "linger.ms": 5, "transaction.timeout.ms": 30000}))
	if err != nil {
		t.Fatal(err)
	}
	go func() { // serve the events channel: errors are logged, delivery reports go per message
		for ev := range p.Events() {
			if e, ok := ev.(kafka.Error); ok {
				t.Logf("producer %s: error event: %v", txnID, e)
			}
		}
	}()
	t.Cleanup(p.Close)
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatalf("InitTransactions %s: %v", txnID, err)
	}
	return p
}

// txnConfluentSend produces records (Partition -1 for the default partitioner) in the current
// transaction and waits for every delivery report: after it, the records are in the log.
func txnConfluentSend(ctx context.Context, t *testing.T, p *kafka.Producer, topic string, recs []txnRec) []txnRec {
	t.Helper()
	reports := make(chan kafka.Event, len(recs))
	for i, r := range recs {
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: []byte(r.Key), Value: []byte(r.Value), Opaque: i}
		if err := p.Produce(m, reports); err != nil {
			t.Fatalf("produce %v: %v", r, err)
		}
	}
	out := make([]txnRec, len(recs))
	for range recs {
		select {
		case ev := <-reports:
			m := ev.(*kafka.Message)
			if m.TopicPartition.Error != nil {
				t.Fatalf("delivery of %s: %v", m.Value, m.TopicPartition.Error)
			}
			i := m.Opaque.(int)
			out[i] = recs[i]
			out[i].P, out[i].Offset = m.TopicPartition.Partition, int64(m.TopicPartition.Offset)
		case <-ctx.Done():
			t.Fatalf("delivery reports: %v", ctx.Err())
		}
	}
	return out
}

// txnKeyed is n records prefix-00.. keyed key-0..key-9 round robin.
func txnKeyed(prefix string, n int) []txnRec {
	out := make([]txnRec, n)
	for i := range out {
		out[i] = txnRec{P: -1, Offset: -1, Key: fmt.Sprintf("key-%d", i%10), Value: fmt.Sprintf("%s-%02d", prefix, i)}
	}
	return out
}

// txnConfluentTxn runs one transaction of n keyed records and commits or aborts it once every
// record was delivered (so that an aborted transaction's records are in the log too).
func txnConfluentTxn(ctx context.Context, t *testing.T, p *kafka.Producer, topic, prefix string, n int, commit bool) []txnRec {
	t.Helper()
	if err := p.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction %s: %v", prefix, err)
	}
	recs := txnConfluentSend(ctx, t, p, topic, txnKeyed(prefix, n))
	txnCheckProduced(t, prefix, recs, partitions)
	txnConfluentEnd(ctx, t, p, prefix, commit)
	return recs
}

func txnConfluentEnd(ctx context.Context, t *testing.T, p *kafka.Producer, what string, commit bool) {
	t.Helper()
	if commit {
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatalf("CommitTransaction %s: %v", what, err)
		}
	} else if err := p.AbortTransaction(ctx); err != nil {
		t.Fatalf("AbortTransaction %s: %v", what, err)
	}
}

// txnConfluentRead assigns every partition of topic from the beginning to a new consumer with
// the isolation level and reads until it holds want records, then 1 s more (anything else would
// arrive then); it returns what it read, partition by partition in the order read.
func txnConfluentRead(t *testing.T, addr, topic, isolation string, want int) []txnRec {
	t.Helper()
	c, err := kafka.NewConsumer(confluentConfig(addr, kafka.ConfigMap{
		"group.id": "compat-confluent-txn-unused", "enable.auto.commit": false, "enable.auto.offset.store": false,
		"auto.offset.reset": "earliest", "fetch.wait.max.ms": 100, "isolation.level": isolation}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var assign []kafka.TopicPartition
	for p := int32(0); p < partitions; p++ {
		assign = append(assign, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(assign); err != nil {
		t.Fatal(err)
	}
	got := map[int32][]txnRec{}
	n := 0
	deadline := time.Now().Add(20 * time.Second)
	var quietUntil time.Time
	for {
		now := time.Now()
		if n >= want && quietUntil.IsZero() {
			quietUntil = now.Add(time.Second)
		}
		if !quietUntil.IsZero() && !now.Before(quietUntil) {
			break
		}
		if now.After(deadline) {
			t.Fatalf("%s %s: consumed %d of %d records: %v", topic, isolation, n, want, got)
		}
		switch ev := c.Poll(100).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				t.Fatalf("consume %s %s: %v", topic, isolation, ev.TopicPartition.Error)
			}
			p := ev.TopicPartition.Partition
			got[p] = append(got[p], txnRec{P: p, Offset: int64(ev.TopicPartition.Offset), Key: string(ev.Key), Value: string(ev.Value)})
			n++
		case kafka.Error:
			if ev.IsFatal() {
				t.Fatalf("consume %s %s: %v", topic, isolation, ev)
			}
			t.Logf("consumer error event: %v", ev)
		}
	}
	var out []txnRec
	for p := int32(0); p < partitions; p++ {
		out = append(out, got[p]...)
	}
	return out
}

// TestTxnConfluent runs a confluent-kafka-go (librdkafka) transactional producer against the
// broker: InitTransactions, then a committed transaction of 30 keyed records over three
// partitions, an aborted one (its 30 records delivered before AbortTransaction) and another
// committed one. A read_committed consumer reads exactly the 60 committed records (per
// partition, at the offsets of their delivery reports, in produce order) and a
// read_uncommitted one all 90.
//
// Then consume-transform-produce with a consumer group: a group consumer (read_committed,
// enable.auto.commit false) reads 12 records of an input topic; a transaction produces one
// output record per input record and sends the offsets after them (4 per partition) with the
// consumer's group metadata (member and generation: KIP-447): once committed, OffsetFetch
// (require_stable) and the consumer's Committed give exactly those offsets. A second
// transaction sends offsets 1 and is aborted: the group's offsets stay at 4. read_committed
// reads exactly the 12 committed output records; read_uncommitted the aborted ones too.
func TestTxnConfluent(t *testing.T) {
	start := time.Now()
	tb := startTxnBroker(t)
	ctx := testContext(t)
	admin, err := kafka.NewAdminClient(confluentConfig(tb.addr, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const topic, in, out, group = "confluent-txn", "confluent-txn-in", "confluent-txn-out", "confluent-txn-group"
	for _, tp := range []string{topic, in, out} {
		confluentCreateTopic(ctx, t, admin, tp, partitions)
	}

	p := txnConfluentProducer(ctx, t, tb.addr, "confluent-tx")
	c1 := txnConfluentTxn(ctx, t, p, topic, "c1", 30, true)
	ab := txnConfluentTxn(ctx, t, p, topic, "ab", 30, false)
	c2 := txnConfluentTxn(ctx, t, p, topic, "c2", 30, true)
	txnCheck(t, "read_committed", txnConfluentRead(t, tb.addr, topic, "read_committed", 60), txnSorted(c1, c2))
	txnCheck(t, "read_uncommitted", txnConfluentRead(t, tb.addr, topic, "read_uncommitted", 90), txnSorted(c1, ab, c2))

	// Consume-transform-produce: offsets sent to the transaction with the group's metadata.
	groupProduce(t, tb.addr, in, partitions, 0, 12) // v<i> at partition i%3, offset i/3
	gc, err := kafka.NewConsumer(confluentConfig(tb.addr, kafka.ConfigMap{
		"group.id": group, "enable.auto.commit": false, "auto.offset.reset": "earliest",
		"session.timeout.ms": 6000, "heartbeat.interval.ms": 200, "fetch.wait.max.ms": 100,
		"isolation.level": "read_committed"}))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if err := gc.Subscribe(in, nil); err != nil {
		t.Fatal(err)
	}
	var inputs []txnRec
	deadline := time.Now().Add(30 * time.Second)
	for len(inputs) < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("group consumer read %d of 12 input records: %v", len(inputs), inputs)
		}
		switch ev := gc.Poll(100).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				t.Fatalf("group consumer: %v", ev.TopicPartition.Error)
			}
			inputs = append(inputs, txnRec{P: ev.TopicPartition.Partition, Offset: int64(ev.TopicPartition.Offset), Key: string(ev.Key), Value: string(ev.Value)})
		case kafka.Error:
			if ev.IsFatal() {
				t.Fatalf("group consumer: %v", ev)
			}
			t.Logf("group consumer error event: %v", ev)
		}
	}
	var wantIn []txnRec
	for i := 0; i < 12; i++ {
		wantIn = append(wantIn, txnRec{P: int32(i % 3), Offset: int64(i / 3), Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("v%d", i)})
	}
	txnCheck(t, "group consumer", txnSorted(inputs), txnSorted(wantIn))
	md, err := gc.GetConsumerGroupMetadata()
	if err != nil {
		t.Fatal(err)
	}
	adm := groupAdmin(t, tb.addr)
	if got := txnGroupOffsets(t, adm, group); len(got) != 0 {
		t.Fatalf("offsets of %s before any transaction: %v, want none", group, got)
	}
	offsetsAt := func(o int64) []kafka.TopicPartition {
		var tps []kafka.TopicPartition
		for p := int32(0); p < partitions; p++ {
			tps = append(tps, kafka.TopicPartition{Topic: strPtr(in), Partition: p, Offset: kafka.Offset(o)})
		}
		return tps
	}

	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var transformed []txnRec
	for _, r := range inputs {
		transformed = append(transformed, txnRec{Key: r.Key, Value: "out-" + r.Value})
	}
	outs := txnConfluentSend(ctx, t, p, out, transformed)
	if err := p.SendOffsetsToTransaction(ctx, offsetsAt(4), md); err != nil {
		t.Fatalf("SendOffsetsToTransaction: %v", err)
	}
	txnConfluentEnd(ctx, t, p, "with offsets 4", true)
	want := map[string]map[int32]int64{in: {0: 4, 1: 4, 2: 4}}
	if got := txnGroupOffsets(t, adm, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s after the committed transaction: %v, want %v", group, got, want)
	}
	committed, err := gc.Committed(offsetsAt(int64(kafka.OffsetInvalid)), 10000)
	if err != nil {
		t.Fatalf("Committed: %v", err)
	}
	for _, tp := range committed {
		if tp.Error != nil || *tp.Topic != in || tp.Offset != 4 {
			t.Fatalf("Committed: %v, want offset 4 of every partition of %s", committed, in)
		}
	}
	if len(committed) != int(partitions) {
		t.Fatalf("Committed: %v, want %d partitions", committed, partitions)
	}

	// An aborted transaction's offsets are never installed.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	abortedOuts := txnConfluentSend(ctx, t, p, out, txnKeyed("out-aborted", 6))
	if err := p.SendOffsetsToTransaction(ctx, offsetsAt(1), md); err != nil {
		t.Fatalf("SendOffsetsToTransaction (to abort): %v", err)
	}
	txnConfluentEnd(ctx, t, p, "with offsets 1", false)
	if got := txnGroupOffsets(t, adm, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s after the aborted transaction: %v, want %v", group, got, want)
	}
	txnCheck(t, "read_committed output", txnConfluentRead(t, tb.addr, out, "read_committed", 12), txnSorted(outs))
	txnCheck(t, "read_uncommitted output", txnConfluentRead(t, tb.addr, out, "read_uncommitted", 18), txnSorted(outs, abortedOuts))
	if got := txnGroupOffsets(t, adm, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s at the end: %v, want %v", group, got, want)
	}
	t.Logf("done in %v", time.Since(start))
}

func strPtr(s string) *string { return &s }
