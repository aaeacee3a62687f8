package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// eosMember runs franz-go's GroupTransactSession consume-transform-produce loop until ctx ends
// or stop is closed: every input record is produced to the output topic as "out:<value>"
// within a transaction that also commits the consumed offsets.
func eosMember(t *testing.T, addr, id string, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(addr),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup("eos-group"),
		kgo.ConsumeTopics("eos-in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic("eos-out"),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(200*time.Millisecond),
	)
	if err != nil {
		t.Error(err)
		return
	}
	defer s.Close()
	for {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := s.PollFetches(ctx)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, &kgo.Record{Key: r.Key, Value: append([]byte("out:"), r.Value...)})
		})
		if len(recs) == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			t.Errorf("%s: begin: %v", id, err)
			return
		}
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		perr := s.ProduceSync(ctx, recs...).FirstErr()
		committed, err := s.End(ctx, kgo.TransactionEndTry(perr == nil))
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("%s: end (committed=%v, produce err %v): %v", id, committed, perr, err)
		}
	}
}

// TestTxnGroupTransactSessionExactlyOnce: three GroupTransactSession members process an input
// topic over six partitions while members join and one leaves mid-stream; the output topic,
// read with read_committed, holds every input record exactly once.
func TestTxnGroupTransactSessionExactlyOnce(t *testing.T) {
	tb := startBroker(t, "", func(c *Config) {
		c.Groups.InitialRebalanceDelay = 0
	})
	adm := kadm.NewClient(newClient(t, tb.addr))
	admCreate(t, adm, "eos-in", 6, nil)
	admCreate(t, adm, "eos-out", 3, nil)
	const n = 3000
	prod := newClient(t, tb.addr, kgo.DefaultProduceTopic("eos-in"))
	produceRange := func(from, to int) {
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%50), Value: fmt.Appendf(nil, "in-%d", i)})
		}
		if err := prod.ProduceSync(admCtx(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceRange(0, n/3)

	// The output, read as it is committed.
	seen := map[string]int{}
	var mu sync.Mutex
	out := newClient(t, tb.addr, kgo.ConsumeTopics("eos-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			fs := out.PollFetches(ctx)
			cancel()
			if fs.IsClientClosed() {
				return
			}
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
			total := len(seen)
			mu.Unlock()
			if total >= n {
				return
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	waitFor := func(atLeast int) {
		deadline := time.Now().Add(90 * time.Second)
		for count() < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("output stuck at %d of %d", count(), atLeast)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var wg sync.WaitGroup
	stops := make([]chan struct{}, 3)
	for i := range stops {
		stops[i] = make(chan struct{})
	}
	wg.Add(1)
	go eosMember(t, tb.addr, "eos-0", stops[0], &wg)
	waitFor(n / 6)
	wg.Add(2)
	go eosMember(t, tb.addr, "eos-1", stops[1], &wg)
	go eosMember(t, tb.addr, "eos-2", stops[2], &wg)
	produceRange(n/3, 2*n/3)
	waitFor(n / 2)
	close(stops[0]) // a member leaves mid-stream
	produceRange(2*n/3, n)
	waitFor(n)
	close(stops[1])
	close(stops[2])
	wg.Wait()
	<-outDone

	// Read the whole output again, from the start, to catch duplicates committed late.
	got := consumeAll(t, tb.addr, "eos-out", true)
	counts := map[string]int{}
	for _, v := range got {
		counts[v]++
	}
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("out:in-%d", i)
		if counts[v] != 1 {
			t.Fatalf("%s appears %d times in the committed output (%d records)", v, counts[v], len(got))
		}
	}
	if len(got) != n {
		t.Fatalf("committed output has %d records, want %d", len(got), n)
	}
}
