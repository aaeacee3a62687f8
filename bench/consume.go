package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consumer is one consumer client: it polls, hands each fetch to the verifier and records the
// end-to-end latency of every first delivery.
type consumer struct {
	id    int
	cl    *kgo.Client
	v     *Verifier
	e2e   bool      // record end-to-end latency (consumers run concurrently with producers)
	lat   *interval // end-to-end latency
	errs  *errorLog
	group bool // in a consumer group (BlockRebalanceOnPoll: AllowRebalance after each poll)

	records, bytes atomic.Int64
	lastNew        atomic.Int64 // Unix ns of the last poll that brought a new record

	obs []observation // reused across polls; only the run goroutine touches it
}

func (c *consumer) run(ctx context.Context) {
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			if c.group {
				c.cl.AllowRebalance()
			}
			return
		}
		now := time.Now()
		fs.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.errs.add("fetch "+topic, err)
			}
		})
		c.observe(fs, now)
		if c.group {
			c.cl.AllowRebalance()
		}
	}
}

func (c *consumer) observe(fs kgo.Fetches, now time.Time) {
	c.obs = c.obs[:0]
	var nbytes int64
	fs.EachRecord(func(r *kgo.Record) {
		c.obs = append(c.obs, decodeObservation(r.Topic, r.Partition, r.Key, r.Value))
		nbytes += int64(len(r.Key) + len(r.Value))
	})
	if len(c.obs) == 0 {
		return
	}
	c.v.Observe(c.obs)
	fresh := false
	c.lat.mu.Lock()
	for i := range c.obs {
		if s := c.obs[i].status; s == StatusNew || s == StatusReordered {
			fresh = true
			if c.e2e {
				c.lat.recordLocked(now.Sub(c.obs[i].h.IntendedTime()))
			}
		}
	}
	c.lat.mu.Unlock()
	c.records.Add(int64(len(c.obs)))
	c.bytes.Add(nbytes)
	if fresh {
		c.lastNew.Store(now.UnixNano())
	}
}

// assignments tracks how many partitions each group member holds, so the run can start
// producing once the group has settled.
type assignments struct {
	mu     sync.Mutex
	counts map[int]int // consumer id → partitions held. Invariant: guarded by mu.
}

func (a *assignments) add(id int, m map[string][]int32, sign int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = make(map[int]int)
	}
	for _, ps := range m {
		a.counts[id] += sign * len(ps)
	}
}

// settled reports whether all partitions are held and every member that can hold one does.
func (a *assignments) settled(members, partitions int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	total, holding := 0, 0
	for _, n := range a.counts {
		total += n
		if n > 0 {
			holding++
		}
	}
	return total == partitions && holding == min(members, partitions)
}
