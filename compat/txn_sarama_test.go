package compat

// Transactions driven by IBM/sarama: a transactional SyncProducer, partition consumers of both
// isolation levels, and offsets added to transactions for a consumer group (the shared helpers
// are in txn_confluent_test.go).

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// txnSaramaConfig is the configuration of a transactional sarama producer.
func txnSaramaConfig(txnID string) *sarama.Config {
	cfg := saramaConfig()
	cfg.Producer.Transaction.ID = txnID
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	return cfg
}

// txnSaramaSend sends records (keyed, hash partitioner) with SendMessages and returns where
// each went.
func txnSaramaSend(t *testing.T, p sarama.SyncProducer, topic string, recs []txnRec) []txnRec {
	t.Helper()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.Key), Value: sarama.StringEncoder(r.Value)}
	}
	if err := p.SendMessages(msgs); err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			err = perrs[0].Err
		}
		t.Fatalf("produce to %s: %v", topic, err)
	}
	out := make([]txnRec, len(recs))
	for i, m := range msgs {
		out[i] = recs[i]
		out[i].P, out[i].Offset = m.Partition, m.Offset
	}
	return out
}

// txnSaramaTxn runs one transaction of n keyed records: BeginTxn, SendMessages (every record
// acknowledged), then CommitTxn or AbortTxn.
func txnSaramaTxn(t *testing.T, p sarama.SyncProducer, topic, prefix string, n int, commit bool) []txnRec {
	t.Helper()
	if err := p.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn %s: %v", prefix, err)
	}
	recs := txnSaramaSend(t, p, topic, txnKeyed(prefix, n))
	txnCheckProduced(t, prefix, recs, partitions)
	txnSaramaEnd(t, p, prefix, commit)
	return recs
}

func txnSaramaEnd(t *testing.T, p sarama.SyncProducer, what string, commit bool) {
	t.Helper()
	if commit {
		if err := p.CommitTxn(); err != nil {
			t.Fatalf("CommitTxn %s: %v", what, err)
		}
	} else if err := p.AbortTxn(); err != nil {
		t.Fatalf("AbortTxn %s: %v", what, err)
	}
	if s := p.TxnStatus(); s != sarama.ProducerTxnFlagReady {
		t.Fatalf("after ending %s: transaction status %v, want ready", what, s)
	}
}

// txnSaramaRead reads every partition of topic from the oldest offset with partition
// consumers of the isolation level until it holds want records, then 1 s more (anything else
// would arrive then); it returns what it read, partition by partition in the order read.
func txnSaramaRead(t *testing.T, addr, topic string, iso sarama.IsolationLevel, want int) []txnRec {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.IsolationLevel = iso
	c, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs := make(chan txnRec)
	errs := make(chan error, partitions)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := int32(0); p < partitions; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition %d: %v", p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case m := <-pc.Messages():
					select {
					case recs <- txnRec{P: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value)}:
					case <-stop:
						return
					}
				case err := <-pc.Errors():
					errs <- err
					return
				case <-stop:
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	got := map[int32][]txnRec{}
	n := 0
	timeout := time.After(20 * time.Second)
	var quiet <-chan time.Time
	for done := false; !done; {
		if n >= want && quiet == nil {
			quiet = time.After(time.Second)
		}
		select {
		case r := <-recs:
			got[r.P] = append(got[r.P], r)
			n++
		case err := <-errs:
			t.Fatalf("consume %s (isolation %d): %v", topic, iso, err)
		case <-timeout:
			t.Fatalf("consume %s (isolation %d): %d of %d records: %v", topic, iso, n, want, got)
		case <-quiet:
			done = true
		}
	}
	var out []txnRec
	for p := int32(0); p < partitions; p++ {
		out = append(out, got[p]...)
	}
	return out
}

// txnSaramaOffsets returns the group's committed offsets as sarama's ClusterAdmin lists them,
// topic → partition → offset.
func txnSaramaOffsets(t *testing.T, admin sarama.ClusterAdmin, group string) map[string]map[int32]int64 {
	t.Helper()
	res, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets %s: %v", group, err)
	}
	out := map[string]map[int32]int64{}
	for topic, ps := range res.Blocks {
		for p, b := range ps {
			if !errors.Is(b.Err, sarama.ErrNoError) {
				t.Fatalf("ListConsumerGroupOffsets %s: %s/%d: %v", group, topic, p, b.Err)
			}
			if out[topic] == nil {
				out[topic] = map[int32]int64{}
			}
			out[topic][p] = b.Offset
		}
	}
	return out
}

// txnSaramaHandler is a consume-transform-produce group member: for each record of a claim, a
// transaction produces "out-<value>" and adds the record's offset with the session's group
// metadata (AddMessageToTxnWithGroupMetadata), then commits. One transaction at a time: the
// claims of the partitions share the producer.
type txnSaramaHandler struct {
	p       sarama.SyncProducer
	group   string
	out     string
	mu      sync.Mutex
	inputs  []txnRec
	outputs []txnRec
	done    chan struct{} // closed after the 12th transaction
	errs    []error
}

func (h *txnSaramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *txnSaramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *txnSaramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		if err := h.transform(sess, m); err != nil {
			h.mu.Lock()
			h.errs = append(h.errs, err)
			h.mu.Unlock()
			return err
		}
	}
	return nil
}

func (h *txnSaramaHandler) transform(sess sarama.ConsumerGroupSession, m *sarama.ConsumerMessage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.p.BeginTxn(); err != nil {
		return fmt.Errorf("BeginTxn: %w", err)
	}
	out := &sarama.ProducerMessage{Topic: h.out, Key: sarama.ByteEncoder(m.Key), Value: sarama.StringEncoder("out-" + string(m.Value))}
	if _, _, err := h.p.SendMessage(out); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	md := sarama.NewConsumerGroupMetadataFromSession(sess, h.group, nil)
	if err := h.p.AddMessageToTxnWithGroupMetadata(m, md, nil); err != nil {
		return fmt.Errorf("AddMessageToTxnWithGroupMetadata %d@%d: %w", m.Partition, m.Offset, err)
	}
	if err := h.p.CommitTxn(); err != nil {
		return fmt.Errorf("CommitTxn: %w", err)
	}
	h.inputs = append(h.inputs, txnRec{P: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value)})
	h.outputs = append(h.outputs, txnRec{P: out.Partition, Offset: out.Offset, Key: string(m.Key), Value: "out-" + string(m.Value)})
	if len(h.inputs) == 12 {
		close(h.done)
	}
	return nil
}

// TestTxnSarama runs an IBM/sarama transactional SyncProducer (Transaction.ID, idempotent,
// acks all, one request in flight) against the broker: a committed transaction of 30 keyed
// records over three partitions (BeginTxn, SendMessages, CommitTxn), an aborted one (AbortTxn
// after every record was acknowledged) and another committed one. Partition consumers with
// IsolationLevel ReadCommitted read exactly the 60 committed records (per partition, at the
// offsets the producer was told, in produce order); ReadUncommitted ones read all 90.
//
// Then consume-transform-produce with a sarama ConsumerGroup (auto commit off, ReadCommitted):
// each of 12 input records gets its own transaction producing one output record and adding
// the input's offset with AddMessageToTxnWithGroupMetadata (the session's member and
// generation: KIP-447). The group's committed offsets (ClusterAdmin.ListConsumerGroupOffsets)
// are then exactly 4 per partition. With the group empty, AddOffsetsToTxn (group id only)
// with offsets 1 in an aborted transaction leaves them at 4; with offsets 2 in a committed
// transaction that produces nothing else, it sets them to 2. ReadCommitted reads exactly the 12
// committed output records; ReadUncommitted the aborted one too.
func TestTxnSarama(t *testing.T) {
	if debugLevel() > 0 {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
	start := time.Now()
	tb := startTxnBroker(t)
	const topic, in, out, group = "sarama-txn", "sarama-txn-in", "sarama-txn-out", "sarama-txn-group"
	admin, err := sarama.NewClusterAdminFromClient(newSaramaClient(t, tb.addr, saramaConfig()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{topic, in, out} {
		if err := admin.CreateTopic(tp, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("CreateTopic %s: %v", tp, err)
		}
	}

	p, err := sarama.NewSyncProducer([]string{tb.addr}, txnSaramaConfig("sarama-tx"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.IsTransactional() {
		t.Fatal("the producer is not transactional")
	}
	c1 := txnSaramaTxn(t, p, topic, "c1", 30, true)
	ab := txnSaramaTxn(t, p, topic, "ab", 30, false)
	c2 := txnSaramaTxn(t, p, topic, "c2", 30, true)
	txnCheck(t, "ReadCommitted", txnSaramaRead(t, tb.addr, topic, sarama.ReadCommitted, 60), txnSorted(c1, c2))
	txnCheck(t, "ReadUncommitted", txnSaramaRead(t, tb.addr, topic, sarama.ReadUncommitted, 90), txnSorted(c1, ab, c2))

	// Consume-transform-produce in a consumer group.
	groupProduce(t, tb.addr, in, partitions, 0, 12) // v<i> at partition i%3, offset i/3
	gcfg := saramaConfig()
	gcfg.Consumer.IsolationLevel = sarama.ReadCommitted
	gcfg.Consumer.Offsets.AutoCommit.Enable = false
	gcfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	gcfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	gcfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cg, err := sarama.NewConsumerGroup([]string{tb.addr}, group, gcfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for err := range cg.Errors() {
			t.Logf("consumer group error: %v", err)
		}
	}()
	h := &txnSaramaHandler{p: p, group: group, out: out, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{in}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case err := <-consumed:
		cancel()
		t.Fatalf("consumer group stopped: %v (handler errors %v)", err, h.errs)
	case <-time.After(30 * time.Second):
		cancel()
		h.mu.Lock()
		n, herrs := len(h.inputs), h.errs
		h.mu.Unlock()
		t.Fatalf("consume-transform-produce: %d of 12 transactions (handler errors %v)", n, herrs)
	}
	cancel()
	if err := <-consumed; err != nil {
		t.Fatalf("consumer group: %v", err)
	}
	if err := cg.Close(); err != nil {
		t.Fatalf("close consumer group: %v", err)
	}
	h.mu.Lock()
	inputs, outs, herrs := h.inputs, h.outputs, h.errs
	h.mu.Unlock()
	if len(herrs) != 0 || len(inputs) != 12 {
		t.Fatalf("consume-transform-produce: %d transactions, errors %v", len(inputs), herrs)
	}
	var wantIn []txnRec
	for i := 0; i < 12; i++ {
		wantIn = append(wantIn, txnRec{P: int32(i % 3), Offset: int64(i / 3), Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("v%d", i)})
	}
	txnCheck(t, "group input", txnSorted(inputs), txnSorted(wantIn))
	want := map[string]map[int32]int64{in: {0: 4, 1: 4, 2: 4}}
	if got := txnSaramaOffsets(t, admin, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s after AddMessageToTxn: %v, want %v", group, got, want)
	}
	offsetsAt := func(o int64) map[string][]*sarama.PartitionOffsetMetadata {
		var ps []*sarama.PartitionOffsetMetadata
		for p := int32(0); p < partitions; p++ {
			ps = append(ps, &sarama.PartitionOffsetMetadata{Partition: p, Offset: o})
		}
		return map[string][]*sarama.PartitionOffsetMetadata{in: ps}
	}

	// AddOffsetsToTxn in an aborted transaction: nothing changes.
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	abortedOut := txnSaramaSend(t, p, out, []txnRec{{Key: "k-aborted", Value: "out-aborted"}})
	if err := p.AddOffsetsToTxn(offsetsAt(1), group); err != nil {
		t.Fatalf("AddOffsetsToTxn (to abort): %v", err)
	}
	txnSaramaEnd(t, p, "with offsets 1", false)
	if got := txnSaramaOffsets(t, admin, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s after the aborted AddOffsetsToTxn: %v, want %v", group, got, want)
	}

	// AddOffsetsToTxn in a committed transaction of offsets only.
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	if err := p.AddOffsetsToTxn(offsetsAt(2), group); err != nil {
		t.Fatalf("AddOffsetsToTxn: %v", err)
	}
	txnSaramaEnd(t, p, "with offsets 2", true)
	want = map[string]map[int32]int64{in: {0: 2, 1: 2, 2: 2}}
	if got := txnSaramaOffsets(t, admin, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s after the committed AddOffsetsToTxn: %v, want %v", group, got, want)
	}
	if got := txnGroupOffsets(t, groupAdmin(t, tb.addr), group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("offsets of %s (require_stable): %v, want %v", group, got, want)
	}

	txnCheck(t, "ReadCommitted output", txnSaramaRead(t, tb.addr, out, sarama.ReadCommitted, 12), txnSorted(outs))
	txnCheck(t, "ReadUncommitted output", txnSaramaRead(t, tb.addr, out, sarama.ReadUncommitted, 13), txnSorted(outs, abortedOut))
	t.Logf("done in %v", time.Since(start))
}
