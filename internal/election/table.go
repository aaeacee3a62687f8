package election

// The elections of a coordinator's partitions (Kafka's maybeUpdateCoordinatorEpoch, in
// GroupMetadataManager and TransactionStateManager):
//
//   - The highest leader epoch seen per partition is kept. An election or resignation below
//     it is stale and ignored; a resignation with a negative (unknown) epoch always applies.
//   - An election at or below the epoch of the election being served is a no-op.
//   - A newer election for a partition already elected ends the older one, then starts its
//     own load.
//   - Ending an election (ResignLocked, or a newer election) abandons its load (Done is
//     closed) and takes its items out of the owner's maps at once (Config.Release); what
//     Release returns to finish the unloading runs on a goroutine, after that of the
//     partition's previous ended election.
//   - A load starts once the partition's last ended election is unloaded, so that every
//     append its items made is in the log that the load reads.

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Election is one election of a partition, from ElectLocked until it ends (a resignation or
// a newer election).
type Election[X any] struct {
	epoch  int32
	done   chan struct{}
	loaded bool // guarded by the owner's lock; Invariant: set once, by the owner's load

	// Data is the owner's state of this election (the group coordinator's markers reported
	// while it loads). Guarded by the owner's lock.
	Data X
}

// Epoch is the leader epoch the partition was elected at.
func (e *Election[X]) Epoch() int32 { return e.epoch }

// Done is closed when the election ends: its load, and any work for its items, stop.
func (e *Election[X]) Done() <-chan struct{} { return e.done }

// LoadedLocked reports whether the election's items are loaded and served. Caller holds the
// owner's lock.
func (e *Election[X]) LoadedLocked() bool { return e.loaded }

// SetLoadedLocked marks the election's items loaded, in the critical section that makes them
// visible in the owner's maps. Caller holds the owner's lock.
func (e *Election[X]) SetLoadedLocked() { e.loaded = true }

// Config is what a Table needs of its owner, a coordinator.
type Config[X any] struct {
	Topic string       // the topic whose partitions are elected, for logs
	Items string       // the log key for the number of items a partition held ("groups")
	Log   *slog.Logger // required

	// Mu is the owner's lock, which guards the Table; the Table takes it only on its unload
	// goroutines.
	Mu sync.Locker
	// WG counts the Table's goroutines (one load per election, one unload per ended election
	// that held items). The owner calls ElectLocked and ResignLocked only while it is not
	// stopped, under a lock it also holds to stop, so that nothing is added once it waits
	// for WG.
	WG *sync.WaitGroup
	// Stop is closed when the owner stops: loads give up.
	Stop <-chan struct{}

	// Load makes one attempt to load partition p for election e: it reads the log without
	// the owner's lock, then, holding it, installs the items and calls e.SetLoadedLocked
	// only if CurrentLocked(p, e) still holds, and returns ErrEnded otherwise. Any other
	// error is retried with backoff (Load, below) until the election ends. Called on the
	// election's load goroutine.
	Load func(p int32, e *Election[X]) error
	// Release is called, with the owner's lock held, when election e of partition p ends: it
	// takes p's items out of the owner's maps so that they are no longer served, and returns
	// their number and a function that finishes unloading them off the lock (it may block,
	// waiting for requests holding them), or nil when there is nothing to wait for. It must
	// not block.
	Release func(p int32, e *Election[X]) (n int, unload func())
}

// Table keeps the elections of a coordinator's partitions and starts their loads and unloads.
// It has no lock of its own: its maps are guarded by the owner's lock (Config.Mu), which the
// caller of every …Locked method holds. No method blocks: loads and unloads run on
// goroutines.
type Table[X any] struct {
	cfg Config[X]

	// All guarded by cfg.Mu.
	// Invariant: epochs[p] never decreases; every elected[p].epoch <= epochs[p].
	epochs  map[int32]int32
	elected map[int32]*Election[X]
	// unloading[p] is closed once the items of the last ended election of p are unloaded
	// (and those of every earlier one); it leaves the map then, unless a later one replaced it.
	unloading map[int32]chan struct{}
}

// NewTable returns a Table with nothing elected.
func NewTable[X any](cfg Config[X]) *Table[X] {
	return &Table[X]{
		cfg:       cfg,
		epochs:    map[int32]int32{},
		elected:   map[int32]*Election[X]{},
		unloading: map[int32]chan struct{}{},
	}
}

// ElectLocked records that this broker became the leader of partition p at leaderEpoch. Unless
// the election is stale or already served, it ends the partition's current election and starts
// loading p on a goroutine, once the items of every ended election of p are unloaded. Caller
// holds the owner's lock and has checked that the owner is not stopped (Config.WG).
func (t *Table[X]) ElectLocked(p, leaderEpoch int32) {
	if last, ok := t.epochs[p]; ok && leaderEpoch < last {
		t.cfg.Log.Info("stale election ignored", "topic", t.cfg.Topic, "partition", p, "leader_epoch", leaderEpoch, "current", last)
		return
	}
	if e := t.elected[p]; e != nil && leaderEpoch <= e.epoch {
		return
	}
	t.epochs[p] = leaderEpoch
	t.endLocked(p)
	e := &Election[X]{epoch: leaderEpoch, done: make(chan struct{})}
	t.elected[p] = e
	after := t.unloading[p]
	t.cfg.WG.Add(1)
	go t.load(p, e, after)
}

// ResignLocked records that this broker no longer leads partition p (leaderEpoch: the new
// leader's epoch; a negative one is unknown and always applies). Unless stale, it ends the
// partition's election: its items stop being served at once. Caller holds the owner's lock
// and has checked that the owner is not stopped (Config.WG).
func (t *Table[X]) ResignLocked(p, leaderEpoch int32) {
	if leaderEpoch >= 0 {
		if last, ok := t.epochs[p]; ok && leaderEpoch < last {
			t.cfg.Log.Info("stale resignation ignored", "topic", t.cfg.Topic, "partition", p, "leader_epoch", leaderEpoch, "current", last)
			return
		}
		t.epochs[p] = leaderEpoch
	}
	t.endLocked(p)
}

// Status is what a partition is to its owner.
type Status int8

const (
	NotElected Status = iota // not elected here, or resigned: its items are not served here
	Loading                  // elected, its load in progress
	Loaded                   // elected and loaded: its items are served
)

// StatusLocked returns the status of partition p. Caller holds the owner's lock.
func (t *Table[X]) StatusLocked(p int32) Status {
	switch e := t.elected[p]; {
	case e == nil:
		return NotElected
	case !e.loaded:
		return Loading
	}
	return Loaded
}

// ElectionLocked returns the current election of partition p, nil when p is not elected here.
// Caller holds the owner's lock.
func (t *Table[X]) ElectionLocked(p int32) *Election[X] { return t.elected[p] }

// CurrentLocked reports whether e is still the election of partition p: a load installs what
// it read only then. Caller holds the owner's lock.
func (t *Table[X]) CurrentLocked(p int32, e *Election[X]) bool { return t.elected[p] == e }

// LoadingLocked reports whether a partition elected here is still loading. Caller holds the
// owner's lock.
func (t *Table[X]) LoadingLocked() bool {
	for _, e := range t.elected {
		if !e.loaded {
			return true
		}
	}
	return false
}

// endLocked ends the election of partition p, if any: its load is abandoned (Done closed),
// its items leave the owner's maps (Release), and are unloaded on a goroutine after those of
// the previous ended election of p. Caller holds the owner's lock.
func (t *Table[X]) endLocked(p int32) {
	e := t.elected[p]
	if e == nil {
		return
	}
	delete(t.elected, p)
	close(e.done)
	n, unload := t.cfg.Release(p, e)
	t.cfg.Log.Info("resigned", "topic", t.cfg.Topic, "partition", p, "leader_epoch", e.epoch, "loaded", e.loaded, t.cfg.Items, n)
	if unload == nil {
		return
	}
	prev := t.unloading[p]
	done := make(chan struct{})
	t.unloading[p] = done
	t.cfg.WG.Add(1)
	go t.unload(p, unload, prev, done)
}

// unload runs unload once the previous ended election of p is unloaded (prev closed), then
// closes done.
func (t *Table[X]) unload(p int32, unload func(), prev <-chan struct{}, done chan struct{}) {
	defer t.cfg.WG.Done()
	if prev != nil {
		<-prev
	}
	unload()
	close(done)
	t.cfg.Mu.Lock()
	if t.unloading[p] == done {
		delete(t.unloading, p)
	}
	t.cfg.Mu.Unlock()
}

// load loads partition p for election e (after the items of the ended elections of p are
// unloaded), retrying with backoff until it is loaded or the election ends.
func (t *Table[X]) load(p int32, e *Election[X], after <-chan struct{}) {
	defer t.cfg.WG.Done()
	Load(after, e.done, t.cfg.Stop, func() error { return t.cfg.Load(p, e) },
		func(err error, retryIn time.Duration, level slog.Level) {
			t.cfg.Log.Log(context.Background(), level, "load elected partition", "topic", t.cfg.Topic, "partition", p, "leader_epoch", e.epoch, "err", err, "retry_in", retryIn)
		})
}
