package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaHandler records what one sarama group member consumes and marks every message.
type saramaHandler struct {
	name string
	mu   sync.Mutex
	seen map[grpRecordID]int
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		h.seen[grpRecordID{msg.Partition, msg.Offset}]++
		h.mu.Unlock()
		sess.MarkMessage(msg, "sarama-meta")
	}
	return nil
}

// TestSaramaConsumerGroup runs sarama's consumer group (two members, range strategy) at an old
// protocol level (2.1: JoinGroup v3 without KIP-394, OffsetCommit v6) and a recent one (3.6):
// every record is consumed, and the commits (with their metadata) are what OffsetFetch returns.
func TestSaramaConsumerGroup(t *testing.T) {
	for _, v := range []sarama.KafkaVersion{sarama.V2_1_0_0, sarama.V3_6_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			tb := grpBroker(t, "", nil)
			const topic, group, partitions = "sarama-group", "sarama-workers", 4
			adm := grpCreateTopic(t, tb.addr, topic, partitions)
			grpProduce(t, tb.addr, topic, partitions, 0, 200)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			var hs []*saramaHandler
			for i := 0; i < 2; i++ {
				cfg := sarama.NewConfig()
				cfg.Version = v
				cfg.ClientID = fmt.Sprintf("sarama-%d", i)
				cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
				cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
				cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
				cfg.Consumer.Group.Session.Timeout = 6 * time.Second
				cfg.Consumer.Group.Rebalance.Timeout = 5 * time.Second
				cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
				cg, err := sarama.NewConsumerGroup([]string{tb.addr}, group, cfg)
				if err != nil {
					t.Fatal(err)
				}
				h := &saramaHandler{name: cfg.ClientID, seen: map[grpRecordID]int{}}
				hs = append(hs, h)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer cg.Close()
					for ctx.Err() == nil {
						if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
							t.Logf("%s: %v", h.name, err)
							time.Sleep(100 * time.Millisecond)
						}
					}
				}()
			}
			distinct := func() int {
				all := map[grpRecordID]bool{}
				for _, h := range hs {
					h.mu.Lock()
					for k := range h.seen {
						all[k] = true
					}
					h.mu.Unlock()
				}
				return len(all)
			}
			deadline := time.Now().Add(45 * time.Second)
			for distinct() < 200 {
				if time.Now().After(deadline) {
					t.Fatalf("sarama group consumed %d of 200 records", distinct())
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			wg.Wait() // members commit and leave on close
			fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer fcancel()
			offs, err := adm.FetchOffsets(fctx, group)
			if err != nil {
				t.Fatal(err)
			}
			for p := int32(0); p < partitions; p++ {
				o, ok := offs.Lookup(topic, p)
				if !ok || o.Err != nil || o.At != 50 || o.Metadata != "sarama-meta" {
					t.Fatalf("committed offset of partition %d: %+v", p, o)
				}
			}
			dg, err := adm.DescribeGroups(fctx, group)
			if err != nil || dg[group].State != "Empty" {
				t.Fatalf("group after the members left: %+v %v", dg[group], err)
			}
		})
	}
}
