package compat

// Committed offsets across a broker restart, per client. The broker runs as a process
// (process_test.go) so that it can die by SIGKILL. What the broker promises (README, "What an
// acknowledgment means"): an acknowledged write is in the log's page cache and survives the
// death of the process; surviving the machine takes a sync. OffsetCommit is answered once
// the commit's record is written to __consumer_offsets, so an acknowledged commit must
// survive kill -9.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	confluent "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupConsumerStart starts a group consumer of one client named name: each record it gets
// is passed to seen, then committed (offset+1, synchronously, with the client's own commit
// call) when commit says so. stop makes it leave the group.
type groupConsumerStart func(t *testing.T, addr, group, topic, name string, seen func(p int32, o int64, v string), commit func(p int32, o int64) bool) (stop func())

// restartDeliveries is what one consumer got, per partition in order.
type restartDeliveries struct {
	mu sync.Mutex
	by map[int32][]int64
	v  map[recKey]string
}

func newRestartDeliveries() *restartDeliveries {
	return &restartDeliveries{by: map[int32][]int64{}, v: map[recKey]string{}}
}

func (r *restartDeliveries) note(p int32, o int64, v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.by[p] = append(r.by[p], o)
	r.v[recKey{p, o}] = v
}

// waitThrough waits until every partition was delivered up to offset last.
func (r *restartDeliveries) waitThrough(t *testing.T, partitions int32, last int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		behind := ""
		for p := int32(0); p < partitions; p++ {
			if ds := r.by[p]; len(ds) == 0 || ds[len(ds)-1] < last {
				behind = fmt.Sprintf("partition %d delivered up to %v", p, ds)
				break
			}
		}
		r.mu.Unlock()
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not through offset %d: %s", last, behind)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// commitAcks follows, through the proxy, the OffsetCommit answers of a group for a topic: the
// highest offset acknowledged (error code 0) per partition.
type commitAcks struct {
	mu    sync.Mutex
	acked map[int32]int64
}

func watchCommitAcks(tr *tracer, group, topic string) *commitAcks {
	a := &commitAcks{acked: map[int32]int64{}}
	hook := func(_ string, req kmsg.Request, resp kmsg.Response) {
		cr, ok := req.(*kmsg.OffsetCommitRequest)
		if !ok || cr.Group != group {
			return
		}
		sent := map[int32]int64{}
		for _, rt := range cr.Topics {
			if rt.Topic == topic {
				for _, rp := range rt.Partitions {
					sent[rp.Partition] = rp.Offset
				}
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, rt := range resp.(*kmsg.OffsetCommitResponse).Topics {
			if rt.Topic != topic {
				continue
			}
			for _, rp := range rt.Partitions {
				if o, ok := sent[rp.Partition]; ok && rp.ErrorCode == 0 && o > a.acked[rp.Partition] {
					a.acked[rp.Partition] = o
				}
			}
		}
	}
	tr.onResponse.Store(&hook)
	return a
}

// wait waits until the acknowledged commits are want, exactly.
func (a *commitAcks) wait(t *testing.T, want map[int32]int64) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		a.mu.Lock()
		got := fmt.Sprint(a.acked)
		a.mu.Unlock()
		if got == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged commits %s, want %v", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fetchCommitted is the group's committed offsets of topic, as OffsetFetch answers them once
// it answers without error (a broker loading __consumer_offsets answers with a retriable one).
func fetchCommitted(t *testing.T, adm *kadm.Client, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := adm.FetchOffsets(ctx, group)
		cancel()
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			got := map[int32]int64{}
			for p := int32(0); p < partitions; p++ {
				if o, ok := offs.Lookup(topic, p); ok {
					got[p] = o.At
				}
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("OffsetFetch of %s: %v", group, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runOffsetsSurviveRestart: a consumer of the client consumes 50 records of each of four
// partitions, committing with the client's synchronous commit after each record below
// offsets 10, 17, 24 and 31 (and none after). As soon as the proxy relayed the
// acknowledgment of the last of those commits, the broker is stopped — with SIGTERM, or
// SIGKILL — and started again on the same folder, the consumer still running. Then:
// OffsetFetch answers exactly those offsets; the first consumer leaves, ten more records per
// partition are produced, and a new consumer of the client in the same group gets, on each
// partition, first the record at the committed offset and then every later one exactly once
// with its value — nothing before it — and commits nothing.
func runOffsetsSurviveRestart(t *testing.T, client string, start groupConsumerStart) {
	for _, mode := range []struct {
		name  string
		kill9 bool
	}{{"sigterm", false}, {"kill9", true}} {
		t.Run(mode.name, func(t *testing.T) {
			began := time.Now()
			p := startSpateProcess(t)
			const topic, group, parts = "restart-offsets", "restart-group", int32(4)
			acks := watchCommitAcks(p.trace, group, topic)
			adm := groupAdmin(t, p.addr)
			groupCreateTopic(t, adm, topic, parts)
			groupProduce(t, p.addr, topic, parts, 0, 200) // offsets 0 to 49 of each partition
			want := map[int32]int64{0: 10, 1: 17, 2: 24, 3: 31}

			first := newRestartDeliveries()
			stopFirst := start(t, p.addr, group, topic, client+"-first", first.note, func(pt int32, o int64) bool { return o < want[pt] })
			acks.wait(t, want)
			restartAt := time.Now()
			p.restart(mode.kill9)
			restartTook := time.Since(restartAt)
			if got := fetchCommitted(t, adm, group, topic, parts); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after the restart (%s): committed offsets %v, acknowledged %v", mode.name, got, want)
			}
			// kafka-go's Reader closes without LeaveGroup when it has not rejoined since the
			// restart: the new consumer's join then waits for its session to expire (6 s).
			stopFirst()
			first.mu.Lock()
			for pt := int32(0); pt < parts; pt++ {
				if ds := first.by[pt]; len(ds) == 0 || ds[0] != 0 {
					t.Errorf("first consumer, partition %d: deliveries begin %v, want at 0", pt, ds)
				}
			}
			first.mu.Unlock()

			groupProduce(t, p.addr, topic, parts, 200, 40) // offsets 50 to 59
			second := newRestartDeliveries()
			stopSecond := start(t, p.addr, group, topic, client+"-second", second.note, func(int32, int64) bool { return false })
			second.waitThrough(t, parts, 59, 45*time.Second)
			time.Sleep(200 * time.Millisecond) // a stray delivery would arrive now
			stopSecond()
			second.mu.Lock()
			for pt := int32(0); pt < parts; pt++ {
				ds := second.by[pt]
				var wantOffs []int64
				for o := want[pt]; o < 60; o++ {
					wantOffs = append(wantOffs, o)
				}
				sorted := append([]int64(nil), ds...)
				sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
				if len(ds) == 0 || ds[0] != want[pt] || fmt.Sprint(sorted) != fmt.Sprint(wantOffs) {
					t.Errorf("new consumer after the restart, partition %d: delivered %v, want %d to 59 once each, beginning at the committed %d", pt, ds, want[pt], want[pt])
				}
				for _, o := range ds {
					if v, w := second.v[recKey{pt, o}], groupValue(pt, o, parts); v != w {
						t.Errorf("partition %d offset %d: value %q, produced %q", pt, o, v, w)
					}
				}
			}
			second.mu.Unlock()
			if got := fetchCommitted(t, adm, group, topic, parts); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("at the end: committed offsets %v, want %v (nothing committed since)", got, want)
			}
			t.Logf("%s: committed %v survived (restart took %v), new consumer resumed there, in %v", mode.name, want, restartTook, time.Since(began))
		})
	}
}

// TestSaramaGroupOffsetsSurviveRestart: runOffsetsSurviveRestart with sarama's consumer group
// (MarkMessage and a synchronous Commit, auto-commit off).
func TestSaramaGroupOffsetsSurviveRestart(t *testing.T) {
	runOffsetsSurviveRestart(t, "sarama", func(t *testing.T, addr, group, topic, name string, seen func(int32, int64, string), commit func(int32, int64) bool) func() {
		return startSaramaGroupMember(t, addr, group, topic, saramaGroupConfig(name, sarama.NewBalanceStrategyRange()),
			saramaSeenHandler{seen: seen, commit: commit}).stop
	})
}

type saramaSeenHandler struct {
	seen   func(int32, int64, string)
	commit func(int32, int64) bool
}

func (h saramaSeenHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h saramaSeenHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaSeenHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.seen(msg.Partition, msg.Offset, string(msg.Value))
			if h.commit(msg.Partition, msg.Offset) {
				sess.MarkMessage(msg, "")
				sess.Commit()
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// TestKafkaGoGroupOffsetsSurviveRestart: runOffsetsSurviveRestart with a kafka-go group Reader
// (CommitMessages with CommitInterval 0).
func TestKafkaGoGroupOffsetsSurviveRestart(t *testing.T) {
	runOffsetsSurviveRestart(t, "kafka-go", func(t *testing.T, addr, group, topic, name string, seen func(int32, int64, string), commit func(int32, int64) bool) func() {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{addr}, GroupID: group, Topic: topic,
			Dialer:            &kafka.Dialer{ClientID: name, Timeout: 10 * time.Second},
			GroupBalancers:    []kafka.GroupBalancer{kafka.RangeGroupBalancer{}},
			HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
			JoinGroupBackoff: 200 * time.Millisecond, CommitInterval: 0, StartOffset: kafka.FirstOffset,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond, ReadBackoffMin: 20 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
			Logger: kafkagoLogger("[kafka-go " + name + "] "), ErrorLogger: kafkagoLogger("[kafka-go " + name + " error] "),
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, io.EOF) {
						return
					}
					t.Logf("%s: fetch: %v", name, err)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				seen(int32(m.Partition), m.Offset, string(m.Value))
				if commit(int32(m.Partition), m.Offset) {
					cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
					if err := r.CommitMessages(cctx, m); err != nil {
						t.Logf("%s: commit of %d-%d: %v", name, m.Partition, m.Offset, err)
					}
					ccancel()
				}
			}
		}()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return stop
	})
}

// TestConfluentGroupOffsetsSurviveRestart: runOffsetsSurviveRestart with a confluent-kafka-go
// consumer (enable.auto.commit false, CommitMessage).
func TestConfluentGroupOffsetsSurviveRestart(t *testing.T) {
	runOffsetsSurviveRestart(t, "confluent", func(t *testing.T, addr, group, topic, name string, seen func(int32, int64, string), commit func(int32, int64) bool) func() {
		c, err := confluent.NewConsumer(confluentConfig(addr, confluent.ConfigMap{
			"client.id": name, "group.id": group, "partition.assignment.strategy": "range",
			"enable.auto.commit": false, "auto.offset.reset": "earliest",
			"session.timeout.ms": 6000, "heartbeat.interval.ms": 200, "fetch.wait.max.ms": 100,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
			c.Close()
			t.Fatal(err)
		}
		var stopping atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() {
				if err := c.Close(); err != nil {
					t.Errorf("%s: close: %v", name, err)
				}
			}()
			for !stopping.Load() {
				switch ev := c.Poll(50).(type) {
				case *confluent.Message:
					tp := ev.TopicPartition
					if tp.Error != nil {
						t.Logf("%s: consume: %v", name, tp.Error)
						continue
					}
					seen(tp.Partition, int64(tp.Offset), string(ev.Value))
					if commit(tp.Partition, int64(tp.Offset)) {
						if _, err := c.CommitMessage(ev); err != nil {
							t.Logf("%s: commit of %d-%d: %v", name, tp.Partition, tp.Offset, err)
						}
					}
				case confluent.Error:
					t.Logf("%s: error event: %v", name, ev)
				}
			}
		}()
		stop := func() { stopping.Store(true); <-done }
		t.Cleanup(stop)
		return stop
	})
}
