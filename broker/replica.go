package broker

// A partition's replica role in cluster mode (package replication does the replicating):
//
//   - leader (at a leader epoch): takes produces and serves fetches; follower fetches report
//     each follower's log end offset to its replication.LeaderState, whose minimum over the
//     ISR is the high watermark; acks=all produces wait for it (ackwait.go). The leader
//     shrinks the ISR of followers that fall behind replica.lag.time.max.ms and expands it
//     with those caught up, through the controller (AlterPartition).
//   - follower of a leader: a replication.Fetcher (one per leader broker) pulls the leader's
//     batches into the log with the leader's offsets; its high watermark is the leader's,
//     bounded by its own log end offset. Produces and client fetches get
//     NOT_LEADER_OR_FOLLOWER.
//   - none: the partition has no leader (all ISR members fenced) or is being dropped.
//
// A single node (no cluster) is always leader with no LeaderState: its high watermark is its
// log end offset.
//
// Producer state (idempotence, transactions) is kept by leaders only: a follower appends
// with the leader's offsets and does not track producers, so a replica that becomes leader
// rebuilds its producer state and aborted-transaction index from its last snapshot and the
// log (loadProducerState). Followers write no producer snapshots.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/coordinator/txn"
	"github.com/spate-broker/spate/logstore"
	"github.com/spate-broker/spate/replication"
)

const (
	roleLeader   int32 = iota // also every partition of a single node
	roleFollower              // cluster mode: pulls from leaderID
	roleNone                  // cluster mode: no leader, or dropped
)

// replicaState is the cluster-mode part of a partition.
type replicaState struct {
	role     atomic.Int32
	leaderID atomic.Int32
	hw       atomic.Int64 // followers (and none): the high watermark
	leader   atomic.Pointer[replication.LeaderState]

	mu             sync.Mutex // role changes (the applier) and ISR updates
	epochs         *replication.EpochCache
	partitionEpoch int32   // guarded by mu
	replicas       []int32 // guarded by mu
	isr            []int32 // guarded by mu
	alterPending   bool    // an AlterPartition is in flight; guarded by mu

	ackMu      sync.Mutex
	ackWaiters []*ackWait // acks=all produces waiting for the high watermark; guarded by ackMu
}

// isLeader reports whether produces and client fetches are served here.
func (p *partition) isLeader() bool { return p.repl.role.Load() == roleLeader }

// hwChanged wakes what waits on the high watermark: acks=all produces and fetches (read
// limits move with it).
func (p *partition) hwChanged() {
	p.completeAcks(false)
	p.wake()
}

// updateReplica applies a partition's state from the image. Caller: the applier.
func (c *cluster) updateReplica(p *partition, ps controller.PartitionState) {
	r := &p.repl
	r.mu.Lock()
	if r.epochs == nil {
		ec, err := replication.OpenEpochCache(p.log.Dir())
		if err == nil {
			// The log may have lost a tail (recovery) or a head (retention) since.
			if err = ec.TruncateFromEnd(p.log.LogEndOffset()); err == nil {
				err = ec.TruncateFromStart(p.log.LogStartOffset())
			}
		}
		if err != nil {
			r.mu.Unlock()
			c.b.log.Error("leader epoch cache", "partition", p.tp.String(), "err", err)
			return
		}
		r.epochs = ec
	}
	r.replicas, r.isr, r.partitionEpoch = ps.Replicas, ps.ISR, ps.PartitionEpoch
	epochChanged := p.leaderEpoch.Load() != ps.LeaderEpoch || r.leaderID.Load() != ps.Leader
	role := r.role.Load()
	r.mu.Unlock()
	switch {
	case ps.Leader == c.self && (role != roleLeader || epochChanged || r.leader.Load() == nil):
		c.becomeLeader(p, ps)
	case ps.Leader == c.self:
		if ls := r.leader.Load(); ls != nil {
			ls.SetISR(ps.ISR)
			p.hwChanged()
		}
	case ps.Leader == controller.NoLeader:
		if role != roleNone || epochChanged {
			c.becomeNone(p)
			p.leaderEpoch.Store(ps.LeaderEpoch)
			r.leaderID.Store(ps.Leader)
		}
	case role != roleFollower || epochChanged:
		c.becomeFollower(p, ps)
	}
}

// becomeLeader makes this replica the leader at ps.LeaderEpoch: fetching stops, the epoch
// starts at the log end offset, producer state is rebuilt from the log.
func (c *cluster) becomeLeader(p *partition, ps controller.PartitionState) {
	r := &p.repl
	c.unfollow(p)
	p.mu.Lock()
	leo := p.log.LogEndOffset()
	if err := r.epochs.Assign(ps.LeaderEpoch, leo); err != nil {
		c.b.log.Error("leader epoch cache", "partition", p.tp.String(), "err", err)
	}
	p.producers = map[int64]*producerState{}
	p.txns = map[int64]int64{}
	p.firstUnstable.Store(-1)
	p.mu.Unlock()
	if err := p.loadProducerState(); err != nil {
		c.b.log.Error("rebuild producer state", "partition", p.tp.String(), "err", err)
	}
	ls := replication.NewLeaderState(replication.LeaderConfig{
		LocalID: c.self, LeaderEpoch: ps.LeaderEpoch, Replicas: ps.Replicas, ISR: ps.ISR,
		HighWatermark: min(r.hw.Load(), leo), LogEndOffset: leo, EpochStartOffset: leo, NowMs: time.Now().UnixMilli(),
	})
	p.leaderEpoch.Store(ps.LeaderEpoch)
	r.leaderID.Store(c.self)
	r.leader.Store(ls)
	r.role.Store(roleLeader)
	c.b.log.Info("leading", "partition", p.tp.String(), "epoch", ps.LeaderEpoch, "isr", ps.ISR)
	p.hwChanged()
	c.coordinatorElection(p, ps.LeaderEpoch, true)
}

// coordinatorElection moves the coordinator of an internal topic's partition with its
// leadership: elected after this node became leader, resigned after it stopped being it.
func (c *cluster) coordinatorElection(p *partition, epoch int32, elected bool) {
	switch p.tp.Topic {
	case coordinator.OffsetsTopic:
		if elected {
			c.b.groups.OnElection(p.tp.Partition, epoch)
		} else {
			c.b.groups.OnResignation(p.tp.Partition, epoch)
		}
	case txn.TopicName:
		if elected {
			c.b.txn.OnElection(p.tp.Partition, epoch)
		} else {
			c.b.txn.OnResignation(p.tp.Partition, epoch)
		}
	}
}

// becomeFollower makes this replica follow ps.Leader at ps.LeaderEpoch.
func (c *cluster) becomeFollower(p *partition, ps controller.PartitionState) {
	r := &p.repl
	wasLeader := r.leader.Swap(nil)
	if wasLeader != nil {
		r.hw.Store(wasLeader.HighWatermark())
	}
	r.role.Store(roleFollower)
	p.leaderEpoch.Store(ps.LeaderEpoch)
	r.leaderID.Store(ps.Leader)
	p.completeAcks(true) // parked acks=all produces: NOT_LEADER_OR_FOLLOWER
	p.wake()             // parked fetches answer (with NOT_LEADER_OR_FOLLOWER)
	c.follow(p, ps.Leader, ps.LeaderEpoch)
	c.coordinatorElection(p, ps.LeaderEpoch, false)
	c.b.log.Info("following", "partition", p.tp.String(), "leader", ps.Leader, "epoch", ps.LeaderEpoch)
}

// becomeNone stops a replica from leading or following.
func (c *cluster) becomeNone(p *partition) {
	r := &p.repl
	if ls := r.leader.Swap(nil); ls != nil {
		r.hw.Store(ls.HighWatermark())
	}
	r.role.Store(roleNone)
	c.unfollow(p)
	p.completeAcks(true)
	p.wake()
	c.coordinatorElection(p, -1, false)
}

// fetchers: one replication.Fetcher per leader broker.
type fetchers struct {
	mu sync.Mutex
	m  map[int32]*replication.Fetcher // guarded by mu
	at map[*partition]int32           // the leader each partition is fetched from; guarded by mu
}

func (c *cluster) follow(p *partition, leader, epoch int32) {
	c.unfollow(p)
	addr, ok := c.leaderEndpoint(leader)
	if !ok {
		c.b.log.Warn("no endpoint for leader", "leader", leader, "partition", p.tp.String())
		return
	}
	f := &c.fetch
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m, f.at = map[int32]*replication.Fetcher{}, map[*partition]int32{}
	}
	fe := f.m[leader]
	if fe == nil {
		fe = replication.NewFetcher(replication.FetcherConfig{
			LocalID: c.self, LeaderID: leader, Addr: addr, ClientID: "spate-replica",
			Logger: c.b.log.With("component", "fetcher", "leader", leader),
		})
		f.m[leader] = fe
	}
	f.at[p] = leader
	err := fe.Add(&replication.Replica{
		Topic: p.tp.Topic, Partition: p.tp.Partition, Log: p.log, Epochs: p.repl.epochs, LeaderEpoch: epoch,
		HighWatermark: p.repl.hw.Load(),
		OnFetched: func(hw, logStart int64) {
			if p.repl.role.Load() != roleFollower || p.leaderEpoch.Load() != epoch {
				return // a late call after the role changed
			}
			leo := p.log.LogEndOffset()
			nhw := min(hw, leo)
			if nhw > p.repl.hw.Load() {
				p.repl.hw.Store(nhw)
			}
			if logStart > p.log.LogStartOffset() && logStart <= leo {
				if _, err := p.log.DeleteRecordsBefore(logStart); err == nil {
					p.repl.epochs.TruncateFromStart(logStart)
				}
			}
		},
	})
	if err != nil {
		c.b.log.Warn("follow", "partition", p.tp.String(), "leader", leader, "err", err)
	}
}

func (c *cluster) unfollow(p *partition) {
	f := &c.fetch
	f.mu.Lock()
	defer f.mu.Unlock()
	leader, ok := f.at[p]
	if !ok {
		return
	}
	delete(f.at, p)
	if fe := f.m[leader]; fe != nil {
		fe.Remove(logstore.TopicPartition{Topic: p.tp.Topic, Partition: p.tp.Partition})
	}
}

func (c *cluster) stopReplication() {
	f := &c.fetch
	f.mu.Lock()
	fs := f.m
	f.m, f.at = nil, nil
	f.mu.Unlock()
	for _, fe := range fs {
		fe.Close()
	}
}

// followerFetched records a follower's fetch on the leader (called by the fetch handler):
// its log end offset is the fetch offset. The high watermark may move.
func (p *partition) followerFetched(replicaID int32, fetchOffset int64) {
	ls := p.repl.leader.Load()
	if ls == nil {
		return
	}
	if ls.UpdateFollower(replicaID, fetchOffset, p.log.LogEndOffset(), time.Now().UnixMilli()) {
		p.hwChanged()
	}
	if c := p.b.cluster; c != nil && fetchOffset >= ls.HighWatermark() {
		if f, ok := ls.Follower(replicaID); ok && !f.InISR {
			c.kickISR() // caught up: may join the ISR
		}
	}
}

// isReplica reports whether id is a follower of this leader's partition (lock-free: the
// leader state's replica set is immutable).
func (p *partition) isReplica(id int32) bool {
	ls := p.repl.leader.Load()
	return ls != nil && ls.IsReplica(id)
}

// isrSize is the current ISR's size (1 for a single node).
func (p *partition) isrSize() int {
	if ls := p.repl.leader.Load(); ls != nil {
		return len(ls.ISR())
	}
	return 1
}
