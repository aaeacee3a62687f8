package txn

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/VictoriaMetrics/metrics"

	"github.com/spate-broker/spate/internal/election"
	"github.com/spate-broker/spate/logstore"
)

// TopicName is the internal topic holding the transactions' state.
const TopicName = "__transaction_state"

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Host is what the coordinator needs from the broker it runs in.
type Host interface {
	// StateTopic returns the partition count of __transaction_state, creating it (compacted,
	// with partitions partitions) when create is set and it does not exist; 0 when absent and
	// !create.
	StateTopic(create bool, partitions int32) (int32, error)
	// StateLog returns the log of a partition of __transaction_state, or nil if absent.
	StateLog(partition int32) *logstore.Log
	// AppendState appends one batch to a partition of __transaction_state as its leader; it
	// returns when the batch is in the log.
	AppendState(partition int32, batch []byte) error
	// NewProducerID returns a fresh, never-used producer id.
	NewProducerID() (int64, error)
	// WriteMarkers appends a commit or abort control batch for producerID/epoch (with
	// coordinatorEpoch: the leader epoch of the transactional id's partition of
	// __transaction_state at the election of this coordinator, 0 without
	// Config.PartitionOwnership) to each partition and returns one Kafka error code per partition in
	// order (0 written; 3 UNKNOWN_TOPIC_OR_PARTITION means the partition is gone: treated as
	// done). It may block; the coordinator never calls it holding a lock. It must be
	// idempotent from the coordinator's view: retrying a partition that already got its
	// marker is harmless.
	WriteMarkers(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, parts []TopicPartition) []int16
	// PartitionExists reports whether a partition exists (AddPartitionsToTxn).
	PartitionExists(topic string, partition int32) bool
	// OffsetsPartitionFor returns the __consumer_offsets partition of a group
	// (AddOffsetsToTxn); false when the group coordinator is not available.
	OffsetsPartitionFor(groupID string) (TopicPartition, bool)
}

// Backoff between marker writes (and completion appends) that failed.
const (
	retryBackoffMin = 10 * time.Millisecond
	retryBackoffMax = time.Second
)

// Coordinator serves the transaction APIs for every transactional id of this node. Its
// methods may be called from any goroutine; EndTxn and InitProducerId may block while markers
// are written, so the broker calls them off its event loops.
type Coordinator struct {
	cfg     Config
	host    Host
	log     *slog.Logger
	metrics *txnMetrics
	now     func() int64 // milliseconds

	ready   atomic.Bool // the state topic exists and is loaded (PartitionOwnership: exists)
	loading atomic.Bool // Ensure is loading it: COORDINATOR_LOAD_IN_PROGRESS
	closed  atomic.Bool // Drain was called: answer NOT_COORDINATOR

	ensureMu sync.Mutex // serializes Ensure and load

	lifeMu sync.Mutex     // orders wg.Add after a closed check against Close's wg.Wait
	wg     sync.WaitGroup // requests in progress, marker writers, the timer loop
	stop   chan struct{}  // closed by Drain

	mu         sync.RWMutex
	txns       map[string]*txn // guarded by mu
	partitions int32           // partition count of the state topic; guarded by mu

	// With Config.PartitionOwnership (ownership.go): the partitions elected here and the
	// highest leader epoch seen for each partition; guarded by mu (its goroutines counted in
	// wg, added under lifeMu).
	elections *election.Table[struct{}]
}

// New returns a coordinator. When __transaction_state exists, every transactional id in it is
// loaded before New returns (and transactions found preparing are completed in the
// background); otherwise the topic is created by the first Ensure (a FindCoordinator for a
// transactional id, as in Kafka). With Config.PartitionOwnership nothing is loaded: each
// partition is, when the broker reports it elected (OnElection).
func New(cfg Config, host Host, log *slog.Logger, set *metrics.Set) (*Coordinator, error) {
	return newCoordinator(cfg, host, log, set, func() int64 { return time.Now().UnixMilli() })
}

func newCoordinator(cfg Config, host Host, log *slog.Logger, set *metrics.Set, now func() int64) (*Coordinator, error) {
	if log == nil {
		log = slog.Default()
	}
	if set == nil {
		set = metrics.NewSet()
	}
	c := &Coordinator{
		cfg: cfg.normalized(), host: host, log: log, now: now,
		txns: map[string]*txn{}, stop: make(chan struct{}),
	}
	c.elections = election.NewTable(election.Config[struct{}]{
		Topic: TopicName, Items: "transactional_ids", Log: log, Mu: &c.mu, WG: &c.wg, Stop: c.stop,
		Load: c.loadElectedOnce, Release: c.releaseLocked,
	})
	c.metrics = newTxnMetrics(set)
	n, err := host.StateTopic(false, c.cfg.StatePartitions)
	if err != nil {
		return nil, err
	}
	if c.cfg.PartitionOwnership {
		// Partitions are loaded when elected (OnElection); ready: the topic exists.
		c.partitions = n
		c.ready.Store(n > 0)
	} else if n > 0 {
		c.ensureMu.Lock()
		err := c.load(n)
		c.ensureMu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	c.wg.Add(1)
	go c.timerLoop()
	return c, nil
}

// Ensure creates __transaction_state if it does not exist yet and loads it; it returns a
// Kafka error code (0 once the coordinator is ready). With Config.PartitionOwnership it only
// makes sure the topic exists (0, or COORDINATOR_NOT_AVAILABLE): partitions are loaded when
// elected.
func (c *Coordinator) Ensure() int16 {
	if c.closed.Load() {
		return errNotCoordinator
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
	n, err := c.host.StateTopic(true, c.cfg.StatePartitions)
	if err != nil || n <= 0 {
		c.log.Warn("create transaction state topic", "err", err)
		return errCoordinatorNotAvailable
	}
	if c.cfg.PartitionOwnership {
		c.mu.Lock()
		if c.partitions <= 0 {
			c.partitions = n
		}
		c.mu.Unlock()
		c.ready.Store(true)
		return 0
	}
	if err := c.load(n); err != nil {
		c.log.Error("load transaction state topic", "err", err)
		return errCoordinatorNotAvailable
	}
	return 0
}

// status is the error every transactional request gets before it looks at its id
// (TransactionStateManager.getTransactionState), without Config.PartitionOwnership (statusFor).
func (c *Coordinator) status() int16 {
	switch {
	case c.closed.Load():
		return errNotCoordinator
	case c.ready.Load():
		return 0
	case c.loading.Load():
		return errCoordinatorLoadInProgress
	}
	return errNotCoordinator
}

// statusFor is the error a request for transactional id gets before it looks at the id: with
// Config.PartitionOwnership, NOT_COORDINATOR unless the id's partition is elected here, and
// COORDINATOR_LOAD_IN_PROGRESS while it loads.
func (c *Coordinator) statusFor(id string) int16 {
	if !c.cfg.PartitionOwnership {
		return c.status()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.statusLocked(id)
}

// statusLocked is statusFor with mu held (read or write).
func (c *Coordinator) statusLocked(id string) int16 {
	if !c.cfg.PartitionOwnership {
		return c.status()
	}
	return c.servedLocked(c.partitionForLocked(id))
}

// active reports whether background work (timeouts, expiration) may run: ids are loaded.
func (c *Coordinator) active() bool {
	if c.cfg.PartitionOwnership {
		return !c.closed.Load()
	}
	return c.status() == 0
}

// enter registers a request or background task for transactional id that may append or write
// markers, so that Close waits for it; it returns the status code (statusFor), and the caller
// calls c.wg.Done when 0.
func (c *Coordinator) enter(id string) int16 {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if code := c.statusFor(id); code != 0 {
		return code
	}
	c.wg.Add(1)
	return 0
}

// goFinish completes a Prepare* transaction in the background.
func (c *Coordinator) goFinish(t *txn, m meta) {
	if t.gone.Load() || c.enter(t.id) != 0 {
		return // stopping, or resigned: the next start (or leader) completes it
	}
	go func() {
		defer c.wg.Done()
		c.finish(t, m)
	}()
}

// Drain makes every later request answer NOT_COORDINATOR and stops marker retries and the
// timers, so that the network server can stop. State is left as it was stored: transactions
// still preparing are completed by the next start.
func (c *Coordinator) Drain() {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closed.Swap(true) {
		return
	}
	close(c.stop)
}

// Close drains the coordinator and waits for its requests in progress and its background
// work. It waits for a topic creation in progress (Ensure), so that nothing is created in the
// data folder once it returns.
func (c *Coordinator) Close() {
	c.Drain()
	c.ensureMu.Lock() // waits for a running Ensure
	defer c.ensureMu.Unlock()
	c.wg.Wait()
}

// sleep waits d, returning false if the coordinator stops first, or the election of the
// partition the work is for ends (stop; nil without Config.PartitionOwnership).
func (c *Coordinator) sleep(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.stop:
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// lookup returns an id's txn, or nil.
func (c *Coordinator) lookup(id string) *txn {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.txns[id]
}

// lockTxn returns an id's txn with its lock held, or nil. A Dead txn has left the map by the
// time its lock is released, and an unloaded one (gone) when it is set, so either is looked up
// again. For nil, the caller checks statusFor: the id's partition may have stopped being
// served meanwhile.
func (c *Coordinator) lockTxn(id string) *txn {
	for {
		t := c.lookup(id)
		if t == nil {
			return nil
		}
		t.mu.Lock()
		if t.state != Dead && !t.gone.Load() {
			return t
		}
		t.mu.Unlock()
	}
}

// lockOrCreate returns an id's txn locked, creating it (Empty, epoch -1, with a fresh
// producer id) when it does not exist, as handleInitProducerId does.
func (c *Coordinator) lockOrCreate(id string, timeoutMs int32) (*txn, int16) {
	for {
		if t := c.lockTxn(id); t != nil {
			return t, 0
		}
		pid, err := c.host.NewProducerID()
		if err != nil {
			c.log.Warn("allocate producer id", "transactional_id", id, "err", err)
			return nil, errCoordinatorNotAvailable // retriable
		}
		c.mu.Lock()
		if c.txns[id] != nil {
			c.mu.Unlock()
			continue // created meanwhile; the id allocated is not used, as in Kafka
		}
		p := c.partitionForLocked(id)
		var coordEpoch int32
		var stop <-chan struct{}
		if c.cfg.PartitionOwnership {
			if code := c.servedLocked(p); code != 0 {
				c.mu.Unlock()
				return nil, code
			}
			st := c.elections.ElectionLocked(p)
			coordEpoch, stop = st.Epoch(), st.Done()
		}
		t := &txn{id: id, partition: p, coordEpoch: coordEpoch, stop: stop, meta: meta{
			producerID: pid, lastProducerID: noProducerID,
			producerEpoch: noProducerEpoch, lastProducerEpoch: noProducerEpoch,
			timeoutMs: timeoutMs, state: Empty, startMs: -1, updateMs: c.now(),
		}}
		c.txns[id] = t
		c.metrics.byState[Empty].Add(1)
		c.mu.Unlock()
		t.mu.Lock()
		if t.state != Dead && !t.gone.Load() {
			return t, 0
		}
		t.mu.Unlock()
	}
}

// install makes m the txn's state. Caller holds t.mu.
func (c *Coordinator) install(t *txn, m meta) {
	c.mu.Lock()
	if !t.gone.Load() { // an unloaded txn has left the gauges
		c.metrics.byState[t.state].Add(-1)
		c.metrics.byState[m.state].Add(1)
	}
	t.meta = m
	c.mu.Unlock()
}

// kill makes an expired txn Dead and takes it out of the map. Caller holds t.mu.
func (c *Coordinator) kill(t *txn) {
	c.mu.Lock()
	if !t.gone.Load() {
		c.metrics.byState[t.state].Add(-1)
	}
	t.state = Dead
	if c.txns[t.id] == t {
		delete(c.txns, t.id)
	}
	c.mu.Unlock()
}

// PartitionFor returns the partition of __transaction_state that holds a transactional id.
func (c *Coordinator) PartitionFor(transactionalID string) int32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.partitionForLocked(transactionalID)
}

func (c *Coordinator) partitionForLocked(id string) int32 {
	n := c.partitions
	if n <= 0 {
		n = c.cfg.StatePartitions
	}
	return partitionFor(id, n)
}

// partitionFor is Kafka's Utils.abs(transactionalId.hashCode) % partitions.
func partitionFor(id string, partitions int32) int32 {
	h := javaHashCode(id)
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
