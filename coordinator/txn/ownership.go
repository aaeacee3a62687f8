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
// Epochs (Kafka's TransactionStateManager keeps the coordinator epoch per partition) are kept
// by Coordinator.elections (internal/election): the highest leader epoch seen per partition;
// an election or resignation below it is stale and ignored, and an election at or below the
// epoch of the election being served is a no-op. A newer election for a partition already elected ends the older one and loads the
// partition again, once every request that held an id of the older one is done, so that its
// appends are in the log that the new load reads.
//
// Invariant: with PartitionOwnership, Coordinator.txns holds only ids of partitions elected
// here and loaded.

import (
	"fmt"
	"time"

	"github.com/spate-broker/spate/internal/election"
)

// partitionState is one election of a partition of __transaction_state: its Epoch is the
// coordinator epoch of the markers of its ids, and its Done stops its load and markers.
// Guarded by Coordinator.mu.
type partitionState = election.Election[struct{}]

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
	c.elections.ElectLocked(partition, leaderEpoch)
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
	c.elections.ResignLocked(partition, leaderEpoch)
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
	return c.elections.StatusLocked(partition) == election.Loaded
}

// servedCodes is the code for requests of the ids of a partition, by its status.
var servedCodes = [...]int16{
	election.NotElected: errNotCoordinator,
	election.Loading:    errCoordinatorLoadInProgress,
	election.Loaded:     0,
}

// servedLocked is the code for requests of ids of partition p with PartitionOwnership:
// NOT_COORDINATOR unless elected here, COORDINATOR_LOAD_IN_PROGRESS while loading. Caller
// holds mu.
func (c *Coordinator) servedLocked(p int32) int16 {
	if c.closed.Load() {
		return errNotCoordinator
	}
	return servedCodes[c.elections.StatusLocked(p)]
}

// loadingLocked reports whether a partition elected here is still loading. Caller holds mu.
func (c *Coordinator) loadingLocked() bool { return c.elections.LoadingLocked() }

// releaseLocked is the transaction coordinator's election.Config.Release: the ids of
// partition p leave the map and the gauges (gone); the function returned waits for every
// request holding one of them (an append in progress), taking each one's lock. Caller holds
// lifeMu and mu (write).
func (c *Coordinator) releaseLocked(p int32, _ *partitionState) (int, func()) {
	var gone []*txn
	for id, t := range c.txns {
		if t.partition == p {
			t.gone.Store(true)
			c.metrics.byState[t.state].Add(-1)
			delete(c.txns, id)
			gone = append(gone, t)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	return len(gone), func() {
		for _, t := range gone {
			t.mu.Lock()
			//lint:ignore SA2001 the critical section is the wait for the request holding t
			t.mu.Unlock()
		}
	}
}

// loadElectedOnce is the transaction coordinator's election.Config.Load: it reads partition
// p and, if its election st is still current, installs its ids, serves them and completes the
// transactions found preparing. Called on the election's load goroutine, without mu.
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
	if !c.elections.CurrentLocked(p, st) || c.closed.Load() {
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
		t := &txn{id: id, partition: p, coordEpoch: st.Epoch(), stop: st.Done(), meta: *m}
		c.txns[id] = t
		c.metrics.byState[m.state].Add(1)
		installed++
		if m.state.preparing() {
			resume = append(resume, t)
		}
	}
	st.SetLoadedLocked()
	c.mu.Unlock()
	c.log.Info("loaded transactions", "topic", TopicName, "partition", p, "leader_epoch", st.Epoch(), "transactional_ids", installed, "preparing", len(resume), "took", time.Since(start))
	for _, t := range resume {
		t.mu.Lock()
		m := t.meta
		t.mu.Unlock()
		c.goFinish(t, m)
	}
	return nil
}
