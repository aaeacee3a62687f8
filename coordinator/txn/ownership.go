package txn

// Partition ownership (Config.PartitionOwnership). In a cluster, the transactional ids of a
// partition of __transaction_state are served by the broker that leads that partition, and
// move with its leadership, as in Kafka (TransactionCoordinator.onElection / onResignation):
//
//   - OnElection(p, epoch): this broker became the leader of p. The ids of p are read from its
//     log on a goroutine; meanwhile their requests answer COORDINATOR_LOAD_IN_PROGRESS. Once
//     loaded they are served, transactions found in Prepare* are completed (markers written
//     again, with the coordinator epoch epoch, then Complete* recorded) and the timeout clock
//     of Ongoing ones resumes, exactly as after the load of every partition.
//   - OnResignation(p, epoch): it no longer is. The ids of p leave the map at once (their
//     requests answer NOT_COORDINATOR); marker writing and completion for them stop without
//     writing any Complete* record (the next leader resumes them from the log); an append
//     that was in progress for one of them answers NOT_COORDINATOR.
//   - An id whose partition is not elected here answers NOT_COORDINATOR.
//
// Epochs (Kafka's TransactionStateManager keeps the coordinator epoch per partition): the
// highest leader epoch seen per partition is kept; an election or resignation below it is
// stale and ignored, and an election at or below the epoch of the election being served is a
// no-op. A newer election for a partition already elected ends the older one and loads the
// partition again, once every request that held an id of the older one is done, so that its
// appends are in the log that the new load reads.
//
// Invariant: with PartitionOwnership, Coordinator.txns holds only ids of partitions elected
// here and loaded.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spate-broker/spate/internal/election"
)

// partitionState is one election of a partition of __transaction_state. Guarded by
// Coordinator.mu.
type partitionState struct {
	epoch  int32 // the coordinator epoch of the markers of its ids
	loaded bool
	done   chan struct{} // closed when this election ends: its load and markers stop
}

// errElectionEnded: the election being loaded was superseded or resigned.
var errElectionEnded = election.ErrEnded

// OnElection tells the coordinator that this broker became the leader of partition of
// __transaction_state at leaderEpoch: its transactional ids are loaded from its log in the
// background, then served, their markers carrying leaderEpoch as coordinator epoch. It never
// blocks and never calls the Host. Without Config.PartitionOwnership it does nothing (every
// partition is served).
func (c *Coordinator) OnElection(partition int32, leaderEpoch int32) {
	if !c.cfg.PartitionOwnership || partition < 0 {
		return
	}
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.epochs[partition]; ok && leaderEpoch < last {
		c.log.Info("stale election ignored", "topic", TopicName, "partition", partition, "leader_epoch", leaderEpoch, "current", last)
		return
	}
	if st := c.owned[partition]; st != nil && leaderEpoch <= st.epoch {
		return
	}
	c.epochs[partition] = leaderEpoch
	c.endElectionLocked(partition)
	st := &partitionState{epoch: leaderEpoch, done: make(chan struct{})}
	c.owned[partition] = st
	after := c.unloading[partition]
	c.wg.Add(1)
	go c.loadElected(partition, st, after)
}

// OnResignation tells the coordinator that this broker no longer leads partition of
// __transaction_state (leaderEpoch: the partition's new leader epoch; a negative one is
// unknown and always applies). Its ids stop being served at once, and the completion of
// their transactions stops. A resignation with an epoch below the one served is stale and
// ignored. It never blocks and never calls the Host. Without Config.PartitionOwnership it does
// nothing.
func (c *Coordinator) OnResignation(partition int32, leaderEpoch int32) {
	if !c.cfg.PartitionOwnership {
		return
	}
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed.Load() {
		return // stopped: nothing is served any more
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if leaderEpoch >= 0 {
		if last, ok := c.epochs[partition]; ok && leaderEpoch < last {
			c.log.Info("stale resignation ignored", "topic", TopicName, "partition", partition, "leader_epoch", leaderEpoch, "current", last)
			return
		}
		c.epochs[partition] = leaderEpoch
	}
	c.endElectionLocked(partition)
}

// Owns reports whether this coordinator serves partition of __transaction_state: elected and
// loaded (without Config.PartitionOwnership: the topic is loaded and has that partition).
func (c *Coordinator) Owns(partition int32) bool {
	if c.closed.Load() {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.cfg.PartitionOwnership {
		return c.ready.Load() && partition >= 0 && partition < c.partitions
	}
	st := c.owned[partition]
	return st != nil && st.loaded
}

// servedLocked is the code for requests of ids of partition p with PartitionOwnership:
// NOT_COORDINATOR unless elected here, COORDINATOR_LOAD_IN_PROGRESS while loading. Caller
// holds mu.
func (c *Coordinator) servedLocked(p int32) int16 {
	st := c.owned[p]
	switch {
	case c.closed.Load() || st == nil:
		return errNotCoordinator
	case !st.loaded:
		return errCoordinatorLoadInProgress
	}
	return 0
}

// loadingLocked reports whether a partition elected here is still loading. Caller holds mu.
func (c *Coordinator) loadingLocked() bool {
	for _, st := range c.owned {
		if !st.loaded {
			return true
		}
	}
	return false
}

// endElectionLocked ends the election of partition p, if any: a load in progress is
// abandoned; loaded ids leave the map and the gauges (gone), and a goroutine waits for the
// requests holding them. Caller holds lifeMu and mu (write).
func (c *Coordinator) endElectionLocked(p int32) {
	st := c.owned[p]
	if st == nil {
		return
	}
	delete(c.owned, p)
	close(st.done)
	var gone []*txn
	for id, t := range c.txns {
		if t.partition == p {
			t.gone.Store(true)
			c.metrics.byState[t.state].Add(-1)
			delete(c.txns, id)
			gone = append(gone, t)
		}
	}
	c.log.Info("resigned", "topic", TopicName, "partition", p, "leader_epoch", st.epoch, "loaded", st.loaded, "transactional_ids", len(gone))
	if len(gone) == 0 {
		return
	}
	prev := c.unloading[p]
	done := make(chan struct{})
	c.unloading[p] = done
	c.wg.Add(1)
	go c.unload(p, gone, prev, done)
}

// unload closes done once every request holding one of the unloaded txns (an append in
// progress) is done, after those of an earlier resignation (prev).
func (c *Coordinator) unload(p int32, txns []*txn, prev <-chan struct{}, done chan struct{}) {
	defer c.wg.Done()
	if prev != nil {
		<-prev
	}
	for _, t := range txns {
		t.mu.Lock()
		//lint:ignore SA2001 the critical section is the wait for the request holding t
		t.mu.Unlock()
	}
	close(done)
	c.mu.Lock()
	if c.unloading[p] == done {
		delete(c.unloading, p)
	}
	c.mu.Unlock()
}

// loadElected loads an elected partition (after the ids of an earlier election are
// released), retrying with backoff until it is loaded or the election ends.
func (c *Coordinator) loadElected(p int32, st *partitionState, after <-chan struct{}) {
	defer c.wg.Done()
	election.Load(after, st.done, c.stop, func() error { return c.loadElectedOnce(p, st) },
		func(err error, retryIn time.Duration, level slog.Level) {
			c.log.Log(context.Background(), level, "load transaction state partition", "topic", TopicName, "partition", p, "leader_epoch", st.epoch, "err", err, "retry_in", retryIn)
		})
}

// loadElectedOnce reads partition p and, if its election st is still current, installs its
// ids, serves them and completes the transactions found preparing.
func (c *Coordinator) loadElectedOnce(p int32, st *partitionState) error {
	start := time.Now()
	n, err := c.host.StateTopic(false, c.cfg.StatePartitions)
	if err != nil {
		return err
	}
	if p >= n {
		return fmt.Errorf("load %s-%d: the topic has %d partitions", TopicName, p, n)
	}
	l := c.host.StateLog(p)
	if l == nil {
		return fmt.Errorf("load %s-%d: no log", TopicName, p)
	}
	loaded := map[string]*meta{}
	if err := c.loadPartition(p, l, loaded); err != nil {
		return fmt.Errorf("load %s-%d: %w", TopicName, p, err)
	}
	var resume []*txn
	installed := 0
	c.mu.Lock()
	if c.owned[p] != st || c.closed.Load() {
		c.mu.Unlock()
		return errElectionEnded
	}
	if c.partitions <= 0 {
		c.partitions = n
	}
	for id, m := range loaded {
		if m == nil {
			continue // tombstone
		}
		if q := partitionFor(id, n); q != p {
			c.log.Warn("transaction state topic: id of another partition skipped", "partition", p, "transactional_id", id, "its_partition", q)
			continue
		}
		t := &txn{id: id, partition: p, coordEpoch: st.epoch, stop: st.done, meta: *m}
		c.txns[id] = t
		c.metrics.byState[m.state].Add(1)
		installed++
		if m.state.preparing() {
			resume = append(resume, t)
		}
	}
	st.loaded = true
	c.mu.Unlock()
	c.log.Info("loaded transactions", "topic", TopicName, "partition", p, "leader_epoch", st.epoch, "transactional_ids", installed, "preparing", len(resume), "took", time.Since(start))
	for _, t := range resume {
		t.mu.Lock()
		m := t.meta
		t.mu.Unlock()
		c.goFinish(t, m)
	}
	return nil
}
