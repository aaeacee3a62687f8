package replication

// Fetcher is the follower side of replication for one source broker (the leader of the
// partitions added to it), as Kafka's ReplicaFetcherThread with truncation on fetch:
//
//   - One connection; up to MaxInflight requests in flight on it (pipelined). Each partition is
//     in at most one in-flight request, so a request's fetch offset is exactly the local log
//     end offset when its response is appended; the partition is eligible for the next request
//     once that response is applied. A fetch carries every eligible partition; partitions that
//     received data move to the back of the order, so one whose first batch does not fit the
//     response's budget reaches the front (Kafka's PartitionStates.updateAndMoveToEnd).
//   - Leaders answer a connection's requests in order, and park a fetch that finds no data for
//     up to MaxWait. A parked fetch ahead of others would hold their answers back, so while a
//     fetch is in flight another is sent only if it carries a "hot" partition — one just added,
//     reset or truncated, or whose last response brought records — which the leader answers at
//     once; cold partitions ride along with it. Partitions whose responses all came back empty
//     wait for the in-flight fetches and are then sent together in one fetch that may park, so
//     idle partitions merge into one parked fetch instead of delaying busy ones by MaxWait.
//   - A partition starts in PhaseTruncating when the local epoch cache has an epoch: an
//     OffsetForLeaderEpoch request (v4, replica_id = LocalID) for the latest local epoch, and a
//     truncation to Kafka's getOffsetTruncationState answer; when the leader answers an epoch
//     the follower does not have, the follower truncates to the end of its own largest epoch
//     below it and asks again with its new latest epoch (Kafka's fallback to earlier entries).
//     Without an epoch the log is truncated to Replica.HighWatermark (Kafka's
//     truncateToHighWatermark) and the partition fetches at once.
//   - Fetch v12 (fetch_codec.go) with replica_id, current_leader_epoch, last_fetched_epoch = the
//     epoch cache's latest epoch, isolation 0 and no session. Records are appended with the
//     leader's offsets (AppendAsFollower); each new epoch seen in them is assigned in the epoch
//     cache first. A diverging_epoch (KIP-320) truncates the log as OffsetForLeaderEpoch would
//     and fetching goes on (the next fetch carries the new last fetched epoch).
//   - OFFSET_OUT_OF_RANGE: Kafka's fetchOffsetAndTruncate, with ListOffsets (v7, replica_id =
//     LocalID): the leader's log end offset (-1) first; below the local end, truncate to it;
//     else its log start offset (-2); above the local end, TruncateFullyAndStartAt it.
//   - FENCED_LEADER_EPOCH (this broker's metadata is older than the leader's) pauses the
//     partition until Add is called again with new metadata. UNKNOWN_LEADER_EPOCH,
//     NOT_LEADER_OR_FOLLOWER and UNKNOWN_TOPIC_OR_PARTITION (the leader's metadata is behind
//     this broker's) and every other error are retried after Backoff, as Kafka does.
//   - A lost connection is re-dialed after Backoff; partitions whose responses never came are
//     simply fetched again from their log end offsets.
//
// Goroutines: run (dials, builds and writes requests) and, per connection, a reader (reads,
// decodes and applies responses: appends and truncations happen there, off the fetcher's lock,
// under the partition's busy lock). Responses are matched to requests by correlation id.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// Request versions of the cold-path requests.
const (
	offsetForLeaderEpochVersion = 4
	listOffsetsVersion          = 7
)

// FetcherConfig configures a Fetcher. Zero values take the defaults in brackets (Kafka's
// replica.fetch.* settings).
type FetcherConfig struct {
	LocalID  int32  // this broker's id, sent as replica_id
	LeaderID int32  // the source broker's id (for logs)
	Addr     string // the source broker's inter-broker address, host:port
	ClientID string // [spate-replica-fetcher-<LocalID>]

	MaxWait           time.Duration // max_wait_ms [500ms] (replica.fetch.wait.max.ms)
	MinBytes          int32         // min_bytes [1] (replica.fetch.min.bytes)
	MaxBytes          int32         // max_bytes [10 MiB] (replica.fetch.response.max.bytes)
	PartitionMaxBytes int32         // partition_max_bytes [1 MiB] (replica.fetch.max.bytes)
	MaxInflight       int           // requests in flight on the connection [4]
	Backoff           time.Duration // after a partition error and before a re-dial [1s] (replica.fetch.backoff.ms)
	// RequestTimeout bounds a write, and the wait for a response beyond MaxWait [30s]
	// (replica.socket.timeout.ms); past it the connection is closed and re-dialed.
	RequestTimeout time.Duration
	// MaxResponseBytes bounds a response frame; a larger one closes the connection
	// [max(2×MaxBytes, 64 MiB)].
	MaxResponseBytes int
	Dial             func(ctx context.Context, network, addr string) (net.Conn, error) // [net.Dialer]
	Logger           *slog.Logger                                                      // [slog.Default()]
}

func (c *FetcherConfig) normalize() {
	if c.ClientID == "" {
		c.ClientID = fmt.Sprintf("spate-replica-fetcher-%d", c.LocalID)
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.MinBytes <= 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 10 << 20
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = 1 << 20
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 4
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = max(2*int(c.MaxBytes), 64<<20)
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		c.Dial = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Replica is a partition this broker follows, as handed to Fetcher.Add.
type Replica struct {
	Topic     string
	Partition int32
	Log       *logstore.Log
	Epochs    *EpochCache
	// LeaderEpoch is the partition's current leader epoch in this broker's metadata, sent as
	// current_leader_epoch.
	LeaderEpoch int32
	// HighWatermark is this replica's high watermark when added: the truncation point when
	// neither the epoch cache nor the leader can tell where the logs diverge (an empty epoch
	// cache, or an OffsetForLeaderEpoch answer of UNDEFINED), as Kafka's follower truncates to
	// its high watermark then. 0 is safe (everything is fetched again).
	HighWatermark int64
	// OnFetched, if set, is called after each successful response for the partition, with the
	// leader's high watermark and log start offset, from the fetcher's reader goroutine, off
	// every fetcher lock, in response order. The broker sets the follower's high watermark to
	// min(highWatermark, local log end offset) and raises the log start offset. It may run once
	// more concurrently with, or just after, a Remove or replacing Add of the partition: capture
	// the leader epoch it was created for and ignore calls for a partition no longer followed
	// with that epoch. It must not block for long (it delays the next response's processing).
	OnFetched func(highWatermark, logStartOffset int64)
}

// Phase is where a partition is in the follower's state machine.
type Phase uint8

const (
	PhaseTruncating   Phase = iota + 1 // asking the leader where the logs diverge (OffsetForLeaderEpoch)
	PhaseFetching                      // fetching
	PhaseListLatest                    // OFFSET_OUT_OF_RANGE: asking the leader's log end offset
	PhaseListEarliest                  // OFFSET_OUT_OF_RANGE: asking the leader's log start offset
	PhasePaused                        // fenced: waiting for Add with new metadata
)

func (p Phase) String() string {
	switch p {
	case PhaseTruncating:
		return "truncating"
	case PhaseFetching:
		return "fetching"
	case PhaseListLatest:
		return "list-latest"
	case PhaseListEarliest:
		return "list-earliest"
	case PhasePaused:
		return "paused"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// PartitionStatus is a snapshot of a followed partition.
type PartitionStatus struct {
	Phase         Phase
	LogEndOffset  int64
	LastErrorCode int16 // the last error answered for the partition; 0 after a success
	InFlight      bool
}

// ErrFetcherClosed is returned by Add after Close.
var ErrFetcherClosed = errors.New("replication: fetcher closed")

type reqKind uint8

const (
	kindFetch reqKind = iota + 1
	kindEpochs
	kindListLatest
	kindListEarliest
)

// slot is one in-flight request.
type slot struct {
	used  bool
	kind  reqKind
	corr  int32
	parts []*partState // the partitions it carries, each claimed (inflight) by it
}

// outcome is what applying a response decided for a partition; it is written by the reader
// while the partition is in flight and applied to the partition under Fetcher.mu on release.
type outcome struct {
	seen       bool  // the partition was in the response
	hot        int8  // +1: records came (or the fetch position was reset), -1: the fetch came back empty
	phase      Phase // 0: unchanged
	delay      bool  // back off before the next request for the partition
	errSet     bool
	errCode    int16
	moveToBack bool // records were appended: move to the back of the fetch order
}

type partState struct {
	r  Replica
	tp logstore.TopicPartition

	// Guarded by Fetcher.mu.
	phase      Phase
	inflight   bool
	corr       int32 // the request that carries it while inflight
	sentOffset int64 // the fetch offset sent while inflight
	delayUntil int64 // Fetcher.now() before which it is not requested
	lastErr    int16
	hot        bool       // a fetch for it is likely answered at once (see the file comment)
	prev, next *partState // the fetch order

	out outcome // owned by the reader while inflight

	removed atomic.Bool
	// busy is held while the fetcher writes the log or the epoch cache; Remove waits on it.
	busy sync.Mutex
}

type topicState struct {
	parts map[int32]*partState
}

// fetched is an OnFetched call to make after a response.
type fetched struct {
	fn      func(int64, int64)
	hw, lso int64
}

// Fetcher replicates the partitions added to it from one leader. Its methods are safe for
// concurrent use.
type Fetcher struct {
	cfg    FetcherConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time
	wake   chan struct{}
	wg     sync.WaitGroup

	mu         sync.Mutex
	byName     map[string]*topicState // guarded by mu
	head, tail *partState             // fetch order; guarded by mu
	slots      []slot                 // len MaxInflight; guarded by mu
	inflight   int                    // used slots; guarded by mu
	fetching   int                    // used slots carrying a fetch; guarded by mu
	nextCorr   int32                  // guarded by mu
	conn       net.Conn               // the live connection; guarded by mu
	closed     bool                   // guarded by mu
	wbuf       []byte                 // the request being written; guarded by mu until written by run
	reqParts   []fetchPartition       // guarded by mu
	params     fetchParams            // guarded by mu
	formatter  *kmsg.RequestFormatter // guarded by mu
	timer      *time.Timer            // run only

	// Reader goroutine only (one connection at a time).
	hdr      [4]byte
	rbuf     []byte
	resp     fetchResponse
	resolved []*partState
	info     logstore.AppendInfo
	cbs      []fetched
}

// NewFetcher starts a fetcher; it dials the leader at once and keeps a connection until Close.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	cfg.normalize()
	f := &Fetcher{
		cfg:       cfg,
		log:       cfg.Logger.With("leader", cfg.LeaderID, "addr", cfg.Addr),
		start:     time.Now(),
		wake:      make(chan struct{}, 1),
		byName:    map[string]*topicState{},
		slots:     make([]slot, cfg.MaxInflight),
		formatter: kmsg.NewRequestFormatter(kmsg.FormatterClientID(cfg.ClientID)),
		timer:     time.NewTimer(time.Hour),
	}
	f.timer.Stop()
	f.params = fetchParams{
		clientID:  cfg.ClientID,
		replicaID: cfg.LocalID,
		maxWaitMs: int32(cfg.MaxWait / time.Millisecond),
		minBytes:  cfg.MinBytes,
		maxBytes:  cfg.MaxBytes,
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(1)
	go f.run()
	return f
}

func (f *Fetcher) now() int64 { return int64(time.Since(f.start)) }

func (f *Fetcher) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Add starts following a partition, or restarts it with new metadata (a new leader epoch)
// when it is already followed. It first truncates locally when the epoch cache is empty (see
// Replica.HighWatermark), which is the only I/O it does.
func (f *Fetcher) Add(p *Replica) error {
	if p == nil || p.Log == nil || p.Epochs == nil {
		return errors.New("replication: Add needs a replica with a log and an epoch cache")
	}
	tp := logstore.TopicPartition{Topic: p.Topic, Partition: p.Partition}
	for {
		f.removePart(tp)
		ps := &partState{r: *p, tp: tp, phase: PhaseTruncating, hot: true}
		if _, ok := p.Epochs.Latest(); !ok {
			leo := p.Log.LogEndOffset()
			if err := truncateLog(ps, min(max(p.HighWatermark, 0), leo)); err != nil {
				return fmt.Errorf("truncate %s to its high watermark: %w", tp, err)
			}
			ps.phase = PhaseFetching
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return ErrFetcherClosed
		}
		if f.lookupLocked(tp) != nil {
			f.mu.Unlock()
			continue // a concurrent Add won: replace it
		}
		f.linkLocked(ps)
		f.mu.Unlock()
		f.signal()
		return nil
	}
}

// Remove stops following a partition. When it returns, the fetcher no longer writes its log
// or epoch cache (see Replica.OnFetched for the one call that may still be running).
func (f *Fetcher) Remove(tp logstore.TopicPartition) { f.removePart(tp) }

func (f *Fetcher) removePart(tp logstore.TopicPartition) {
	f.mu.Lock()
	ps := f.lookupLocked(tp)
	if ps != nil {
		f.unlinkLocked(ps)
		ps.removed.Store(true)
	}
	f.mu.Unlock()
	if ps != nil {
		// Wait for an append or truncation in progress; later ones see removed and stop.
		ps.busy.Lock()
		//lint:ignore SA2001 the critical section is the wait
		ps.busy.Unlock()
	}
}

// Status returns a followed partition's state.
func (f *Fetcher) Status(tp logstore.TopicPartition) (PartitionStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.lookupLocked(tp)
	if ps == nil {
		return PartitionStatus{}, false
	}
	return PartitionStatus{Phase: ps.phase, LogEndOffset: ps.r.Log.LogEndOffset(), LastErrorCode: ps.lastErr, InFlight: ps.inflight}, true
}

// Partitions returns the number of partitions followed.
func (f *Fetcher) Partitions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.byName {
		n += len(t.parts)
	}
	return n
}

// Close stops the fetcher and waits for its goroutines; the partitions' logs are not touched
// after it returns.
func (f *Fetcher) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conn := f.conn
	f.mu.Unlock()
	f.cancel()
	if conn != nil {
		conn.Close()
	}
	f.wg.Wait()
	return nil
}

func (f *Fetcher) lookupLocked(tp logstore.TopicPartition) *partState {
	if t := f.byName[tp.Topic]; t != nil {
		return t.parts[tp.Partition]
	}
	return nil
}

func (f *Fetcher) linkLocked(ps *partState) {
	t := f.byName[ps.tp.Topic]
	if t == nil {
		t = &topicState{parts: map[int32]*partState{}}
		f.byName[ps.tp.Topic] = t
	}
	t.parts[ps.tp.Partition] = ps
	ps.prev, ps.next = f.tail, nil
	if f.tail != nil {
		f.tail.next = ps
	} else {
		f.head = ps
	}
	f.tail = ps
}

func (f *Fetcher) unlinkLocked(ps *partState) {
	if t := f.byName[ps.tp.Topic]; t != nil {
		delete(t.parts, ps.tp.Partition)
		if len(t.parts) == 0 {
			delete(f.byName, ps.tp.Topic)
		}
	}
	if ps.prev != nil {
		ps.prev.next = ps.next
	} else {
		f.head = ps.next
	}
	if ps.next != nil {
		ps.next.prev = ps.prev
	} else {
		f.tail = ps.prev
	}
	ps.prev, ps.next = nil, nil
}

func (f *Fetcher) moveToBackLocked(ps *partState) {
	if f.tail == ps {
		return
	}
	f.unlinkList(ps)
	ps.prev, ps.next = f.tail, nil
	if f.tail != nil {
		f.tail.next = ps
	} else {
		f.head = ps
	}
	f.tail = ps
}

func (f *Fetcher) unlinkList(ps *partState) {
	if ps.prev != nil {
		ps.prev.next = ps.next
	} else {
		f.head = ps.next
	}
	if ps.next != nil {
		ps.next.prev = ps.prev
	} else {
		f.tail = ps.prev
	}
}
