package replication

// LeaderState is the leader's bookkeeping for one partition, as Kafka's Partition and Replica
// keep it: each follower's log end offset (the fetch offset of its last fetch) and the last
// time it was caught up, the high watermark, and which followers should leave or join the ISR.
// The broker owns the ISR itself (changes go through the controller); it reports the result
// with SetISR.
//
// Rules (Kafka's):
//   - lastCaughtUpTimeMs (Replica.updateFetchState): a fetch at or past the leader's log end
//     offset at the time of this fetch sets it to this fetch's time; else a fetch at or past
//     the leader's log end offset at the time of the previous fetch sets it to the previous
//     fetch's time; else it stays. It never decreases.
//   - High watermark: the minimum log end offset over the ISR, the leader's own included,
//     only ever raised while leading. A follower in the ISR that has not fetched yet (log
//     end offset unknown, -1) holds it where it is.
//   - Shrink (Partition.getOutOfSyncReplicas): an ISR follower is out of sync unless its log
//     end offset equals the leader's or it was caught up within replica.lag.time.max.ms.
//   - Expand (Partition.isFollowerInSync): a follower outside the ISR may join once its log
//     end offset is >= the high watermark and >= the start offset of this leader epoch.
//   - On election (Replica.resetReplicaState for a new leader): follower offsets are unknown,
//     and the last caught-up time is the election time for ISR members, 0 for the others.

import (
	"slices"
	"sync"
	"sync/atomic"
)

// LeaderConfig describes a partition when this broker becomes its leader.
type LeaderConfig struct {
	LocalID     int32
	LeaderEpoch int32
	Replicas    []int32 // the assignment, the leader included
	ISR         []int32 // the in-sync replicas, the leader included
	// HighWatermark is the partition's high watermark at election (the broker's follower
	// high watermark or checkpoint); it only moves forward from here.
	HighWatermark int64
	// LogEndOffset is the local log end offset at election.
	LogEndOffset int64
	// EpochStartOffset is the start offset of this leader epoch: the log end offset when the
	// epoch was assigned in the epoch cache at election.
	EpochStartOffset int64
	NowMs            int64
}

// FollowerState is a snapshot of one follower's progress.
type FollowerState struct {
	ReplicaID    int32
	LogEndOffset int64 // the fetch offset of its last fetch; -1 until it fetches
	// LastFetchLeaderLogEndOffset is the largest leader log end offset seen at its fetches.
	LastFetchLeaderLogEndOffset int64
	LastFetchTimeMs             int64
	LastCaughtUpTimeMs          int64
	InISR                       bool
}

// LeaderState is one partition's leader-side replication state. Every method is safe for
// concurrent use; UpdateFollower, SetLocalLEO and HighWatermark allocate nothing.
type LeaderState struct {
	localID          int32
	leaderEpoch      int32
	epochStartOffset int64
	replicas         []int32 // immutable

	hw atomic.Int64 // written under mu, read by anyone. Invariant: never decreases.

	mu        sync.Mutex
	localLEO  int64           // guarded by mu; the leader's log end offset, never decreasing
	isr       []int32         // guarded by mu
	followers []FollowerState // guarded by mu; one per replica other than localID
}

// NewLeaderState starts the leader's bookkeeping for a partition.
func NewLeaderState(cfg LeaderConfig) *LeaderState {
	l := &LeaderState{
		localID:          cfg.LocalID,
		leaderEpoch:      cfg.LeaderEpoch,
		epochStartOffset: cfg.EpochStartOffset,
		replicas:         slices.Clone(cfg.Replicas),
		localLEO:         cfg.LogEndOffset,
		isr:              slices.Clone(cfg.ISR),
	}
	l.hw.Store(cfg.HighWatermark)
	for _, id := range cfg.Replicas {
		if id == cfg.LocalID {
			continue
		}
		f := FollowerState{ReplicaID: id, LogEndOffset: -1, LastFetchLeaderLogEndOffset: -1, InISR: slices.Contains(cfg.ISR, id)}
		if f.InISR {
			f.LastCaughtUpTimeMs = cfg.NowMs
		}
		l.followers = append(l.followers, f)
	}
	l.mu.Lock()
	l.maybeIncrementHWLocked()
	l.mu.Unlock()
	return l
}

// LeaderEpoch returns the epoch this state was created for.
func (l *LeaderState) LeaderEpoch() int32 { return l.leaderEpoch }

// EpochStartOffset returns the start offset of this leader epoch.
func (l *LeaderState) EpochStartOffset() int64 { return l.epochStartOffset }

// HighWatermark returns the high watermark.
func (l *LeaderState) HighWatermark() int64 { return l.hw.Load() }

// IsReplica reports whether id is a follower of this partition (in the assignment and not the
// leader). A fetch from anyone else is answered NOT_LEADER_OR_FOLLOWER, as Kafka does.
func (l *LeaderState) IsReplica(id int32) bool {
	return id != l.localID && slices.Contains(l.replicas, id)
}

// UpdateFollower records a follower's fetch: fetchOffset is its log end offset, leaderLEO the
// leader's log end offset when the fetch was received. It reports whether the high watermark
// moved (the broker then completes acks=all produces and delayed fetches). A replica that is
// not a follower of this partition is ignored.
func (l *LeaderState) UpdateFollower(replicaID int32, fetchOffset int64, leaderLEO int64, nowMs int64) (hwChanged bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.followerLocked(replicaID)
	if f == nil {
		return false
	}
	caughtUp := f.LastCaughtUpTimeMs
	switch {
	case fetchOffset >= leaderLEO:
		caughtUp = max(caughtUp, nowMs)
	case fetchOffset >= f.LastFetchLeaderLogEndOffset:
		caughtUp = max(caughtUp, f.LastFetchTimeMs)
	}
	f.LogEndOffset = fetchOffset
	f.LastFetchLeaderLogEndOffset = max(leaderLEO, f.LastFetchLeaderLogEndOffset)
	f.LastFetchTimeMs = nowMs
	f.LastCaughtUpTimeMs = caughtUp
	l.localLEO = max(l.localLEO, leaderLEO)
	return l.maybeIncrementHWLocked()
}

// SetLocalLEO records the leader's log end offset after an append and reports whether the
// high watermark moved (with an ISR of one it follows the log end offset).
func (l *LeaderState) SetLocalLEO(leo int64) (hwChanged bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.localLEO = max(l.localLEO, leo)
	return l.maybeIncrementHWLocked()
}

func (l *LeaderState) followerLocked(id int32) *FollowerState {
	for i := range l.followers {
		if l.followers[i].ReplicaID == id {
			return &l.followers[i]
		}
	}
	return nil
}

// maybeIncrementHWLocked raises the high watermark to the minimum log end offset over the ISR.
func (l *LeaderState) maybeIncrementHWLocked() bool {
	hw := l.localLEO
	for i := range l.followers {
		if f := &l.followers[i]; f.InISR {
			hw = min(hw, f.LogEndOffset)
		}
	}
	if hw <= l.hw.Load() {
		return false
	}
	l.hw.Store(hw)
	return true
}

// ShrinkCandidates returns the ISR followers that are out of sync at nowMs: behind the
// leader's log end offset and not caught up within replicaLagTimeMaxMs.
func (l *LeaderState) ShrinkCandidates(nowMs, replicaLagTimeMaxMs int64) []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int32
	for _, f := range l.followers {
		if f.InISR && f.LogEndOffset != l.localLEO && nowMs-f.LastCaughtUpTimeMs > replicaLagTimeMaxMs {
			out = append(out, f.ReplicaID)
		}
	}
	return out
}

// ExpandCandidates returns the followers outside the ISR that are in sync for a high
// watermark of hw: log end offset >= hw and >= this leader epoch's start offset.
func (l *LeaderState) ExpandCandidates(hw int64) []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int32
	for _, f := range l.followers {
		if !f.InISR && f.LogEndOffset >= 0 && f.LogEndOffset >= hw && f.LogEndOffset >= l.epochStartOffset {
			out = append(out, f.ReplicaID)
		}
	}
	return out
}

// SetISR records the ISR (after the controller accepted a change). While a change is in
// flight, pass Kafka's "maximal" ISR: the current ISR plus any replica being added, so that
// the high watermark waits for it. It reports whether the high watermark moved (a shrink may
// raise it).
func (l *LeaderState) SetISR(isr []int32) (hwChanged bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.isr = append(l.isr[:0], isr...)
	for i := range l.followers {
		l.followers[i].InISR = slices.Contains(isr, l.followers[i].ReplicaID)
	}
	return l.maybeIncrementHWLocked()
}

// ISR returns a copy of the ISR.
func (l *LeaderState) ISR() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.isr)
}

// Replicas returns a copy of the assignment.
func (l *LeaderState) Replicas() []int32 { return slices.Clone(l.replicas) }

// Follower returns a snapshot of a follower's progress.
func (l *LeaderState) Follower(id int32) (FollowerState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.followerLocked(id); f != nil {
		return *f, true
	}
	return FollowerState{}, false
}
