package broker

// ISR maintenance on partition leaders (Kafka's Partition.maybeShrinkIsr/maybeExpandIsr): a
// follower not caught up for replica.lag.time.max.ms leaves the ISR; a replica whose log end
// reaches the high watermark (and the leader epoch's start) joins it. Changes go to the
// controller (AlterPartition) and are adopted from its answer; one change per partition is
// in flight at a time. Shrinks are checked every half lag time; expansions also as soon as a
// follower fetch shows a replica caught up (kickISR).

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
)

func (c *cluster) lagTime() time.Duration {
	if d := c.b.cfg.Cluster.ReplicaLagTimeMax; d > 0 {
		return d
	}
	return 30 * time.Second
}

// isrLoop checks the ISR of every partition this node leads.
func (c *cluster) isrLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.lagTime() / 2)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.isrKick:
		}
		now := time.Now().UnixMilli()
		lagMs := c.lagTime().Milliseconds()
		for _, tp := range c.b.topics.view.Load().byName {
			for _, p := range tp.partitions {
				if p == nil {
					continue
				}
				ls := p.repl.leader.Load()
				if ls == nil {
					continue
				}
				shrink := ls.ShrinkCandidates(now, lagMs)
				expand := ls.ExpandCandidates(ls.HighWatermark())
				if len(shrink) == 0 && len(expand) == 0 {
					continue
				}
				var isr []int32
				for _, id := range ls.ISR() {
					if !slices.Contains(shrink, id) {
						isr = append(isr, id)
					}
				}
				for _, id := range expand {
					if !slices.Contains(isr, id) {
						isr = append(isr, id)
					}
				}
				slices.Sort(isr)
				go c.alterISR(p, isr)
			}
		}
	}
}

// kickISR asks the ISR loop for a check now (a follower may have caught up).
func (c *cluster) kickISR() {
	select {
	case c.isrKick <- struct{}{}:
	default:
	}
}

// alterISR asks the controller for a new ISR and adopts the answer.
func (c *cluster) alterISR(p *partition, isr []int32) {
	r := &p.repl
	r.mu.Lock()
	if r.alterPending || r.leader.Load() == nil {
		r.mu.Unlock()
		return
	}
	r.alterPending = true
	epoch, pe := p.leaderEpoch.Load(), r.partitionEpoch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.alterPending = false
		r.mu.Unlock()
	}()
	// While an expansion is pending the high watermark counts the joining replicas too (the
	// maximal ISR, as Kafka): should the controller commit it, the new member already holds
	// everything below the high watermark.
	ls := r.leader.Load()
	committed := ls.ISR()
	if len(isr) > len(committed) {
		ls.SetISR(isr)
	}
	ctx, cancel := context.WithTimeout(c.base, c.opTimeout())
	defer cancel()
	be := c.epoch.Load()
	st, code, err := c.ctl.AlterPartition(ctx, c.self, be, p.topicID, p.tp.Partition, epoch, pe, isr)
	if leader, ok := leaderOf(err); ok {
		st, code, err = c.forwardAlterPartition(ctx, leader, be, p, epoch, pe, isr)
	}
	if err != nil || code != 0 {
		c.b.log.Info("ISR change refused", "partition", p.tp.String(), "isr", isr, "code", code, "err", err)
		if cur := r.leader.Load(); cur == ls {
			ls.SetISR(committed)
		}
		return
	}
	r.mu.Lock()
	if p.leaderEpoch.Load() == st.LeaderEpoch && st.PartitionEpoch >= r.partitionEpoch {
		r.isr, r.partitionEpoch = st.ISR, st.PartitionEpoch
		if ls := r.leader.Load(); ls != nil {
			ls.SetISR(st.ISR)
		}
	}
	r.mu.Unlock()
	c.b.log.Info("ISR changed", "partition", p.tp.String(), "isr", st.ISR, "partition_epoch", st.PartitionEpoch)
	p.hwChanged()
}

func (c *cluster) forwardAlterPartition(ctx context.Context, leader int32, brokerEpoch int64, p *partition, epoch, pe int32, isr []int32) (controller.PartitionState, int16, error) {
	req := kmsg.NewPtrAlterPartitionRequest()
	req.SetVersion(2)
	req.BrokerID, req.BrokerEpoch = c.self, brokerEpoch
	rt := kmsg.NewAlterPartitionRequestTopic()
	rt.TopicID = p.topicID
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = p.tp.Partition, epoch, pe, isr
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var out *kmsg.AlterPartitionResponse
	err := c.fwd.toLeader(ctx, leader, func(id int32) (int16, error) {
		r, err := c.fwd.request(ctx, id, req)
		if err != nil {
			return 0, err
		}
		out = r.(*kmsg.AlterPartitionResponse)
		return out.ErrorCode, nil
	})
	if err != nil {
		return controller.PartitionState{}, 0, err
	}
	if out.ErrorCode != 0 {
		return controller.PartitionState{}, out.ErrorCode, nil
	}
	if len(out.Topics) != 1 || len(out.Topics[0].Partitions) != 1 {
		return controller.PartitionState{}, errUnknownServerError, nil
	}
	o := out.Topics[0].Partitions[0]
	return controller.PartitionState{Leader: o.LeaderID, LeaderEpoch: o.LeaderEpoch, ISR: o.ISR, PartitionEpoch: o.PartitionEpoch}, o.ErrorCode, nil
}
