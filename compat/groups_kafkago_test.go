package compat

// Consumer groups driven by third-party clients: kafka-go's Reader groups here, with the
// helpers the group tests share (groups_confluent_test.go uses them too).
//
// What "processed" means: a client's consumer fetches a record, the test notes the delivery,
// then commits synchronously the offset after it. A delivery whose commit the client reports
// as done is processed, and so is one whose commit failed when a later commit of the same
// member's session of the partition succeeded (it covers it: the member never fetched it
// again). A delivery whose commit failed and was not covered is the client's uncommitted
// work, which the group redelivers — the only duplicates synchronous commits allow. So the
// assertions are: every produced record is processed exactly once (its value as produced),
// every other delivery of it is uncommitted work, and the group's committed offsets end at the
// log end of every partition.
//
// kafka-go adds one more kind of duplicate, its own: a Reader's commit channel outlives the
// generation. When a rebalance ends generation N while the application holds a record
// fetched in N, the CommitMessages that follows waits for generation N+1's commit loop and is
// sent with generation N+1 — after the partition's new owner read the committed offsets — so
// the broker accepts it (the classic protocol does not check ownership on OffsetCommit; Kafka
// does the same) and the record is processed again by the new owner. Such a delivery is
// marked as having crossed a generation (the Reader's rebalance count changed between the
// previous commit's return and this one's), and a record may be processed a second time only
// when one of its deliveries crossed a generation.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startGroupBroker starts a broker with groupTimers.
func startGroupBroker(t *testing.T) *testBroker {
	t.Helper()
	return startBroker(t, groupTimers)
}

// groupAdmin is a kadm client of the broker, closed with the test.
func groupAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("compat-group-admin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func groupCreateTopic(t *testing.T, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// groupProduce produces records from..from+n-1 with franz-go, record i to partition
// i%partitions with value "v<i>", synchronously.
func groupProduce(t *testing.T, addr, topic string, partitions int32, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("compat-group-producer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// groupValue is the value groupProduce gives the record at offset o of partition p.
func groupValue(p int32, o int64, partitions int32) string {
	return fmt.Sprintf("v%d", o*int64(partitions)+int64(p))
}

// groupOwners waits until the broker reports the group Stable with exactly the members named
// (by client id), their assignments covering every partition of topic exactly once; it returns
// the owner of each partition.
func groupOwners(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, members ...string) map[int32]string {
	t.Helper()
	return waitGroupSettled(t, 45*time.Second, group, members, func(ctx context.Context) (map[int32]string, string, error) {
		dgs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return nil, "", err
		}
		owners, why := groupCoverage(dgs[group], topic, partitions, members)
		return owners, why, nil
	})
}

// groupCoverage checks a described group: Stable, the members named, every partition of
// topic owned by exactly one of them. It returns the owners, or why not.
func groupCoverage(dg kadm.DescribedGroup, topic string, partitions int32, members []string) (map[int32]string, string) {
	if dg.Err != nil {
		return nil, dg.Err.Error()
	}
	if dg.State != "Stable" {
		return nil, "state " + dg.State
	}
	var ms []memberAssignment
	for _, m := range dg.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil, fmt.Sprintf("member %s: assignment not of the consumer protocol", m.ClientID)
		}
		ma := memberAssignment{client: m.ClientID, topics: map[string][]int32{}}
		for _, at := range a.Topics {
			ma.topics[at.Topic] = append(ma.topics[at.Topic], at.Partitions...)
		}
		ms = append(ms, ma)
	}
	return assignmentCoverage(ms, topic, partitions, members)
}

// groupRebalances is the broker's count of completed rebalances.
func groupRebalances(tb *testBroker) uint64 {
	return tb.b.Metrics().GetOrCreateCounter("spate_group_rebalances_total").Get()
}

// groupCheckCommitted checks that the group's committed offset of every partition is ends.
func groupCheckCommitted(t *testing.T, adm *kadm.Client, group, topic string, partitions int32, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	for p := int32(0); p < partitions; p++ {
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != end {
			t.Errorf("committed offset of %s-%d: %+v (found %v), want %d", topic, p, o.Offset, ok, end)
		}
	}
}

type recKey struct {
	p int32
	o int64
}

type deliveryState int8

const (
	deliveryPending   deliveryState = iota
	deliveryCommitted               // its own commit succeeded
	deliveryCovered                 // its commit failed, a later one of the same session succeeded
	deliveryFailed                  // its commit failed: uncommitted work, to be redelivered
)

type groupDelivery struct {
	who, value string
	p          int32
	o          int64
	state      deliveryState
	err        error
	crossed    bool // its commit was sent in a later generation than its fetch (kafka-go)
}

func (d *groupDelivery) processed() bool {
	return d.state == deliveryCommitted || d.state == deliveryCovered
}

// sessionKey is one member's uninterrupted ownership of a partition: a commit covers the
// earlier deliveries of the same session.
type sessionKey struct {
	who     string
	p       int32
	session int64
}

// groupLedger is every delivery of every record to a group's consumers.
type groupLedger struct {
	partitions int32
	mu         sync.Mutex
	byRecord   map[recKey][]*groupDelivery     // in delivery order
	failed     map[sessionKey][]*groupDelivery // failed commits a later commit may cover
	processed  int                             // records with a processed delivery
}

func newGroupLedger(partitions int32) *groupLedger {
	return &groupLedger{partitions: partitions, byRecord: map[recKey][]*groupDelivery{}, failed: map[sessionKey][]*groupDelivery{}}
}

// deliver notes a delivery; settle is called with the outcome of its commit, the member's
// session of the partition, and whether the commit may have been sent in a later generation
// than the fetch. A successful commit of offset o+1 also covers the deliveries of the same
// session below o whose own commit failed: the member did not fetch them again, and the
// group's offset is now past them.
func (l *groupLedger) deliver(who string, p int32, o int64, value string) (settle func(err error, session int64, crossed bool)) {
	d := &groupDelivery{who: who, value: value, p: p, o: o}
	l.mu.Lock()
	l.byRecord[recKey{p, o}] = append(l.byRecord[recKey{p, o}], d)
	l.mu.Unlock()
	return func(err error, session int64, crossed bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		d.crossed = crossed
		key := sessionKey{who, p, session}
		if err != nil {
			d.state, d.err = deliveryFailed, err
			l.failed[key] = append(l.failed[key], d)
			return
		}
		l.markLocked(d, deliveryCommitted)
		kept := l.failed[key][:0]
		for _, f := range l.failed[key] {
			if f.o < o {
				l.markLocked(f, deliveryCovered)
			} else {
				kept = append(kept, f)
			}
		}
		l.failed[key] = kept
	}
}

func (l *groupLedger) markLocked(d *groupDelivery, state deliveryState) {
	first := true
	for _, other := range l.byRecord[recKey{d.p, d.o}] {
		if other != d && other.processed() {
			first = false
		}
	}
	d.state = state
	if first {
		l.processed++
	}
}

func (l *groupLedger) processedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.processed
}

// waitProcessed waits until n records have a committed delivery.
func (l *groupLedger) waitProcessed(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for l.processedCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records processed (delivered and committed)", l.processedCount(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check asserts the ledger of the records at offsets from..to-1 of each partition: each
// processed once, with its value — twice only when the first of the two committed deliveries
// crossed a generation — and every other delivery one whose commit failed. With owners set (stable
// membership), each record must have been delivered exactly once, to its partition's owner.
// It returns the deliveries, the failed commits and the records processed twice.
func (l *groupLedger) check(t *testing.T, from, to int64, owners map[int32]string) (deliveries, failed, twice int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for k := range l.byRecord {
		if k.p < 0 || k.p >= l.partitions || k.o < from || k.o >= to {
			fail("delivered %d-%d, outside the records produced (offsets %d to %d)", k.p, k.o, from, to-1)
		}
	}
	for p := int32(0); p < l.partitions; p++ {
		for o := from; o < to; o++ {
			ds := l.byRecord[recKey{p, o}]
			deliveries += len(ds)
			committed, firstCrossed := 0, false
			var hist []string
			for _, d := range ds { // in delivery order
				hist = append(hist, fmt.Sprintf("%s:%s", d.who, d.describe()))
				switch d.state {
				case deliveryCommitted, deliveryCovered:
					if committed == 0 {
						firstCrossed = d.crossed
					}
					committed++
				case deliveryFailed:
					failed++
				case deliveryPending:
					fail("record %d-%d: delivery to %s never settled", p, o, d.who)
				}
				if want := groupValue(p, o, l.partitions); d.value != want {
					fail("record %d-%d delivered to %s as %q, produced as %q", p, o, d.who, d.value, want)
				}
			}
			switch {
			case len(ds) == 0:
				fail("record %d-%d lost: never delivered", p, o)
			case committed == 0:
				fail("record %d-%d never processed: deliveries %v", p, o, hist)
			case committed == 2 && firstCrossed:
				twice++ // the first commit was sent in the next generation
			case committed > 1:
				fail("record %d-%d processed %d times: deliveries %v", p, o, committed, hist)
			}
			if owners != nil && (len(ds) != 1 || ds[0].who != owners[p]) {
				fail("stable group: record %d-%d deliveries %v, partition owned by %s", p, o, hist, owners[p])
			}
		}
	}
	if bad > 20 {
		t.Errorf("… %d problems in all", bad)
	}
	return deliveries, failed, twice
}

func (d *groupDelivery) describe() string {
	s := map[deliveryState]string{deliveryPending: "pending", deliveryCommitted: "committed", deliveryCovered: "covered by a later commit", deliveryFailed: "commit failed"}[d.state]
	if d.err != nil {
		s += " (" + d.err.Error() + ")"
	}
	if d.crossed {
		s += " across a generation"
	}
	return s
}

// kgoReader is one kafka-go Reader of a group, fetching and committing in its own goroutine.
type kgoReader struct {
	name   string
	r      *kafka.Reader
	cancel context.CancelFunc
	done   chan struct{}
	n      int // records this reader processed; read after done
}

// startKafkaGoReader starts a group Reader that commits each record synchronously after noting
// its delivery (CommitInterval 0). stopAfter, when positive, makes it stop and close itself
// once it processed that many records (right after a commit: no uncommitted work).
func startKafkaGoReader(t *testing.T, addr, group, topic, name string, balancer kafka.GroupBalancer, l *groupLedger, stopAfter int) *kgoReader {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, GroupID: group, Topic: topic,
		Dialer:            &kafka.Dialer{ClientID: name, Timeout: 10 * time.Second},
		GroupBalancers:    []kafka.GroupBalancer{balancer},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
		JoinGroupBackoff: 200 * time.Millisecond, CommitInterval: 0, StartOffset: kafka.FirstOffset,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond, ReadBackoffMin: 20 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
		Logger: kafkagoLogger("[kafka-go " + name + "] "), ErrorLogger: kafkagoLogger("[kafka-go " + name + " error] "),
	})
	ctx, cancel := context.WithCancel(context.Background())
	kr := &kgoReader{name: name, r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(kr.done)
		defer r.Close()
		// generations counts the Reader's generations (Stats resets its counters).
		var generations int64
		gen := func() int64 { generations += r.Stats().Rebalances; return generations }
		before := gen()
		for stopAfter <= 0 || kr.n < stopAfter {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("%s: fetch: %v", name, err)
				}
				return
			}
			settle := l.deliver(name, int32(m.Partition), m.Offset, string(m.Value))
			cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
			err = r.CommitMessages(cctx, m)
			ccancel()
			after := gen()
			settle(err, after, after != before) // kafka-go restarts every partition at each generation
			before = after
			if err == nil {
				kr.n++
			} else {
				t.Logf("%s: commit of %d-%d failed: %v", name, m.Partition, m.Offset, err)
			}
		}
	}()
	t.Cleanup(kr.stop)
	return kr
}

// stop ends the fetch loop (never between a fetch and its commit) and closes the Reader,
// which leaves the group.
func (kr *kgoReader) stop() {
	kr.cancel()
	<-kr.done
}

// TestKafkaGoReaderGroup runs kafka-go Reader groups (kafka.NewReader with a GroupID:
// FindCoordinator v0, JoinGroup v2, SyncGroup v0, Heartbeat v0, OffsetCommit v2, OffsetFetch v1,
// LeaveGroup v0) with the range and round-robin balancers: three Readers over six partitions
// with synchronous commits (CommitInterval 0). While membership is stable, 600 records are
// each processed exactly once, by their partition's owner, with no rebalance and no other
// delivery. Then one Reader closes itself mid-stream (right after a commit) while 600 more are
// produced: nothing is lost, and each record is processed exactly once — but for kafka-go's
// own duplicate (a commit carried into the next generation, see the top of this file: at most
// one record per Reader and rebalance) — and any other redelivery is of a record whose
// synchronous commit failed. With no interval between processing and commit there is no other
// duplicate.
func TestKafkaGoReaderGroup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kafka.GroupBalancer
	}{{"range", kafka.RangeGroupBalancer{}}, {"roundrobin", kafka.RoundRobinGroupBalancer{}}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			g := newGroupTopic(t, startGroupBroker(t), "kafka-go-group", "kafka-go-readers", 6)
			tb, adm, topic, group, parts := g.tb, g.adm, g.topic, g.group, g.partitions

			// Stable membership: three Readers, 600 records.
			stable := newGroupLedger(parts)
			var rs []*kgoReader
			var names []string
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("kafka-go-%s-%d", tc.name, i)
				names = append(names, name)
				rs = append(rs, startKafkaGoReader(t, tb.addr, group, topic, name, tc.balancer, stable, 0))
			}
			owners := groupOwners(t, adm, group, topic, parts, names...)
			checkOwnsEach(t, owners, 2, names...)
			g.checkStable(t, stable, owners, nil)
			for _, r := range rs {
				r.stop()
			}
			t.Logf("stable: 600 records processed once each in %v", time.Since(start))

			// A Reader closes mid-stream. The group (now Empty, offsets at 100) restarts with
			// three new Readers; the third processes 100 records, then closes.
			mid, midRebalances := time.Now(), groupRebalances(tb)
			ledger := newGroupLedger(parts)
			rs, names = nil, nil
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("kafka-go-%s-mid-%d", tc.name, i)
				stopAfter := 0
				if i == 2 {
					stopAfter = 100
				}
				names = append(names, name)
				rs = append(rs, startKafkaGoReader(t, tb.addr, group, topic, name, tc.balancer, ledger, stopAfter))
			}
			groupOwners(t, adm, group, topic, parts, names...)
			for batch := 0; batch < 6; batch++ {
				groupProduce(t, tb.addr, topic, parts, 600+batch*100, 100)
				time.Sleep(100 * time.Millisecond)
			}
			<-rs[2].done // it closed itself after its 100th record
			if rs[2].n != 100 {
				t.Fatalf("%s processed %d records before closing, want 100", names[2], rs[2].n)
			}
			groupOwners(t, adm, group, topic, parts, names[:2]...)
			ledger.waitProcessed(t, 600, 45*time.Second)
			time.Sleep(300 * time.Millisecond)
			d, f, twice := ledger.check(t, 100, 200, nil)
			if d-600 != f+twice {
				t.Fatalf("%d redeliveries: %d after a failed commit, %d processed twice", d-600, f, twice)
			}
			n := groupRebalances(tb) - midRebalances
			if twice > len(names)*int(n) {
				t.Fatalf("%d records processed twice in %d rebalances of %d Readers: kafka-go carries at most one commit per Reader and rebalance", twice, n, len(names))
			}
			groupCheckCommitted(t, adm, group, topic, parts, 200)
			t.Logf("member left mid-stream: 600 records, %d redelivered after a failed commit, %d processed twice (kafka-go committed them in the next generation), %d rebalances, in %v",
				f, twice, n, time.Since(mid))
		})
	}
}

// TestKafkaGoReaderGroupMembershipMidStream runs runMidStreamMembership with kafka-go Readers
// (range and round-robin balancers, synchronous commits): two Readers consume a stream, a
// third joins while records flow and are processed, then one leaves while they flow. No
// record is lost; each is processed once — twice only for kafka-go's commit carried into the
// next generation, at most one per Reader and rebalance —, and any other redelivery is of a
// record whose commit failed.
func TestKafkaGoReaderGroupMembershipMidStream(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kafka.GroupBalancer
	}{{"range", kafka.RangeGroupBalancer{}}, {"roundrobin", kafka.RoundRobinGroupBalancer{}}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroupTopic(t, startGroupBroker(t), "kafka-go-midstream", "kafka-go-midstream-readers", 6)
			runMidStreamMembership(t, midStreamCase{
				groupTopic: g, from: 0, prefix: "kafka-go-" + tc.name,
				start: func(t *testing.T, name string, l *groupLedger) func() {
					return startKafkaGoReader(t, g.tb.addr, g.group, g.topic, name, tc.balancer, l, 0).stop
				},
				// Three Readers at most at any time.
				twiceOK: func(twice int, rebalances uint64) bool { return twice <= 3*int(rebalances) },
			})
		})
	}
}
