//go:build linux

package main

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterChaosRetriedBatchWaitsForReplication: the deterministic form of a loss the
// chaos tests found. With both followers of a partition stopped (SIGSTOP: nothing can
// replicate, and with two of three controllers stopped the metadata cannot change), an
// idempotent acks=all produce must not be acknowledged: the broker answers REQUEST_TIMED_OUT
// after the request's timeout, the client sends the same batch again, and that retry — a
// duplicate of a batch in the leader's log but below no high watermark — must wait for the
// ISR as the first attempt did (Kafka's duplicate answers carry the original offsets and
// still wait for them to commit). Acknowledging it at once is how a leader cut off after
// appending, then deposed, acknowledged records that its successor never had.
func TestClusterChaosRetriedBatchWaitsForReplication(t *testing.T) {
	c := startChaosCluster(t)
	leader := c.leaderOf(0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.pc.seeds()...), kgo.ClientID("chaos-retry"), kgo.DefaultProduceTopic(chaosTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1<<30),
		kgo.ProduceRequestTimeout(time.Second), kgo.RequestTimeoutOverhead(2*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Warm up: the producer id and the connections exist before the followers stop.
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := cl.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("warm-up")}).FirstErr()
		cancel()
		if err != nil {
			c.fatalf("warm-up produce: %v", err)
		}
	}
	hw0 := c.leaderHW(leader, 0)
	var followers []int
	for i := range c.pids {
		if i != leader {
			followers = append(followers, i)
			c.signal(i, syscall.SIGSTOP)
		}
	}
	c.logf("leader of partition 0: node %d, high watermark %d; followers %v stopped", leader+1, hw0, []int{followers[0] + 1, followers[1] + 1})
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			for _, i := range followers {
				c.signal(i, syscall.SIGCONT)
			}
		}
	}
	defer resume()

	var mu sync.Mutex
	var ackedAt time.Time
	var ackOffset int64 = -1
	var ackErr error
	done := make(chan struct{})
	t0 := time.Now()
	cl.Produce(context.Background(), &kgo.Record{Partition: 0, Value: []byte("while-followers-stopped")}, func(r *kgo.Record, err error) {
		mu.Lock()
		ackedAt, ackOffset, ackErr = time.Now(), r.Offset, err
		mu.Unlock()
		close(done)
	})
	select {
	case <-done:
		mu.Lock()
		at, off, aerr := ackedAt.Sub(t0), ackOffset, ackErr
		mu.Unlock()
		if aerr != nil {
			c.logf("produce failed while the followers were stopped (allowed): %v", aerr)
			break
		}
		hw := c.leaderHW(leader, 0)
		c.errorf("record acknowledged (acks=all) at offset %d after %v with both followers stopped; the leader's high watermark is %d: "+
			"a retried idempotent batch (a duplicate) is answered without waiting for the ISR (broker/00_produce.go, produceTo: the dup branch returns before addAckWait)",
			off, at.Round(time.Millisecond), hw)
	case <-time.After(6 * time.Second):
		c.logf("not acknowledged in 6s with both followers stopped, as it should")
	}
	resume()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		c.fatalf("record not acknowledged 60s after the followers resumed")
	}
	c.waitHealthy(60 * time.Second)
}

// leaderHW asks node i (the leader of p) for p's high watermark (ListOffsets, latest).
func (c *chaosCluster) leaderHW(i int, p int32) int64 {
	c.t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = chaosTopic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.admCl.Broker(i+1))
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		c.errorf("ListOffsets to node %d: %v", i+1, err)
		return -1
	}
	return resp.Topics[0].Partitions[0].Offset
}
