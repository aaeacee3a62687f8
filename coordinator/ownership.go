package coordinator

// Partition ownership (Config.PartitionOwnership). In a cluster, the groups of a partition of
// __consumer_offsets are served by the broker that leads that partition, and move with its
// leadership, as in Kafka (GroupCoordinator.onElection / onResignation):
//
//   - OnElection(p, epoch): this broker became the leader of p. The groups and offsets of p are
//     read from its log on a goroutine; meanwhile requests for its groups answer
//     COORDINATOR_LOAD_IN_PROGRESS, then they are served.
//   - OnResignation(p, epoch): it no longer is. The groups of p leave the map at once (their
//     requests answer NOT_COORDINATOR), then, on a goroutine, each one's parked JoinGroup and
//     SyncGroup are answered NOT_COORDINATOR and its timers stopped. Nothing is written: the
//     next leader reads the same log.
//   - A group whose partition is not elected here answers NOT_COORDINATOR.
//
// Epochs (Kafka's GroupMetadataManager.maybeUpdateCoordinatorEpoch) are kept by
// Coordinator.elections (internal/election): the highest leader epoch seen per partition; an
// election or resignation below it is stale and ignored, and an election at or below the
// epoch of the election being served is a no-op. A newer election for a partition already
// elected ends the older one (its load is abandoned, or its groups are unloaded) and loads the
// partition again, once the older one's groups are unloaded, so that every append they made
// is in the log that the new load reads.
//
// Invariant: with PartitionOwnership, Coordinator.groups holds only groups of partitions
// elected here and loaded.

import (
	"fmt"
	"time"

	"github.com/spate-broker/spate/internal/election"
)

// partitionState is one election of a partition of __consumer_offsets. Its Data holds the
// markers that CompleteTxn reported while the partition was loading; they are applied to the
// loaded groups before they are served. Guarded by Coordinator.mu.
type partitionState = election.Election[[]txnCompletion]

type txnCompletion struct {
	pid    int64
	commit bool
}

// errElectionEnded: the election being loaded was superseded or resigned.
var errElectionEnded = election.ErrEnded

// OnElection tells the coordinator that this broker became the leader of partition of
// __consumer_offsets at leaderEpoch: its groups are loaded from its log in the background,
// then served. It never blocks and never calls the Host. Without Config.PartitionOwnership it
// does nothing (every partition is served).
func (c *Coordinator) OnElection(partition int32, leaderEpoch int32) {
	if !c.cfg.PartitionOwnership || partition < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return // Drain has answered and stopped everything; Close may be waiting for wg
	}
	c.elections.ElectLocked(partition, leaderEpoch)
}

// OnResignation tells the coordinator that this broker no longer leads partition of
// __consumer_offsets (leaderEpoch: the partition's new leader epoch; a negative one is
// unknown and always applies). Its groups stop being served at once; their parked requests
// are answered NOT_COORDINATOR and their timers stopped in the background. A resignation with
// an epoch below the one served is stale and ignored. It never blocks and never calls the
// Host. Without Config.PartitionOwnership it does nothing.
func (c *Coordinator) OnResignation(partition int32, leaderEpoch int32) {
	if !c.cfg.PartitionOwnership {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return // Drain has answered and stopped everything
	}
	c.elections.ResignLocked(partition, leaderEpoch)
}

// Owns reports whether this coordinator serves partition of __consumer_offsets: elected and
// loaded (without Config.PartitionOwnership: the topic is loaded and has that partition).
func (c *Coordinator) Owns(partition int32) bool {
	if c.closed.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cfg.PartitionOwnership {
		return c.ready.Load() && partition >= 0 && partition < c.partitions
	}
	return c.elections.StatusLocked(partition) == election.Loaded
}

// servedCodes is the code for requests of the groups of a partition, by its status.
var servedCodes = [...]int16{
	election.NotElected: errNotCoordinator,
	election.Loading:    errCoordinatorLoadInProgress,
	election.Loaded:     0,
}

// servedLocked is the code for requests of groups of partition p with PartitionOwnership:
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

// ensureTopic is Ensure with PartitionOwnership: the topic is created if needed, nothing is
// loaded.
func (c *Coordinator) ensureTopic() int16 {
	c.ensureMu.Lock()
	defer c.ensureMu.Unlock()
	switch {
	case c.closed.Load():
		return errNotCoordinator
	case c.ready.Load():
		return 0
	}
	n, err := c.host.OffsetsTopic(true, c.cfg.OffsetsTopicPartitions)
	if err != nil || n <= 0 {
		c.log.Warn("create offsets topic", "err", err)
		return errCoordinatorNotAvailable
	}
	c.mu.Lock()
	if c.partitions <= 0 {
		c.partitions = n
	}
	c.mu.Unlock()
	c.ready.Store(true)
	return 0
}

// releaseLocked is the group coordinator's election.Config.Release: the groups of partition p
// leave the map (gone) and the producers' lists of groups with pending offsets; the function
// returned unloads them (unloadOwned), taking each one's lock, which waits for the request
// holding it (an append). Caller holds mu.
func (c *Coordinator) releaseLocked(p int32, _ *partitionState) (int, func()) {
	var gone []*group
	ids := map[string]bool{}
	for id, g := range c.groups {
		if g.partition == p {
			g.gone.Store(true)
			delete(c.groups, id)
			gone = append(gone, g)
			ids[id] = true
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	for pid, groups := range c.txnGroups {
		for id := range groups {
			if ids[id] {
				delete(groups, id)
			}
		}
		if len(groups) == 0 {
			delete(c.txnGroups, pid)
		}
	}
	return len(gone), func() {
		for _, g := range gone {
			g.mu.Lock()
			g.unloadOwned()
			g.unlock()
		}
	}
}

// unloadOwned unloads a group whose partition is no longer served here (Kafka's
// onGroupUnloaded): parked requests are answered NOT_COORDINATOR, timers stopped, and the
// group leaves the metrics, Dead. Caller holds g.mu.
func (g *group) unloadOwned() {
	if g.state == Dead {
		return
	}
	g.unloadLocked()
	g.transition(Dead)
	members := len(g.members)
	if g.cg != nil {
		members += len(g.cg.members)
	}
	g.c.metrics.members.Add(-int64(members))
	g.c.metrics.offsets.Add(-int64(len(g.offsets)))
}

// loadElectedOnce is the group coordinator's election.Config.Load: it reads partition p and,
// if its election st is still current, installs its groups (with the markers reported
// meanwhile applied), serves them and starts their timers. Called on the election's load
// goroutine, without mu.
func (c *Coordinator) loadElectedOnce(p int32, st *partitionState) error {
	start := time.Now()
	n, err := c.host.OffsetsTopic(false, c.cfg.OffsetsTopicPartitions)
	if err != nil {
		return err
	}
	if p >= n {
		return fmt.Errorf("load %s-%d: the topic has %d partitions", OffsetsTopic, p, n)
	}
	l := c.host.OffsetsLog(p)
	if l == nil {
		return fmt.Errorf("load %s-%d: no log", OffsetsTopic, p)
	}
	loaded := map[string]*loadedGroup{}
	if err := c.loadPartition(p, l, loaded); err != nil {
		return fmt.Errorf("load %s-%d: %w", OffsetsTopic, p, err)
	}
	var groups []*group
	offsets := 0
	for id, lg := range loaded {
		if lg.empty() {
			continue
		}
		if q := partitionFor(id, n); q != p {
			c.log.Warn("offsets topic: group of another partition skipped", "partition", p, "group", id, "its_partition", q)
			continue
		}
		groups = append(groups, c.buildLoaded(id, p, lg))
		offsets += len(lg.offsets)
	}
	for {
		c.mu.Lock()
		if !c.elections.CurrentLocked(p, st) || c.closed.Load() {
			c.mu.Unlock()
			for _, g := range groups {
				g.mu.Lock()
				g.unloadOwned()
				g.unlock()
			}
			return errElectionEnded
		}
		queued := st.Data
		st.Data = nil
		if len(queued) == 0 {
			if c.partitions <= 0 {
				c.partitions = n
			}
			for _, g := range groups {
				c.groups[g.id] = g
				for pid := range g.pendingTxn {
					c.addTxnGroupLocked(pid, g.id)
				}
			}
			st.SetLoadedLocked()
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		// Markers written while loading: the groups are not visible yet.
		for _, x := range queued {
			for _, g := range groups {
				g.mu.Lock()
				g.completeTxnLocked(x.pid, x.commit)
				g.unlock()
			}
		}
	}
	for _, g := range groups {
		g.mu.Lock()
		if !g.gone.Load() && g.state != Dead {
			g.startLoaded()
		}
		g.unlock()
	}
	c.log.Info("loaded groups", "topic", OffsetsTopic, "partition", p, "leader_epoch", st.Epoch(), "groups", len(groups), "offsets", offsets, "took", time.Since(start))
	return nil
}
