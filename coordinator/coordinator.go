package coordinator

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/VictoriaMetrics/metrics"

	"github.com/spate-broker/spate/internal/election"
	"github.com/spate-broker/spate/logstore"
)

// OffsetsTopic is the internal topic holding committed offsets and group metadata.
const OffsetsTopic = "__consumer_offsets"

// Host is what the coordinator needs from the broker it runs in.
type Host interface {
	// OffsetsTopic returns the partition count of __consumer_offsets, first creating the topic
	// with partitions partitions (compacted) when create is set and it does not exist. It
	// returns 0 when the topic does not exist and create is not set.
	OffsetsTopic(create bool, partitions int32) (int32, error)
	// OffsetsLog returns the log of a partition of __consumer_offsets, or nil.
	OffsetsLog(partition int32) *logstore.Log
	// AppendOffsets appends one record batch to a partition of __consumer_offsets as its
	// leader, waking fetches parked on it. It returns once the batch is in the log.
	AppendOffsets(partition int32, batch []byte) error
	// PartitionCount returns a topic's partition count, 0 when the topic does not exist.
	PartitionCount(topic string) int32
}

// Coordinator serves the classic group protocol for every group of this node. Its methods may
// be called from any goroutine; those that answer through a reply function may answer later,
// from another goroutine.
type Coordinator struct {
	cfg     Config
	host    Host
	log     *slog.Logger
	metrics *groupMetrics

	ready  atomic.Bool // the offsets topic exists and is loaded (PartitionOwnership: exists)
	closed atomic.Bool // Drain was called: answer NOT_COORDINATOR

	ensureMu sync.Mutex // serializes Ensure

	mu         sync.Mutex
	groups     map[string]*group         // guarded by mu
	partitions int32                     // partition count of the offsets topic; guarded by mu
	txnGroups  map[int64]map[string]bool // producer id → groups with pending transactional offsets; guarded by mu

	// With Config.PartitionOwnership (ownership.go): the partitions elected here and the
	// highest leader epoch seen for each partition; guarded by mu.
	elections *election.Table[[]txnCompletion]

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a coordinator. When __consumer_offsets exists, every group and offset in it is
// loaded before New returns; otherwise the topic is created by the first Ensure (a
// FindCoordinator for a group, as in Kafka). With Config.PartitionOwnership nothing is loaded:
// each partition is, when the broker reports it elected (OnElection).
func New(cfg Config, host Host, log *slog.Logger, set *metrics.Set) (*Coordinator, error) {
	if log == nil {
		log = slog.Default()
	}
	if set == nil {
		set = metrics.NewSet()
	}
	c := &Coordinator{cfg: cfg.normalized(), host: host, log: log, groups: map[string]*group{}, txnGroups: map[int64]map[string]bool{}, stop: make(chan struct{})}
	c.metrics = newGroupMetrics(set)
	c.elections = election.NewTable(election.Config[[]txnCompletion]{
		Topic: OffsetsTopic, Items: "groups", Log: log, Mu: &c.mu, WG: &c.wg, Stop: c.stop,
		Load: c.loadElectedOnce, Release: c.releaseLocked,
	})
	n, err := host.OffsetsTopic(false, c.cfg.OffsetsTopicPartitions)
	if err != nil {
		return nil, err
	}
	switch {
	case c.cfg.PartitionOwnership:
		// Partitions are loaded when elected (OnElection); ready: the topic exists.
		c.partitions = n
		c.ready.Store(n > 0)
	case n > 0:
		if err := c.load(n); err != nil {
			return nil, err
		}
	}
	c.wg.Add(1)
	go c.expireOffsetsLoop()
	return c, nil
}

// Ensure creates __consumer_offsets if it does not exist yet and loads it; it returns a Kafka
// error code (0 once the coordinator is ready). With Config.PartitionOwnership it only makes
// sure the topic exists (0, or COORDINATOR_NOT_AVAILABLE): partitions are loaded when elected.
func (c *Coordinator) Ensure() int16 {
	if c.closed.Load() {
		return errNotCoordinator
	}
	if c.cfg.PartitionOwnership {
		return c.ensureTopic()
	}
	if c.ready.Load() {
		return 0
	}
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
	if err := c.load(n); err != nil {
		c.log.Error("load offsets topic", "err", err)
		return errCoordinatorNotAvailable
	}
	return 0
}

// status is the error every request for group id gets before it looks at the group: with
// Config.PartitionOwnership, NOT_COORDINATOR unless the group's partition is elected here, and
// COORDINATOR_LOAD_IN_PROGRESS while it loads.
func (c *Coordinator) status(id string) int16 {
	switch {
	case c.closed.Load():
		return errNotCoordinator
	case c.cfg.PartitionOwnership:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.servedLocked(c.partitionForLocked(id))
	case !c.ready.Load():
		return errCoordinatorNotAvailable
	}
	return 0
}

// active reports whether background work (offsets expiry) may run: groups are loaded.
func (c *Coordinator) active() bool {
	return !c.closed.Load() && (c.cfg.PartitionOwnership || c.ready.Load())
}

// Drain answers every parked JoinGroup and SyncGroup with NOT_COORDINATOR (as Kafka does when
// it unloads a group), stops every timer and makes later requests answer NOT_COORDINATOR, so
// that the network server can stop. The groups' state is left as it was stored.
func (c *Coordinator) Drain() {
	// closed is set under mu: OnElection and OnResignation check it and add to wg under mu,
	// so none adds once Close waits.
	c.mu.Lock()
	was := c.closed.Swap(true)
	c.mu.Unlock()
	if was {
		return
	}
	for _, g := range c.snapshot() {
		g.mu.Lock()
		g.unloadLocked()
		g.unlock()
	}
}

// Close drains the coordinator and stops its background work. It waits for a topic creation
// in progress (Ensure), so that nothing is created in the data folder once it returns.
func (c *Coordinator) Close() {
	c.Drain()
	c.ensureMu.Lock() // waits for a running Ensure
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.ensureMu.Unlock()
	c.wg.Wait()
}

// snapshot returns the current groups, sorted by id.
func (c *Coordinator) snapshot() []*group {
	c.mu.Lock()
	out := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, g)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// lockGroup returns the group locked, creating it (Empty) when create is set, or nil. A Dead
// group has already left the map when its lock is released, and an unloaded one (gone) when
// it is set, so either is looked up again. With Config.PartitionOwnership, a group whose
// partition is not served here is not looked up: code says why (NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS); it is always 0 otherwise.
func (c *Coordinator) lockGroup(id string, create bool) (*group, int16) {
	for {
		c.mu.Lock()
		if c.cfg.PartitionOwnership {
			if code := c.servedLocked(c.partitionForLocked(id)); code != 0 {
				c.mu.Unlock()
				return nil, code
			}
		}
		g := c.groups[id]
		if g == nil {
			if !create {
				c.mu.Unlock()
				return nil, 0
			}
			g = newGroup(c, id, c.partitionForLocked(id))
			c.groups[id] = g
		}
		c.mu.Unlock()
		g.mu.Lock()
		if g.state != Dead && !g.gone.Load() {
			return g, 0
		}
		g.mu.Unlock()
	}
}

// removeLocked takes a Dead group out of the map. Caller holds g.mu.
func (c *Coordinator) removeLocked(g *group) {
	c.mu.Lock()
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
	c.mu.Unlock()
}

// PartitionFor returns the partition of __consumer_offsets that holds a group.
func (c *Coordinator) PartitionFor(group string) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.partitionForLocked(group)
}

func (c *Coordinator) partitionForLocked(group string) int32 {
	n := c.partitions
	if n <= 0 {
		n = c.cfg.OffsetsTopicPartitions
	}
	return partitionFor(group, n)
}

// partitionFor is Kafka's Utils.abs(groupId.hashCode) % partitions.
func partitionFor(group string, partitions int32) int32 {
	h := javaHashCode(group)
	if h == -1<<31 {
		h = 0 // Utils.abs maps Integer.MIN_VALUE to 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// javaHashCode is java.lang.String.hashCode: s[0]*31^(n-1) + … over UTF-16 code units.
func javaHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			h = 31*h + r1
			h = 31*h + r2
			continue
		}
		h = 31*h + r
	}
	return h
}

// newMemberID is Kafka's member id: the client id (or the group instance id of a static
// member), a dash and a random UUID.
func newMemberID(prefix string) string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

func nowMs() int64 { return time.Now().UnixMilli() }
