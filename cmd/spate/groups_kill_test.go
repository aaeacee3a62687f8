package main

// Consumer groups across broker deaths: franz-go group members commit offsets while the broker
// process is killed with SIGKILL and restarted on the same data folder and port. The franz-go
// group helpers here (fgLedger, fgMember) serve groups_soak_test.go too.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fgRec names a record.
type fgRec struct {
	p int32
	o int64
}

// fgSession is one member's uninterrupted ownership of a partition (between the callbacks
// that assign it and revoke or lose it).
type fgSession struct {
	who string
	p   int32
	n   int64
}

type fgDelivery struct {
	who   string
	n     int64 // session number
	value string
}

// fgLedger is what a group's members received and which commits the broker acknowledged.
// A delivery is committed when its member had a commit acknowledged, in the same session of
// the partition, for an offset past it. Since members commit only what they polled, a record
// may be delivered again only when an earlier delivery was not committed ("uncommitted
// work"): no record may have two committed deliveries.
type fgLedger struct {
	topic string
	mu    sync.Mutex
	got   map[fgRec][]fgDelivery
	acked map[fgSession]int64 // highest acknowledged commit of a session
	last  map[int32]int64     // per partition, the last acknowledged commit (in ack order)
	sent  map[int32]int64     // per partition, the highest offset sent in a commit
	fails int                 // commits that failed (whole or per partition)
}

func newFgLedger(topic string) *fgLedger {
	return &fgLedger{topic: topic, got: map[fgRec][]fgDelivery{}, acked: map[fgSession]int64{}, last: map[int32]int64{}, sent: map[int32]int64{}}
}

// lastAcked returns the last acknowledged commit of every partition.
func (l *fgLedger) lastAcked() map[int32]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range l.last {
		out[p] = o
	}
	return out
}

// fgDialer dials TCP for one client and can sever it: close every connection it made and fail
// every later dial, so that the client goes silent as if its process had died.
type fgDialer struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (d *fgDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	dead := d.dead
	d.mu.Unlock()
	if dead {
		return nil, errors.New("severed")
	}
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		c.Close()
		return nil, errors.New("severed")
	}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *fgDialer) sever() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// fgGate lets the test hold every commit back: pause waits until no commit is in flight and
// keeps new ones from starting until resume.
type fgGate struct {
	mu       sync.Mutex
	cond     *sync.Cond
	paused   bool
	inflight int
	waiting  int // members held at the gate
}

func newFgGate() *fgGate {
	g := &fgGate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *fgGate) enter() {
	g.mu.Lock()
	for g.paused {
		g.waiting++
		g.cond.Broadcast()
		g.cond.Wait()
		g.waiting--
	}
	g.inflight++
	g.mu.Unlock()
}

func (g *fgGate) leave() {
	g.mu.Lock()
	g.inflight--
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *fgGate) pause() {
	g.mu.Lock()
	g.paused = true
	for g.inflight > 0 {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// held returns how many members are held at the gate.
func (g *fgGate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *fgGate) resume() {
	g.mu.Lock()
	g.paused = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// fgMember is a franz-go group member: it polls (BlockRebalanceOnPoll, so no rebalance comes
// between a poll and its commit), notes each record in the ledger, commits the offsets after
// them synchronously, and only then allows a rebalance.
type fgMember struct {
	name   string
	cl     *kgo.Client
	l      *fgLedger
	cancel context.CancelFunc
	done   chan struct{}
	dialer *fgDialer

	mu       sync.Mutex
	owned    map[int32]bool
	sessions map[int32]int64
	first    map[int32]int64 // first offset received of each partition
}

type fgMemberOpts struct {
	gate      *fgGate       // nil: commits are never held
	dialer    *fgDialer     // nil: net.Dialer
	session   time.Duration // session timeout (default 10 s)
	heartbeat time.Duration // heartbeat interval (default 200 ms)
	balancer  kgo.GroupBalancer
	logf      func(string, ...any)
	// instanceID makes a static member (KIP-345): it does not leave the group when closed.
	instanceID string
	// process, when set, runs between a poll and its commit (the member's work).
	process func()
}

func startFgMember(t testing.TB, addr, group, name string, l *fgLedger, o fgMemberOpts) *fgMember {
	t.Helper()
	if o.session == 0 {
		o.session = 10 * time.Second
	}
	if o.heartbeat == 0 {
		o.heartbeat = 200 * time.Millisecond
	}
	if o.balancer == nil {
		o.balancer = kgo.CooperativeStickyBalancer()
	}
	if o.logf == nil {
		o.logf = t.Logf
	}
	m := &fgMember{name: name, l: l, done: make(chan struct{}), dialer: o.dialer,
		owned: map[int32]bool{}, sessions: map[int32]int64{}, first: map[int32]int64{}}
	bump := func(ps map[string][]int32, own bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range ps[l.topic] {
			m.sessions[p]++
			if own {
				m.owned[p] = true
			} else {
				delete(m.owned, p)
			}
		}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ClientID(name), kgo.ConsumerGroup(group), kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(o.balancer), kgo.SessionTimeout(o.session), kgo.HeartbeatInterval(o.heartbeat),
		kgo.RebalanceTimeout(20 * time.Second), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { bump(a, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { bump(r, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { bump(r, false) }),
	}
	if o.dialer != nil {
		opts = append(opts, kgo.Dialer(o.dialer.dial))
	}
	if o.instanceID != "" {
		opts = append(opts, kgo.InstanceID(o.instanceID))
	}
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + " " + time.Now().Format("15:04:05.000") + " " })))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				cl.AllowRebalance()
				return
			}
			offsets := map[int32]kgo.EpochOffset{}
			m.mu.Lock()
			l.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				k := fgRec{r.Partition, r.Offset}
				l.got[k] = append(l.got[k], fgDelivery{who: name, n: m.sessions[r.Partition], value: string(r.Value)})
				offsets[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
				if _, ok := m.first[r.Partition]; !ok {
					m.first[r.Partition] = r.Offset
				}
			})
			l.mu.Unlock()
			sessions := map[int32]int64{}
			for p := range offsets {
				sessions[p] = m.sessions[p]
			}
			m.mu.Unlock()
			if len(offsets) > 0 && o.process != nil {
				o.process()
			}
			if len(offsets) > 0 {
				if o.gate != nil {
					o.gate.enter()
				}
				// Not ctx: a member stopping finishes its commit (but a severed one fails it).
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				m.commit(cctx, offsets, sessions, o.logf)
				ccancel()
				if o.gate != nil {
					o.gate.leave()
				}
			}
			cl.AllowRebalance()
		}
	}()
	return m
}

// commit commits offsets synchronously and notes what the broker acknowledged.
func (m *fgMember) commit(ctx context.Context, offsets map[int32]kgo.EpochOffset, sessions map[int32]int64, logf func(string, ...any)) {
	l := m.l
	l.mu.Lock()
	for p, eo := range offsets {
		l.sent[p] = max(l.sent[p], eo.Offset)
	}
	l.mu.Unlock()
	m.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{l.topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if err != nil {
				l.fails++
				logf("%s: commit %v: %v", m.name, offsets, err)
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					eo, ok := offsets[rp.Partition]
					if !ok || rt.Topic != l.topic {
						continue
					}
					if rp.ErrorCode != 0 {
						l.fails++
						logf("%s: commit of %d@%d: error %d", m.name, rp.Partition, eo.Offset, rp.ErrorCode)
						continue
					}
					s := fgSession{m.name, rp.Partition, sessions[rp.Partition]}
					l.acked[s] = max(l.acked[s], eo.Offset)
					l.last[rp.Partition] = eo.Offset
				}
			}
		})
}

// stop ends the poll loop after its commit and closes the client, which leaves the group.
func (m *fgMember) stop() {
	if m.cl == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cl.Close()
	m.cl = nil
}

func (m *fgMember) ownedPartitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int32, 0, len(m.owned))
	for p := range m.owned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *fgMember) firstOffsets() map[int32]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range m.first {
		out[p] = o
	}
	return out
}

// fgProducer produces records round-robin over partitions (record i to partition i%n, value
// "v<i>"), one every interval until stopped, with an idempotent acks=all producer that retries
// through broker deaths, and notes the offset of every acknowledged record.
type fgProducer struct {
	cl       *kgo.Client
	quitOnce sync.Once
	quit     chan struct{}
	closed   sync.Once
	done     chan struct{}
	next     atomic.Int64 // records handed to the client

	mu    sync.Mutex
	acked map[fgRec]string
	errs  []error
}

func startFgProducer(t testing.TB, addr, topic string, partitions int32, every time.Duration) *fgProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("groups-producer"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1<<30),
		kgo.ProducerLinger(time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.RequestTimeoutOverhead(2*time.Second), kgo.MaxBufferedRecords(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	pr := &fgProducer{cl: cl, quit: make(chan struct{}), done: make(chan struct{}), acked: map[fgRec]string{}}
	go func() {
		defer close(pr.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-pr.quit:
				return
			case <-tick.C:
			}
			wg.Add(1)
			pr.next.Add(1)
			v := fmt.Sprintf("v%d", i)
			cl.Produce(context.Background(), &kgo.Record{Partition: int32(i) % partitions, Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				pr.mu.Lock()
				defer pr.mu.Unlock()
				if err != nil {
					pr.errs = append(pr.errs, err)
					return
				}
				pr.acked[fgRec{r.Partition, r.Offset}] = v
			})
		}
	}()
	return pr
}

// stop stops producing, waits until every record handed to the client is acknowledged (or
// failed: after a minute the client is closed, which fails what is left), and closes the
// client. It returns the records handed to the client.
func (pr *fgProducer) stop() int {
	pr.quitOnce.Do(func() { close(pr.quit) })
	select {
	case <-pr.done:
	case <-time.After(time.Minute):
	}
	pr.closed.Do(pr.cl.Close)
	<-pr.done
	return int(pr.next.Load())
}

func (pr *fgProducer) ackedRecords() map[fgRec]string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make(map[fgRec]string, len(pr.acked))
	for k, v := range pr.acked {
		out[k] = v
	}
	return out
}

// fgCheck checks the ledger against the acknowledged records: every one delivered with its
// value (no loss), nothing delivered that was not produced, and no record with two committed
// deliveries (duplicates only from uncommitted work). It returns the redeliveries.
func fgCheck(t testing.TB, l *fgLedger, acked map[fgRec]string) (redelivered int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for k, v := range acked {
		if len(l.got[k]) == 0 {
			fail("acknowledged record %d@%d (%s) was never delivered", k.p, k.o, v)
		}
	}
	for k, ds := range l.got {
		want, ok := acked[k]
		committed := 0
		var hist []string
		for _, d := range ds {
			if ok && d.value != want {
				fail("record %d@%d delivered to %s as %q, acknowledged as %q", k.p, k.o, d.who, d.value, want)
			}
			c := l.acked[fgSession{d.who, k.p, d.n}] > k.o
			if c {
				committed++
			}
			hist = append(hist, fmt.Sprintf("%s/session %d committed=%v", d.who, d.n, c))
		}
		if !ok && !strings.HasPrefix(ds[0].value, "v") {
			fail("record %d@%d (%q) was never produced", k.p, k.o, ds[0].value)
		}
		if committed > 1 {
			fail("record %d@%d processed and committed %d times: %v", k.p, k.o, committed, hist)
		}
		redelivered += len(ds) - 1
	}
	if bad > 20 {
		t.Errorf("… %d problems in all", bad)
	}
	return redelivered
}

// fgCommitted returns the group's committed offsets of topic.
func fgCommitted(t testing.TB, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	var offs kadm.OffsetResponses
	var err error
	for try := 0; try < 100; try++ { // the coordinator may still be loading
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		offs, err = adm.FetchOffsets(ctx, group)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("OffsetFetch %s: %v", group, err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// fgEnds returns the high watermarks of topic.
func fgEnds(t testing.TB, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// fgConverged reports why the group has not converged, or "": the broker says Stable with
// exactly the live members, every partition assigned to exactly one of them; each member owns
// what the broker assigned it; all members are in the same generation.
func fgConverged(adm *kadm.Client, group, topic string, partitions int32, members []*fgMember) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dgs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return err.Error()
	}
	dg := dgs[group]
	if dg.Err != nil {
		return dg.Err.Error()
	}
	live := map[string]*fgMember{}
	for _, m := range members {
		live[m.name] = m
	}
	if dg.State != "Stable" || len(dg.Members) != len(live) {
		return fmt.Sprintf("state %s with %d members", dg.State, len(dg.Members))
	}
	owner := map[int32]string{}
	for _, dm := range dg.Members {
		m := live[dm.ClientID]
		if m == nil {
			return fmt.Sprintf("member %s (client %s) is not a live member", dm.MemberID, dm.ClientID)
		}
		a, ok := dm.Assigned.AsConsumer()
		if !ok {
			return fmt.Sprintf("member %s: no consumer assignment", dm.ClientID)
		}
		var ps []int32
		for _, at := range a.Topics {
			for _, p := range at.Partitions {
				if at.Topic != topic {
					return fmt.Sprintf("member %s assigned %s", dm.ClientID, at.Topic)
				}
				if o, dup := owner[p]; dup {
					return fmt.Sprintf("partition %d assigned to %s and %s", p, o, dm.ClientID)
				}
				owner[p] = dm.ClientID
				ps = append(ps, p)
			}
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		if got := m.ownedPartitions(); fmt.Sprint(got) != fmt.Sprint(ps) {
			return fmt.Sprintf("%s owns %v, assigned %v", dm.ClientID, got, ps)
		}
	}
	if len(owner) != int(partitions) {
		return fmt.Sprintf("%d of %d partitions assigned", len(owner), partitions)
	}
	gens := map[int32][]string{}
	for name, m := range live {
		_, g := m.cl.GroupMetadata()
		gens[g] = append(gens[g], name)
	}
	if len(gens) != 1 {
		return fmt.Sprintf("members in different generations: %v", gens)
	}
	return ""
}

// fgWait polls cond every 50 ms until it returns "" or timeout passes.
func fgWait(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startGroupsProcess runs the broker binary with group timers for tests and waits until it
// accepts connections.
func startGroupsProcess(t *testing.T, bin, dataDir, addr string) *exec.Cmd {
	t.Helper()
	level := "warn"
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		level = "info" // the coordinator's rebalances and their reasons
	}
	cmd := exec.Command(bin, "-data-dir", dataDir, "-listen", addr, "-admin", "", "-log-level", level,
		"-group-initial-rebalance-delay", "100ms", "-offsets-topic-partitions", "10")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitListening(t, addr)
	return cmd
}

func fgAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("groups-admin"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// TestKill9KeepsCommittedOffsets: three franz-go members of a group consume six partitions
// while an idempotent producer writes a record every 2 ms, and each member commits what it polled
// (synchronously, before allowing a rebalance). The broker process is killed with SIGKILL
// and restarted on the same folder and port four times:
//
//  1. with commits held (none in flight): OffsetFetch after the restart equals the last
//     acknowledged commit of every partition, and the group has its three members (loaded
//     from __consumer_offsets); the members carry on and the group converges;
//  2. in the middle of commits: OffsetFetch after the restart is at least the last commit
//     acknowledged before the kill, and at most the highest offset ever sent;
//  3. during a rebalance (commits held, so no member can rejoin, while a fourth member joins):
//     OffsetFetch equals the last acknowledged commits, and the four members converge
//     (Stable, every partition owned by exactly one, as each member sees it);
//  4. after the members left: OffsetFetch is unchanged, and new members start every partition
//     exactly at its committed offset.
//
// In the end every acknowledged record was delivered with its value, the committed offsets
// are the log end offsets, and no record was committed twice (a redelivery is only ever of
// work whose commit was not acknowledged).
func TestKill9KeepsCommittedOffsets(t *testing.T) {
	start := time.Now()
	bin := spateBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := startGroupsProcess(t, bin, dir, addr)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	kill := func() {
		t.Helper()
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cmd = startGroupsProcess(t, bin, dir, addr)
	}

	const topic, group, parts = "kill9-groups", "kill9-members", int32(6)
	adm := fgAdmin(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cancel()
	l := newFgLedger(topic)
	gate := newFgGate()
	var members []*fgMember
	var names []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("kill9-a%d", i)
		names = append(names, name)
		members = append(members, startFgMember(t, addr, group, name, l, fgMemberOpts{gate: gate}))
	}
	defer func() {
		for _, m := range members {
			m.stop()
		}
	}()
	defer gate.resume() // first: a member held at the gate cannot stop
	pr := startFgProducer(t, addr, topic, parts, 2*time.Millisecond)
	defer pr.stop()

	everyPartitionCommitted := func(above int64) func() string {
		return func() string {
			last := l.lastAcked()
			for p := int32(0); p < parts; p++ {
				if last[p] <= above {
					return fmt.Sprintf("partition %d: last acknowledged commit %d, want > %d (commits %v)", p, last[p], above, last)
				}
			}
			return ""
		}
	}
	fgWait(t, 60*time.Second, "first commits", everyPartitionCommitted(50))

	// 1. Commits held: nothing in flight when the broker dies.
	gate.pause()
	want := l.lastAcked()
	kill()
	got := fgCommitted(t, adm, group, topic)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after kill -9 with no commit in flight: OffsetFetch %v, last acknowledged commits %v", got, want)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	dgs, err := adm.DescribeGroups(ctx, group)
	cancel()
	var clients []string
	for _, dm := range dgs[group].Members {
		clients = append(clients, dm.ClientID)
	}
	sort.Strings(clients)
	// The group was loaded with its members. Whether it is still Stable depends on the
	// client: franz-go ends its session when a heartbeat cannot reach the broker, and its
	// rejoin (with no partitions owned: new metadata) is a rebalance, as in Kafka.
	if st := dgs[group].State; err != nil || st == "Empty" || st == "Dead" || fmt.Sprint(clients) != fmt.Sprint(names) {
		t.Fatalf("group after the restart: state %s, members %v, %v (want members %v)", st, clients, err, names)
	}
	gate.resume()
	fgWait(t, 60*time.Second, "convergence after the first restart", func() string {
		return fgConverged(adm, group, topic, parts, members)
	})
	t.Logf("kill 1 (no commit in flight): OffsetFetch equals the last acknowledged commits %v; group loaded in state %s with its members", want, dgs[group].State)

	// 2. Kill in the middle of commits.
	fgWait(t, 60*time.Second, "commits after the first restart", everyPartitionCommitted(want[0]+100))
	before := l.lastAcked()
	kill()
	got = fgCommitted(t, adm, group, topic)
	l.mu.Lock()
	sent := map[int32]int64{}
	for p, o := range l.sent {
		sent[p] = o
	}
	l.mu.Unlock()
	for p := int32(0); p < parts; p++ {
		if got[p] < before[p] || got[p] > sent[p] {
			t.Fatalf("after kill -9 during commits: partition %d committed %d, acknowledged before the kill %d, highest sent %d", p, got[p], before[p], sent[p])
		}
	}
	t.Logf("kill 2 (commits in flight): OffsetFetch %v, acknowledged before the kill %v", got, before)

	// 3. Kill during a rebalance: with commits held, a member holding polled records cannot
	// rejoin (BlockRebalanceOnPoll); a fourth member joins and the group waits in
	// PreparingRebalance when the broker dies. After the restart the four converge.
	fgWait(t, 60*time.Second, "commits after the second restart", everyPartitionCommitted(before[0]+100))
	fgWait(t, 60*time.Second, "convergence after the second restart", func() string {
		return fgConverged(adm, group, topic, parts, members)
	})
	gate.pause()
	// One member held with polled records is enough: the rebalance waits for every member.
	fgWait(t, 30*time.Second, "a member held with polled records", func() string {
		if gate.held() == 0 {
			return "no member holds polled records"
		}
		return ""
	})
	members = append(members, startFgMember(t, addr, group, "kill9-a3", l, fgMemberOpts{gate: gate}))
	fgWait(t, 30*time.Second, "rebalance in progress", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dgs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err.Error()
		}
		if st := dgs[group].State; st != "PreparingRebalance" {
			return "state " + st
		}
		return ""
	})
	want = l.lastAcked()
	kill()
	if got := fgCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after kill -9 during a rebalance: OffsetFetch %v, last acknowledged commits %v", got, want)
	}
	gate.resume()
	t0 := time.Now()
	fgWait(t, 60*time.Second, "convergence after kill -9 during a rebalance", func() string {
		return fgConverged(adm, group, topic, parts, members)
	})
	t.Logf("kill 3 (during a rebalance): four members converged %v after the restart", time.Since(t0).Round(time.Millisecond))
	before = l.lastAcked()

	// 4. The members leave; the broker dies with the group Empty; new members resume exactly
	// at the committed offsets.
	fgWait(t, 60*time.Second, "commits after the third restart", everyPartitionCommitted(before[0]+50))
	for _, m := range members {
		m.stop()
	}
	committed := fgCommitted(t, adm, group, topic)
	if fmt.Sprint(committed) != fmt.Sprint(l.lastAcked()) {
		t.Fatalf("after the members left: OffsetFetch %v, last acknowledged commits %v", committed, l.lastAcked())
	}
	kill()
	if got := fgCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(committed) {
		t.Fatalf("after kill -9 of an Empty group: OffsetFetch %v, committed before %v", got, committed)
	}
	members = nil
	for i := 0; i < 3; i++ {
		members = append(members, startFgMember(t, addr, group, fmt.Sprintf("kill9-b%d", i), l, fgMemberOpts{}))
	}
	fgWait(t, 60*time.Second, "every partition resumed", func() string {
		firsts := map[int32]int64{}
		for _, m := range members {
			for p, o := range m.firstOffsets() {
				firsts[p] = o
			}
		}
		if len(firsts) < int(parts) {
			return fmt.Sprintf("first offsets %v", firsts)
		}
		for p, o := range firsts {
			if o != committed[p] {
				t.Fatalf("partition %d resumed at %d, committed offset %d", p, o, committed[p])
			}
		}
		return ""
	})

	// Everything produced is consumed and committed.
	total := pr.stop()
	if len(pr.errs) > 0 {
		t.Fatalf("produce errors: %v", pr.errs[:min(len(pr.errs), 5)])
	}
	acked := pr.ackedRecords()
	if len(acked) != total {
		t.Fatalf("%d of %d records acknowledged", len(acked), total)
	}
	ends := fgEnds(t, adm, topic)
	fgWait(t, 60*time.Second, "every record committed", func() string {
		if got := fgCommitted(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(ends) {
			return fmt.Sprintf("committed %v, log ends %v", got, ends)
		}
		return ""
	})
	for _, m := range members {
		m.stop()
	}
	redelivered := fgCheck(t, l, acked)
	l.mu.Lock()
	fails := l.fails
	l.mu.Unlock()
	t.Logf("%d records, %d redelivered (uncommitted work), %d failed commits, in %v", total, redelivered, fails, time.Since(start))
}
