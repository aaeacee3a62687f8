package compat

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// confluentMember is one confluent-kafka-go (librdkafka) group consumer, polling, processing
// and committing in its own goroutine.
type confluentMember struct {
	name string
	stop atomic.Bool
	done chan struct{}
	n    int // records processed (committed); read after done

	mu       sync.Mutex
	owned    map[int32]bool  // partitions assigned, as the rebalance callbacks say
	sessions map[int32]int64 // per partition, bumped at each assignment or revocation
}

// startConfluentMember subscribes a consumer (enable.auto.commit false) to topic in group with
// the given partition.assignment.strategy. Each record is noted in the ledger, then committed
// synchronously (CommitMessage) before the next Poll — so a rebalance, which librdkafka
// serves from Poll, never comes between a record and its commit. stopAfter, when positive,
// makes it stop and close itself (leaving the group) once it processed that many records.
func startConfluentMember(t *testing.T, addr, group, topic, name, strategy string, l *groupLedger, stopAfter int) *confluentMember {
	t.Helper()
	return startConfluentMemberWith(t, addr, group, topic, name, kafka.ConfigMap{
		"partition.assignment.strategy": strategy, "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
	}, l, stopAfter, nil)
}

// startConfluentMemberWith is startConfluentMember with the group settings in conf (the
// classic protocol's strategy and timeouts, or group.protocol=consumer and its assignor);
// onRebalance, when set, is called from the rebalance callback (under the member's lock) with
// the partitions gained (assigned true) or lost.
func startConfluentMemberWith(t *testing.T, addr, group, topic, name string, conf kafka.ConfigMap, l *groupLedger, stopAfter int, onRebalance func(who string, assigned bool, parts []int32)) *confluentMember {
	t.Helper()
	cm := kafka.ConfigMap{
		"client.id": name, "group.id": group,
		"enable.auto.commit": false, "auto.offset.reset": "earliest",
		"fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 1000,
	}
	for k, v := range conf {
		cm[k] = v
	}
	c, err := kafka.NewConsumer(confluentConfig(addr, cm))
	if err != nil {
		t.Fatal(err)
	}
	m := &confluentMember{name: name, done: make(chan struct{}), owned: map[int32]bool{}, sessions: map[int32]int64{}}
	rebalance := func(_ *kafka.Consumer, ev kafka.Event) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		var parts []int32
		switch e := ev.(type) {
		case kafka.AssignedPartitions: // the whole assignment (eager) or what it gains (cooperative)
			for _, tp := range e.Partitions {
				m.owned[tp.Partition] = true
				m.sessions[tp.Partition]++
				parts = append(parts, tp.Partition)
			}
		case kafka.RevokedPartitions: // all (eager) or what it loses (cooperative)
			for _, tp := range e.Partitions {
				delete(m.owned, tp.Partition)
				m.sessions[tp.Partition]++
				parts = append(parts, tp.Partition)
			}
		}
		if onRebalance != nil {
			_, assigned := ev.(kafka.AssignedPartitions)
			onRebalance(name, assigned, parts)
		}
		return nil // librdkafka (un)assigns, incrementally for cooperative-sticky
	}
	if err := c.SubscribeTopics([]string{topic}, rebalance); err != nil {
		c.Close()
		t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		defer func() {
			if err := c.Close(); err != nil {
				t.Errorf("%s: close: %v", name, err)
			}
		}()
		for !m.stop.Load() && (stopAfter <= 0 || m.n < stopAfter) {
			switch ev := c.Poll(50).(type) {
			case *kafka.Message:
				if ev.TopicPartition.Error != nil {
					t.Errorf("%s: consume: %v", name, ev.TopicPartition.Error)
					return
				}
				tp := ev.TopicPartition
				settle := l.deliver(name, tp.Partition, int64(tp.Offset), string(ev.Value))
				m.mu.Lock()
				session := m.sessions[tp.Partition] // rebalances are served by Poll: it holds until the commit
				m.mu.Unlock()
				committed, err := c.CommitMessage(ev)
				for _, ctp := range committed {
					if err == nil && ctp.Error != nil {
						err = ctp.Error
					}
				}
				settle(err, session, false)
				if err != nil {
					t.Logf("%s: commit of %d-%d failed: %v", name, tp.Partition, tp.Offset, err)
				} else {
					m.n++
				}
			case kafka.Error:
				if ev.IsFatal() {
					t.Errorf("%s: %v", name, ev)
					return
				}
				t.Logf("%s: error event: %v", name, ev)
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

// close ends the poll loop (never between a record and its commit) and closes the consumer.
func (m *confluentMember) close() {
	m.stop.Store(true)
	<-m.done
}

func (m *confluentMember) ownedPartitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.owned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// confluentOwnersAgree checks that each member owns what the broker says it was assigned.
func confluentOwnersAgree(owners map[int32]string, ms []*confluentMember) error {
	want := map[string][]int32{}
	for p, who := range owners {
		want[who] = append(want[who], p)
	}
	for _, m := range ms {
		w := want[m.name]
		sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
		if got := m.ownedPartitions(); fmt.Sprint(got) != fmt.Sprint(w) {
			return fmt.Errorf("%s owns %v, the broker assigned it %v", m.name, got, w)
		}
	}
	return nil
}

// confluentCheckOwns waits until each consumer owns what the broker assigned it (owners), and
// checks that each owns want partitions.
func confluentCheckOwns(t *testing.T, owners map[int32]string, ms []*confluentMember, want int) {
	t.Helper()
	eventually(t, "consumers own what the broker assigned", func() error { return confluentOwnersAgree(owners, ms) })
	for _, m := range ms {
		if n := len(m.ownedPartitions()); n != want {
			t.Fatalf("%s owns %v, want %d partitions", m.name, m.ownedPartitions(), want)
		}
	}
}

// TestConfluentConsumerGroup runs confluent-kafka-go consumers (librdkafka) in a group with
// Subscribe, enable.auto.commit false and a synchronous CommitMessage after each record, with
// partition.assignment.strategy range (eager) and cooperative-sticky (incremental): three
// consumers over six partitions. While membership is stable, 600 records are each processed
// exactly once, by the owner of their partition, with no rebalance, and each consumer's own
// view of its assignment is what the broker assigned. Then one consumer closes itself
// mid-stream (right after a commit, leaving the group) while 600 more are produced: nothing is
// lost and each record is processed exactly once; a redelivery may only be of a record whose
// commit failed (librdkafka serves rebalances from Poll, so every processed record is
// committed in the generation it was fetched in).
func TestConfluentConsumerGroup(t *testing.T) {
	for _, strategy := range []string{"range", "cooperative-sticky"} {
		t.Run(strategy, func(t *testing.T) {
			start := time.Now()
			g := newGroupTopic(t, startGroupBroker(t), "confluent-group", "confluent-consumers", 6)
			tb, adm, topic, group, parts := g.tb, g.adm, g.topic, g.group, g.partitions

			// Stable membership: three consumers, 600 records.
			stable := newGroupLedger(parts)
			var ms []*confluentMember
			var names []string
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("confluent-%s-%d", strategy, i)
				names = append(names, name)
				ms = append(ms, startConfluentMember(t, tb.addr, group, topic, name, strategy, stable, 0))
			}
			owners := groupOwners(t, adm, group, topic, parts, names...)
			confluentCheckOwns(t, owners, ms, 2)
			g.checkStable(t, stable, owners, nil)
			for _, m := range ms {
				m.close()
			}
			t.Logf("stable: 600 records processed once each in %v", time.Since(start))

			// A consumer closes mid-stream: three new consumers resume the group from its
			// offsets (100); the third processes 100 records, then closes.
			mid, rebalances := time.Now(), groupRebalances(tb)
			ledger := newGroupLedger(parts)
			ms, names = nil, nil
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("confluent-%s-mid-%d", strategy, i)
				stopAfter := 0
				if i == 2 {
					stopAfter = 100
				}
				names = append(names, name)
				ms = append(ms, startConfluentMember(t, tb.addr, group, topic, name, strategy, ledger, stopAfter))
			}
			groupOwners(t, adm, group, topic, parts, names...)
			for batch := 0; batch < 6; batch++ {
				groupProduce(t, tb.addr, topic, parts, 600+batch*100, 100)
				time.Sleep(100 * time.Millisecond)
			}
			<-ms[2].done // it closed itself after its 100th record
			if ms[2].n != 100 {
				t.Fatalf("%s processed %d records before closing, want 100", names[2], ms[2].n)
			}
			owners = groupOwners(t, adm, group, topic, parts, names[:2]...)
			eventually(t, "remaining consumers own what the broker assigned", func() error { return confluentOwnersAgree(owners, ms[:2]) })
			ledger.waitProcessed(t, 600, 45*time.Second)
			time.Sleep(300 * time.Millisecond)
			d, f, twice := ledger.check(t, 100, 200, nil)
			if twice != 0 || d-600 != f {
				t.Fatalf("%d redeliveries, %d failed commits, %d records processed twice", d-600, f, twice)
			}
			groupCheckCommitted(t, adm, group, topic, parts, 200)
			t.Logf("member left mid-stream: 600 records processed once each, %d redelivered after a failed commit, %d rebalances, in %v",
				f, groupRebalances(tb)-rebalances, time.Since(mid))
		})
	}
}

// TestConfluentConsumerGroupMembershipMidStream runs runMidStreamMembership with
// confluent-kafka-go consumers (range and cooperative-sticky, a synchronous CommitMessage
// after each record): two consumers consume a stream, a third joins while records flow and
// are processed, then one leaves while they flow. No record is lost, each is processed
// exactly once, and a record is delivered again only when its commit failed.
func TestConfluentConsumerGroupMembershipMidStream(t *testing.T) {
	for _, strategy := range []string{"range", "cooperative-sticky"} {
		t.Run(strategy, func(t *testing.T) {
			g := newGroupTopic(t, startGroupBroker(t), "confluent-midstream", "confluent-midstream-consumers", 6)
			runMidStreamMembership(t, midStreamCase{
				groupTopic: g, from: 0, prefix: "confluent-" + strategy,
				start: func(t *testing.T, name string, l *groupLedger) func() {
					return startConfluentMember(t, g.tb.addr, g.group, g.topic, name, strategy, l, 0).close
				},
			})
		})
	}
}
