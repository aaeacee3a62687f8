package compat

// sarama's consumer group (sarama.NewConsumerGroup) under the group ledger of
// groups_kafkago_test.go.
//
// sarama's ConsumerGroupSession.Commit reports nothing: a failed OffsetCommit is retried by
// the next Commit of the session, or reported on Errors(), or neither. So the outcome of a
// member's commit is read where it is certain — on the wire: the tracing proxy hands every
// OffsetCommit response to saramaCommits before relaying it, so when Commit returns, the
// answer to any request it sent is known. A delivery's commit succeeded when an OffsetCommit
// of the member for its partition at its offset + 1, sent after the delivery was marked, was
// answered without error.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type saramaCommitKey struct {
	client, topic string
	partition     int32
}

type saramaCommitOutcome struct {
	seq    int64
	offset int64
	code   int16
}

// saramaCommits is every OffsetCommit answered through a broker's proxy, by client id.
type saramaCommits struct {
	mu       sync.Mutex
	seq      int64
	outcomes map[saramaCommitKey][]saramaCommitOutcome
}

func watchCommits(tr *tracer) *saramaCommits {
	w := &saramaCommits{outcomes: map[saramaCommitKey][]saramaCommitOutcome{}}
	hook := func(client string, req kmsg.Request, resp kmsg.Response) {
		cr, ok := req.(*kmsg.OffsetCommitRequest)
		if !ok {
			return
		}
		codes := map[saramaCommitKey]int16{}
		for _, rt := range resp.(*kmsg.OffsetCommitResponse).Topics {
			for _, rp := range rt.Partitions {
				codes[saramaCommitKey{client, rt.Topic, rp.Partition}] = rp.ErrorCode
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, rt := range cr.Topics {
			for _, rp := range rt.Partitions {
				k := saramaCommitKey{client, rt.Topic, rp.Partition}
				code, answered := codes[k]
				if !answered {
					code = -1
				}
				w.seq++
				w.outcomes[k] = append(w.outcomes[k], saramaCommitOutcome{w.seq, rp.Offset, code})
			}
		}
	}
	tr.onResponse.Store(&hook)
	return w
}

// now is the sequence number of the last outcome noted.
func (w *saramaCommits) now() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// outcome is nil when an OffsetCommit of client for topic-partition at offset, noted after
// since, succeeded; else the error of the last such commit, or an error saying none was sent.
func (w *saramaCommits) outcome(client, topic string, partition int32, offset, since int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last error = fmt.Errorf("no OffsetCommit of offset %d answered", offset)
	for _, o := range w.outcomes[saramaCommitKey{client, topic, partition}] {
		if o.seq <= since || o.offset != offset {
			continue
		}
		if o.code == 0 {
			return nil
		}
		if o.code == -1 {
			last = fmt.Errorf("OffsetCommit of offset %d: partition missing from the response", offset)
		} else {
			last = fmt.Errorf("OffsetCommit of offset %d: %w", offset, kerr.ErrorForCode(o.code))
		}
	}
	return last
}

func saramaGroupConfig(name string, strategy sarama.BalanceStrategy) *sarama.Config {
	cfg := saramaConfig()
	cfg.ClientID = name
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	// sarama sends a member's commits on the connection its fetches use, and a broker answers
	// a connection's requests in order: each Commit waits behind a long-polling Fetch.
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	return cfg
}

// saramaGroupMember is one sarama ConsumerGroup consuming in its own goroutine.
type saramaGroupMember struct {
	name   string
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// saramaLedgerHandler notes each record's delivery in the ledger, marks it and commits
// synchronously (sess.Commit, auto-commit off) before taking the next one. A ledger session is
// one ConsumeClaim call: one uninterrupted ownership of the partition, whose later commit
// covers an earlier failed one (the mark stays dirty and the next Commit sends it).
type saramaLedgerHandler struct {
	t      *testing.T
	name   string
	l      *groupLedger
	w      *saramaCommits
	claims *atomic.Int64
}

func (h saramaLedgerHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h saramaLedgerHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaLedgerHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	session := h.claims.Add(1)
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			since := h.w.now()
			settle := h.l.deliver(h.name, msg.Partition, msg.Offset, string(msg.Value))
			sess.MarkMessage(msg, "")
			sess.Commit()
			err := h.w.outcome(h.name, msg.Topic, msg.Partition, msg.Offset+1, since)
			settle(err, session, false)
			if err != nil {
				h.t.Logf("%s: commit of %d-%d failed: %v", h.name, msg.Partition, msg.Offset, err)
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// startSaramaGroupMember starts a member consuming topic with handler h.
func startSaramaGroupMember(t *testing.T, addr, group, topic string, cfg *sarama.Config, h sarama.ConsumerGroupHandler) *saramaGroupMember {
	t.Helper()
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &saramaGroupMember{name: cfg.ClientID, cg: cg, cancel: cancel, done: make(chan struct{})}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			if ctx.Err() == nil {
				t.Logf("%s: %v", m.name, err)
			}
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				t.Logf("%s: consume: %v", m.name, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
		if err := cg.Close(); err != nil { // leaves the group
			t.Errorf("%s: close: %v", m.name, err)
		}
		<-errsDone
	}()
	t.Cleanup(m.stop)
	return m
}

// stop ends the consume loop (a record being handled is committed first) and closes the
// group, which leaves it.
func (m *saramaGroupMember) stop() {
	m.once.Do(m.cancel)
	<-m.done
}

// TestSaramaConsumerGroupMembers runs sarama's consumer group (protocol level 3.6: JoinGroup
// v8 with KIP-394, SyncGroup v5, Heartbeat v4, OffsetCommit v8, OffsetFetch v8, LeaveGroup v5)
// with the range and round-robin strategies, auto-commit off and a synchronous Commit after
// each record (the commit interval is zero): three members over six partitions. While
// membership is stable, 600 records are each processed exactly once, by their partition's
// owner, with no rebalance and no other delivery, and the committed offsets are the log ends.
// Then two new members resume the group, a third joins mid-stream and one leaves mid-stream
// (runMidStreamMembership): no record is lost, each is processed exactly once, and a record is
// delivered again only when its commit failed.
func TestSaramaConsumerGroupMembers(t *testing.T) {
	if debugLevel() > 0 {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
	for _, tc := range []struct {
		name     string
		strategy sarama.BalanceStrategy
	}{{"range", sarama.NewBalanceStrategyRange()}, {"roundrobin", sarama.NewBalanceStrategyRoundRobin()}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			g := newGroupTopic(t, startGroupBroker(t), "sarama-group", "sarama-members", 6)
			w := watchCommits(g.tb.trace)
			var claims atomic.Int64
			startMember := func(t *testing.T, name string, l *groupLedger) *saramaGroupMember {
				return startSaramaGroupMember(t, g.tb.addr, g.group, g.topic, saramaGroupConfig(name, tc.strategy),
					saramaLedgerHandler{t: t, name: name, l: l, w: w, claims: &claims})
			}

			// Stable membership: three members, 600 records.
			stable := newGroupLedger(g.partitions)
			var ms []*saramaGroupMember
			var names []string
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("sarama-%s-%d", tc.name, i)
				names = append(names, name)
				ms = append(ms, startMember(t, name, stable))
			}
			owners := groupOwners(t, g.adm, g.group, g.topic, g.partitions, names...)
			checkOwnsEach(t, owners, 2, names...)
			g.checkStable(t, stable, owners, nil)
			for _, m := range ms {
				m.stop()
			}
			t.Logf("stable: 600 records processed once each in %v", time.Since(start))

			runMidStreamMembership(t, midStreamCase{
				groupTopic: g, from: 100, prefix: "sarama-" + tc.name,
				start: func(t *testing.T, name string, l *groupLedger) func() {
					return startMember(t, name, l).stop
				},
			})
		})
	}
}
