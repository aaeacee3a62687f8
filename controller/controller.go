package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Controller is one node's member of the metadata quorum: a Raft voter (controller) or
// non-voter (broker only), with the FSM that keeps its Image. Leader-side operations
// (brokers.go, topics.go, partitions.go) work only on the leader and return a
// *NotLeaderError elsewhere.
//
// Lock order: opMu → mu → fsm.subMu. Nothing holding mu or subMu waits for Raft.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	fsm   *fsm
	raft  *raft.Raft
	store *boltStore
	trans *guardedTransport

	// opMu serializes leader-side writes. Invariant: an operation reads the Image, decides,
	// proposes and waits for the apply all under opMu, so the next operation's Image holds
	// every record proposed before it — validation never races another write.
	opMu sync.Mutex

	mu sync.Mutex
	// session is the leadership term this node is serving; nil unless this node is the
	// leader and has applied every entry of earlier terms (Barrier). Guarded by mu.
	session *leaderSession
	closed  bool // guarded by mu

	stop chan struct{}
	wg   sync.WaitGroup
}

// leaderSession is the leader's state for one term. Only hb lives outside the log.
type leaderSession struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// hb is the last heartbeat of each broker. On taking over, every registered broker
	// counts as just heard from (a grace period, as Kafka does). Guarded by Controller.mu.
	hb map[int32]time.Time
}

// Server is a member of the Raft configuration.
type Server struct {
	ID    int32
	Addr  string
	Voter bool
}

const (
	barrierTimeout = 30 * time.Second
	proposeTimeout = 10 * time.Second
)

// New opens (or creates) the Raft state in cfg.Dir, starts the Raft transport on
// cfg.RaftAddr, bootstraps the cluster when this node is the first bootstrap voter and has
// no state, and starts following the log.
func New(config Config) (*Controller, error) {
	cfg, err := config.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), stop: make(chan struct{})}
	c.fsm = newFSM(c.log)
	ok := false
	defer func() {
		if !ok {
			c.closeStores()
		}
	}()
	if c.store, err = openBoltStore(filepath.Join(cfg.Dir, "raft.db")); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	hl := newHCLogger(c.log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		return nil, fmt.Errorf("controller: snapshot store: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.AdvertisedRaftAddr)
	if err != nil {
		return nil, fmt.Errorf("controller: advertised raft address: %w", err)
	}
	nt, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, adv, 3, 10*time.Second, hl)
	if err != nil {
		return nil, fmt.Errorf("controller: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	c.trans = &guardedTransport{NetworkTransport: nt}
	rc := c.raftConfig(hl)
	if err := c.maybeBootstrap(rc, snaps); err != nil {
		return nil, err
	}
	if c.raft, err = raft.NewRaft(rc, c.fsm, c.store, c.store, snaps, c.trans); err != nil {
		return nil, fmt.Errorf("controller: start raft: %w", err)
	}
	ok = true
	c.wg.Add(1)
	go c.watchLeadership()
	return c, nil
}

func (c *Controller) raftConfig(hl hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(c.cfg.NodeID)))
	rc.Logger = hl
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&rc.HeartbeatTimeout, c.cfg.RaftHeartbeatTimeout)
	set(&rc.ElectionTimeout, c.cfg.RaftElectionTimeout)
	set(&rc.LeaderLeaseTimeout, c.cfg.RaftLeaderLeaseTimeout)
	set(&rc.CommitTimeout, c.cfg.RaftCommitTimeout)
	set(&rc.SnapshotInterval, c.cfg.SnapshotInterval)
	if c.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	}
	if c.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = c.cfg.TrailingLogs
	}
	return rc
}

// maybeBootstrap writes the initial configuration when this node is the first bootstrap
// voter and has no Raft state at all.
func (c *Controller) maybeBootstrap(rc *raft.Config, snaps raft.SnapshotStore) error {
	voters := c.cfg.BootstrapVoters
	if len(voters) == 0 || voters[0].ID != c.cfg.NodeID {
		return nil
	}
	has, err := raft.HasExistingState(c.store, c.store, snaps)
	if err != nil {
		return fmt.Errorf("controller: read raft state: %w", err)
	}
	if has {
		return nil
	}
	var conf raft.Configuration
	for _, v := range voters {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(v.ID), Address: raft.ServerAddress(v.Addr)})
	}
	c.log.Info("bootstrapping metadata quorum", "voters", len(voters))
	if err := raft.BootstrapCluster(rc, c.store, c.store, snaps, c.trans, conf); err != nil {
		return fmt.Errorf("controller: bootstrap: %w", err)
	}
	return nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

func parseServerID(id raft.ServerID) int32 {
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(n)
}

// Close stops Raft and the leader's timers and closes the stores. The Image stays readable.
func (c *Controller) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	// A leader hands leadership over first, so that the others apply what it committed last
	// (a controlled shutdown's records) at once instead of after an election timeout.
	if c.raft.State() == raft.Leader {
		_ = c.raft.LeadershipTransfer().Error()
	}
	close(c.stop)
	err := c.raft.Shutdown().Error()
	c.wg.Wait()
	if cerr := c.closeStores(); err == nil {
		err = cerr
	}
	return err
}

func (c *Controller) closeStores() error {
	var errs []error
	if c.trans != nil {
		errs = append(errs, c.trans.Close())
		c.trans.fence() // no heartbeat may touch the stores after this
	}
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	return errors.Join(errs...)
}

// NodeID is this node's id.
func (c *Controller) NodeID() int32 { return c.cfg.NodeID }

// Image returns the latest applied metadata. It never blocks.
func (c *Controller) Image() *Image { return c.fsm.image.Load() }

// Subscribe returns a channel that receives a value after each apply (including a snapshot
// restore); notifications coalesce, so a reader must load Image() rather than count them.
// The channel is never closed; cancel stops the notifications.
func (c *Controller) Subscribe() (<-chan struct{}, func()) { return c.fsm.subscribe() }

// WaitForImage waits until pred holds for the latest Image and returns that Image; on ctx's
// end it returns the latest Image with ctx's error.
func (c *Controller) WaitForImage(ctx context.Context, pred func(*Image) bool) (*Image, error) {
	ch, cancel := c.Subscribe()
	defer cancel()
	for {
		img := c.Image()
		if pred(img) {
			return img, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c.Image(), ctx.Err()
		}
	}
}

// Err reports a metadata entry this node could not apply (a record from a newer version, or
// corruption): the node's Image stopped at the entry before it. Nil normally.
func (c *Controller) Err() error { return c.fsm.err() }

// Leader returns the current Raft leader's id and address as this node knows it, or -1 and
// "" when none is known.
func (c *Controller) Leader() (int32, string) {
	addr, id := c.raft.LeaderWithID()
	if id == "" {
		return -1, ""
	}
	return parseServerID(id), string(addr)
}

// Term returns the current Raft term as this node knows it (Kafka's quorum epoch; 0 before
// any election).
func (c *Controller) Term() uint64 {
	t, _ := strconv.ParseUint(c.raft.Stats()["term"], 10, 64)
	return t
}

// IsLeader reports whether this node is the leader and ready for leader-side operations.
func (c *Controller) IsLeader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session != nil && c.raft.State() == raft.Leader
}

// Snapshot makes Raft snapshot the Image now and compact its log (operators and tests;
// Raft also snapshots on its own, see Config.SnapshotThreshold).
func (c *Controller) Snapshot() error {
	if err := c.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("controller: snapshot: %w", err)
	}
	return nil
}

// TransferLeadership hands Raft leadership to another voter and returns once it moved (or
// failed). Leader only.
func (c *Controller) TransferLeadership() error {
	if err := c.raft.LeadershipTransfer().Error(); err != nil {
		return c.raftErr(err)
	}
	return nil
}

// AddVoter adds (or promotes) a controller to the quorum. Leader only.
func (c *Controller) AddVoter(ctx context.Context, id int32, addr string) error {
	return c.membership(c.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)))
}

// AddNonvoter adds a broker-only node that follows the log without voting. Leader only.
func (c *Controller) AddNonvoter(ctx context.Context, id int32, addr string) error {
	return c.membership(c.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)))
}

// RemoveServer removes a voter or non-voter from the quorum. Leader only.
func (c *Controller) RemoveServer(ctx context.Context, id int32) error {
	return c.membership(c.raft.RemoveServer(serverID(id), 0, timeoutOf(ctx)))
}

func (c *Controller) membership(f raft.IndexFuture) error {
	if err := f.Error(); err != nil {
		return c.raftErr(err)
	}
	return nil
}

// Servers returns the Raft configuration as this node knows it.
func (c *Controller) Servers() ([]Server, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, c.raftErr(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: parseServerID(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return proposeTimeout
}

// raftErr maps Raft's errors to the controller's.
func (c *Controller) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return c.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	default:
		return fmt.Errorf("controller: raft: %w", err)
	}
}

func (c *Controller) notLeader() error {
	id, addr := c.Leader()
	if id == c.cfg.NodeID { // Raft says us, but we are not serving yet (or any more)
		id, addr = -1, ""
	}
	return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

// lead returns the current leader session. Callers hold opMu.
func (c *Controller) lead() (*leaderSession, error) {
	c.mu.Lock()
	s, closed := c.session, c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if err := c.fsm.err(); err != nil {
		return nil, err
	}
	if s == nil || c.raft.State() != raft.Leader {
		return nil, c.notLeader()
	}
	return s, nil
}

// propose writes recs as one Raft entry and waits until this node applied it. ctx's deadline
// bounds the wait to enqueue; once enqueued the entry either commits and applies or Raft
// reports lost leadership (then the outcome is unknown, as with any timed-out request).
// Callers hold opMu.
func (c *Controller) propose(ctx context.Context, recs ...Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f := c.raft.Apply(AppendEntry(nil, recs...), timeoutOf(ctx))
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return 0, context.DeadlineExceeded
		}
		return 0, c.raftErr(err)
	}
	if err, _ := f.Response().(error); err != nil {
		return 0, fmt.Errorf("controller: entry %d not applied: %w", f.Index(), err)
	}
	return f.Index(), nil
}

// watchLeadership starts a leader session when Raft makes this node leader and ends it
// when leadership goes.
func (c *Controller) watchLeadership() {
	defer c.wg.Done()
	ch := c.raft.LeaderCh()
	for {
		select {
		case <-c.stop:
			c.endSession()
			return
		case leader := <-ch:
			c.endSession()
			if leader {
				c.startSession()
			}
		}
	}
}

func (c *Controller) startSession() {
	// Apply every entry of earlier terms first, so the Image the session validates against
	// holds all committed metadata.
	if err := c.raft.Barrier(barrierTimeout).Error(); err != nil {
		c.log.Warn("leader barrier failed", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &leaderSession{ctx: ctx, cancel: cancel, hb: map[int32]time.Time{}}
	now := time.Now()
	for _, b := range c.Image().Brokers() {
		s.hb[b.ID] = now
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return
	}
	c.session = s
	c.mu.Unlock()
	c.log.Info("metadata leader ready", "applied", c.Image().AppliedIndex())
	s.wg.Add(1)
	go c.every(s, max(c.cfg.SessionTimeout/4, time.Millisecond), c.fenceStaleBrokers)
	if c.cfg.LeaderImbalanceCheckInterval > 0 {
		s.wg.Add(1)
		go c.every(s, c.cfg.LeaderImbalanceCheckInterval, c.balanceLeaders)
	}
}

func (c *Controller) endSession() {
	c.mu.Lock()
	s := c.session
	c.session = nil
	c.mu.Unlock()
	if s != nil {
		s.cancel()
		s.wg.Wait()
		c.log.Info("metadata leader session ended")
	}
}

// every runs fn each interval until the session ends.
func (c *Controller) every(s *leaderSession, interval time.Duration, fn func(*leaderSession)) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			fn(s)
		}
	}
}

// current reports whether s is still the serving session. Callers hold opMu.
func (c *Controller) current(s *leaderSession) bool {
	cur, err := c.lead()
	return err == nil && cur == s
}
