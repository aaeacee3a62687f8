package compat

// The membership-change scenario the group tests of every client share: records flow while
// a member joins and, later, another leaves (see runMidStreamMembership).

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupStream produces records in the background as groupProduce numbers them (record i to
// partition i%partitions, value "v<i>"), one record per partition at a time, synchronously,
// a batch every interval — never past its limit until the limit is raised.
type groupStream struct {
	produced atomic.Int64 // records produced (acknowledged)
	limit    atomic.Int64 // records it may produce for now
	done     chan struct{}
	err      error // read after done
}

func startGroupStream(t *testing.T, addr, topic string, partitions int32, from, n, limit int, every time.Duration) *groupStream {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("compat-group-stream"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	s := &groupStream{done: make(chan struct{})}
	s.limit.Store(int64(limit))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	go func() {
		defer close(s.done)
		defer cancel()
		defer cl.Close()
		for i := from; i < from+n; i += int(partitions) {
			for s.produced.Load()+int64(partitions) > s.limit.Load() {
				if ctx.Err() != nil {
					s.err = ctx.Err()
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			rs := make([]*kgo.Record, 0, partitions)
			for j := i; j < i+int(partitions); j++ {
				rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(j) % partitions, Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("v%d", j))})
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				s.err = fmt.Errorf("produce records %d to %d: %w", i, i+int(partitions)-1, err)
				return
			}
			s.produced.Add(int64(partitions))
			time.Sleep(every)
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// waitProduced waits until at least n records were produced.
func (s *groupStream) waitProduced(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.produced.Load() < int64(n) {
		select {
		case <-s.done:
			if s.produced.Load() < int64(n) {
				t.Fatalf("stream ended after %d records (want %d): %v", s.produced.Load(), n, s.err)
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream: %d of %d records produced", s.produced.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *groupStream) finish(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("stream did not finish: %d records produced", s.produced.Load())
	}
	if s.err != nil {
		t.Fatalf("stream: %v", s.err)
	}
}

// processedBy is the number of records whose processed delivery went to who.
func (l *groupLedger) processedBy(who string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ds := range l.byRecord {
		for _, d := range ds {
			if d.who == who && d.processed() {
				n++
				break
			}
		}
	}
	return n
}

// midStreamCase is one client's run of runMidStreamMembership.
type midStreamCase struct {
	groupTopic       // partitions: a multiple of 6, so that two and three members share them evenly
	from       int64 // the group's committed offset of every partition when it starts
	prefix     string
	// start starts a member of the group noting its deliveries in l; stop makes it leave
	// the group (never between a record's delivery and its commit).
	start func(t *testing.T, name string, l *groupLedger) (stop func())
	// twiceOK says whether the client may process that many records twice in that many
	// rebalances (kafka-go's commit carried into the next generation); nil: never.
	twiceOK func(twice int, rebalances uint64) bool
	// owners waits until the group is settled with exactly the members named, covering every
	// partition once, and returns the owners; nil: groupOwners (DescribeGroups, a classic
	// group). A consumer group (KIP-848) is described with ConsumerGroupDescribe.
	owners func(t *testing.T, members ...string) map[int32]string
}

// settled is c.owners, or groupOwners.
func (c midStreamCase) settled(t *testing.T, members ...string) map[int32]string {
	t.Helper()
	if c.owners != nil {
		return c.owners(t, members...)
	}
	return groupOwners(t, c.adm, c.group, c.topic, c.partitions, members...)
}

// runMidStreamMembership: two members resume the group at c.from and a stream of 100
// records per partition starts. Once a quarter of it is produced and an eighth processed, a
// third member joins (records still flowing: the stream is held at two thirds until the
// join settled); the three share the partitions evenly. Then, with the stream released and
// flowing again, the second member leaves; the other two take its partitions over. In the
// end: every record was processed (delivered and committed) exactly once with its value —
// twice only as c.twiceOK allows —, every other delivery was of a record whose synchronous
// commit had failed (the duplicates a commit after each record allows: the delivered but
// uncommitted work of a member at a rebalance), each of the three members processed records,
// and the committed offsets are the log ends.
func runMidStreamMembership(t *testing.T, c midStreamCase) {
	t.Helper()
	start := time.Now()
	const perPartition = 100
	total := perPartition * int(c.partitions)
	l := newGroupLedger(c.partitions)
	a, b, j := c.prefix+"-a", c.prefix+"-b", c.prefix+"-joiner"
	c.start(t, a, l)
	stopB := c.start(t, b, l)
	c.settled(t, a, b)
	rebalances := groupRebalances(c.tb)
	s := startGroupStream(t, c.tb.addr, c.topic, c.partitions, int(c.from)*int(c.partitions), total, total*2/3, 20*time.Millisecond)

	// A member joins while records flow and are processed.
	s.waitProduced(t, total/4)
	l.waitProcessed(t, total/8, 30*time.Second)
	joinedAt, processedAt := s.produced.Load(), l.processedCount()
	if joinedAt >= int64(total*2/3) {
		t.Fatalf("stream at %d of %d records when the member joined: not mid-stream", joinedAt, total)
	}
	c.start(t, j, l)
	checkOwnsEach(t, c.settled(t, a, b, j), int(c.partitions)/3, a, b, j)
	settledAt := s.produced.Load()

	// A member leaves while records flow.
	s.limit.Store(int64(total))
	s.waitProduced(t, total*2/3+int(c.partitions)*5)
	leftAt := s.produced.Load()
	if leftAt >= int64(total) {
		t.Fatalf("stream at %d of %d records when the member left: not mid-stream", leftAt, total)
	}
	stopB()
	for p, o := range c.settled(t, a, j) {
		if o == b {
			t.Fatalf("partition %d still owned by %s, which left", p, b)
		}
	}

	s.finish(t)
	l.waitProcessed(t, total, 45*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	d, f, twice := l.check(t, c.from, c.from+perPartition, nil)
	n := groupRebalances(c.tb) - rebalances
	if d-total != f+twice {
		t.Fatalf("%d redeliveries: %d after a failed commit, %d records processed twice", d-total, f, twice)
	}
	if twice > 0 && (c.twiceOK == nil || !c.twiceOK(twice, n)) {
		t.Fatalf("%d records processed twice in %d rebalances", twice, n)
	}
	for _, m := range []string{a, b, j} {
		if l.processedBy(m) == 0 {
			t.Errorf("%s processed no record", m)
		}
	}
	if pj := l.processedBy(j); pj > total-processedAt {
		t.Errorf("the joiner processed %d records, more than the %d left when it joined", pj, total-processedAt)
	}
	groupCheckCommitted(t, c.adm, c.group, c.topic, c.partitions, c.from+perPartition)
	t.Logf("%d records; a member joined at %d produced / %d processed (group settled at %d produced), one left at %d produced; processed by %s/%s/%s: %d/%d/%d; %d redelivered after a failed commit, %d processed twice, %d rebalances, in %v",
		total, joinedAt, processedAt, settledAt, leftAt, a, b, j, l.processedBy(a), l.processedBy(b), l.processedBy(j), f, twice, n, time.Since(start))
}
