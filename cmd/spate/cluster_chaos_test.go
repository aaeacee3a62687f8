//go:build linux

package main

// The cluster fault suite. Three spate processes (combined controller+broker nodes) run behind
// TCP proxies (cluster_proxy_test.go: every Kafka and Raft connection between nodes, and every
// client connection, goes through the proxy of the node it reaches), with a topic of 6
// partitions, replication factor 3, min.insync.replicas=2. An idempotent acks=all producer
// (values "key:seq", 24 keys) and a consumer group member (committing synchronously what it
// polled) run throughout while a seeded schedule of faults is injected:
//
//	kill-leader      SIGKILL the leader of partition 0; production must go on with the two
//	                 others; restart it
//	kill-controller  the same with the active controller (the Raft leader)
//	pause            SIGSTOP a node for 4.5-6.5 s, past the broker session timeout (2 s) even
//	                 when it is the active controller (a new one must be elected first), SIGCONT
//	cut              cut a node off from the others and from clients for 4-6 s (its proxies
//	                 reset every connection, or swallow every byte), then heal
//	delay            add 50-200 ms of latency to a node's every link, then remove it
//	rolling-restart  SIGTERM (controlled shutdown, which must exit 0) and restart each node in
//	                 turn
//
// The target of pause, cut and delay is a random node, the leader of partition 0 or the
// active controller. After each fault the test waits for every partition (and the group
// coordinator's) to have its full ISR again and for the producer to make progress. At the end:
//
//   - a fresh consumer reads every partition from the start to its high watermark: offsets
//     are dense, every acknowledged record is there exactly once at the offset its
//     acknowledgement gave, no value appears twice, each key's sequence numbers increase;
//   - the group member's deliveries: within an assignment of a partition the offsets are
//     consecutive; an assignment starts at or after the last commit acknowledged before it
//     and at or before the highest offset ever committed (replays only from the committed
//     offset, no skipped records); every record it saw has the value the log holds at that
//     offset (what was read below the high watermark never changes);
//   - the nodes stop with SIGTERM, cleanly (exit status 0: no race report) but for the last
//     one, which has no quorum left (see run), and every replica of every partition holds
//     the same batches, byte for byte, over the common prefix of the replicas, which covers
//     the high watermark;
//   - no node's log has a race report or a panic.
//
// The seed (-chaos.seed n, or SPATE_CHAOS_SEED=n) picks the faults, their targets and their
// timings; it is printed at the start and with every failure. Timing is not replayed exactly:
// a seed replays the schedule, not the interleaving. Node logs (warn level; SPATE_TEST_DEBUG
// for info) go to files whose folder is kept, and tails printed, when the test fails (or
// kept when SPATE_CHAOS_KEEP_LOGS is set). SPATE_CHAOS_FAULTS=pause,cut,... names the faults
// of the short test instead.
//
// TestClusterChaosShort (part of `make test`) runs four faults; TestClusterChaosLong
// (cluster_chaos_long_test.go, build tag chaos, `make chaos`) runs faults for
// SPATE_CHAOS_DURATION (default 10m). TestClusterChaosRetriedBatchWaitsForReplication
// (cluster_chaos_ack_test.go) is the deterministic form of a loss these found.

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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

var chaosSeedFlag = flag.Int64("chaos.seed", 0, "seed of the cluster chaos tests (0: SPATE_CHAOS_SEED, else the clock)")

func chaosSeed(t *testing.T) int64 {
	if *chaosSeedFlag != 0 {
		return *chaosSeedFlag
	}
	if s := os.Getenv("SPATE_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("SPATE_CHAOS_SEED: %v", err)
		}
		return v
	}
	return time.Now().UnixNano()
}

const (
	chaosTopic   = "chaos"
	chaosGroup   = "chaos-group"
	chaosParts   = int32(6)
	chaosKeys    = 24
	chaosSession = 2 * time.Second // -broker-session-timeout of procCluster
)

// TestClusterChaosShort: four faults, picked by the seed among the six kinds (or named by
// SPATE_CHAOS_FAULTS, e.g. "pause,cut,cut").
func TestClusterChaosShort(t *testing.T) {
	c := startChaosCluster(t)
	var plan []chaosFault
	if names := os.Getenv("SPATE_CHAOS_FAULTS"); names != "" {
		for _, name := range strings.Split(names, ",") {
			i := slices.IndexFunc(chaosFaults, func(f chaosFault) bool { return f.name == name })
			if i < 0 {
				t.Fatalf("SPATE_CHAOS_FAULTS: no fault %q", name)
			}
			plan = append(plan, chaosFaults[i])
		}
	} else {
		for _, i := range c.rng.Perm(len(chaosFaults))[:4] {
			plan = append(plan, chaosFaults[i])
		}
	}
	c.run(func(k int) (chaosFault, bool) {
		if k >= len(plan) {
			return chaosFault{}, false
		}
		return plan[k], true
	})
}

// chaosFault is a kind of fault: run injects it and returns once it is over (the node back).
type chaosFault struct {
	name string
	run  func(c *chaosCluster)
}

var chaosFaults = []chaosFault{
	{"kill-leader", (*chaosCluster).faultKillLeader},
	{"kill-controller", (*chaosCluster).faultKillController},
	{"pause", (*chaosCluster).faultPause},
	{"cut", (*chaosCluster).faultCut},
	{"delay", (*chaosCluster).faultDelay},
	{"rolling-restart", (*chaosCluster).faultRollingRestart},
}

type chaosCluster struct {
	t       *testing.T
	seed    int64
	rng     *rand.Rand
	pc      *procCluster
	net     *chaosNet
	proxies [][2]*tcpProxy // per node: Kafka, Raft
	pids    []atomic.Int64
	adm     *kadm.Client
	admCl   *kgo.Client
	logDir  string
	logs    []*os.File
	prod    *chaosProducer
	cons    *chaosConsumer
	began   time.Time
}

func startChaosCluster(t *testing.T) *chaosCluster {
	seed := chaosSeed(t)
	t.Logf("chaos seed %d (replay the schedule: -chaos.seed %d or SPATE_CHAOS_SEED=%d)", seed, seed, seed)
	const n = 3
	c := &chaosCluster{t: t, seed: seed, rng: rand.New(rand.NewPCG(uint64(seed), 0x5ba7e)), pids: make([]atomic.Int64, n), began: time.Now()}
	var err error
	if c.logDir, err = os.MkdirTemp("", "spate-chaos-logs"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(filepath.Join(c.logDir, fmt.Sprintf("node%d.log", i+1)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		c.logs = append(c.logs, f)
	}
	t.Cleanup(func() { // runs last
		for _, f := range c.logs {
			f.Close()
		}
		if t.Failed() {
			c.printLogTails()
			t.Logf("chaos seed %d failed; node logs and data folders kept in %s", seed, c.logDir)
			return
		}
		if os.Getenv("SPATE_CHAOS_KEEP_LOGS") != "" {
			t.Logf("node logs and data folders kept in %s", c.logDir)
			return
		}
		os.RemoveAll(c.logDir)
	})

	c.pc = &procCluster{t: t, bin: spateBinary(t), cmds: make([]*exec.Cmd, n),
		stderr: func(i int) io.Writer { return c.logs[i] }}
	c.net = newChaosNet(n, c.pidList)
	t.Cleanup(c.net.close)
	// The proxies first: their ports are held, so that the nodes' own ports, picked after
	// them, are not theirs. The nodes' ports are private to their proxies: startNode picks
	// new ones when they were taken meanwhile.
	var voters []string
	for i := 0; i < n; i++ {
		kp, err := c.net.listen("kafka", i)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := c.net.listen("raft", i)
		if err != nil {
			t.Fatal(err)
		}
		c.proxies = append(c.proxies, [2]*tcpProxy{kp, rp})
		c.pc.advertised = append(c.pc.advertised, kp.addr())
		c.pc.raftAdvertised = append(c.pc.raftAdvertised, rp.addr())
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, rp.addr()))
		// Data folders next to the logs: kept with them when the test fails.
		dir := filepath.Join(c.logDir, fmt.Sprintf("node%d-data", i+1))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		c.pc.dirs = append(c.pc.dirs, dir)
	}
	for i := 0; i < n; i++ {
		kafka, raft := freeAddr(t), freeAddr(t)
		c.pc.addrs = append(c.pc.addrs, kafka)
		c.pc.raftListen = append(c.pc.raftListen, raft)
		c.proxies[i][0].setTarget(kafka)
		c.proxies[i][1].setTarget(raft)
	}
	c.pc.voters = strings.Join(voters, ",")
	t.Cleanup(func() { // runs first
		for i := range c.pc.cmds {
			if cmd := c.pc.cmds[i]; cmd != nil {
				cmd.Process.Signal(syscall.SIGCONT)
			}
			c.killNode(i)
		}
	})
	for i := 0; i < n; i++ {
		c.startNode(i)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.pc.seeds()...), kgo.ClientID("chaos-admin"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }), kgo.RequestTimeoutOverhead(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.admCl, c.adm = cl, kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		resp, err := c.adm.CreateTopic(ctx, chaosParts, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, chaosTopic)
		if err == nil && resp.Err == nil {
			break
		}
		if ctx.Err() != nil {
			c.fatalf("create topic: %v %v", err, resp.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.waitHealthy(60 * time.Second)
	return c
}

func (c *chaosCluster) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("[chaos seed %d] "+format, append([]any{c.seed}, args...)...)
}

func (c *chaosCluster) errorf(format string, args ...any) {
	c.t.Helper()
	c.t.Errorf("[chaos seed %d] "+format, append([]any{c.seed}, args...)...)
}

func (c *chaosCluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%6.1fs "+format, append([]any{time.Since(c.began).Seconds()}, args...)...)
}

func (c *chaosCluster) pidList() []int {
	out := make([]int, len(c.pids))
	for i := range c.pids {
		out[i] = int(c.pids[i].Load())
	}
	return out
}

func (c *chaosCluster) startNode(i int) {
	c.t.Helper()
	for k, addr := range []*string{&c.pc.addrs[i], &c.pc.raftListen[i]} {
		if l, err := net.Listen("tcp", *addr); err == nil {
			l.Close()
		} else {
			*addr = freeAddr(c.t)
			c.proxies[i][k].setTarget(*addr)
		}
	}
	fmt.Fprintf(c.logs[i], "=== chaos: node %d starts at %s\n", i+1, time.Now().Format(time.RFC3339Nano))
	c.pc.start(i)
	c.pids[i].Store(int64(c.pc.cmds[i].Process.Pid))
}

func (c *chaosCluster) killNode(i int) {
	c.pids[i].Store(0)
	c.pc.kill(i)
}

// stopNode stops node i with SIGTERM; it must exit with status 0 within 45 s.
func (c *chaosCluster) stopNode(i int) {
	c.t.Helper()
	cmd := c.pc.cmds[i]
	if cmd == nil {
		return
	}
	t0 := time.Now()
	defer func() {
		if d := time.Since(t0); d > 5*time.Second {
			c.logf("node %d took %v to stop after SIGTERM", i+1, d.Round(time.Millisecond))
		}
	}()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(45 * time.Second):
		// SIGQUIT: the Go runtime writes every goroutine's stack to the node's log.
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		err = fmt.Errorf("no exit 45s after SIGTERM; goroutines dumped with SIGQUIT in %s", c.logs[i].Name())
	}
	c.pids[i].Store(0)
	c.pc.cmds[i] = nil
	if err != nil {
		c.errorf("node %d after SIGTERM: %v", i+1, err)
	}
}

// stopLast stops the last running node: SIGTERM, and SIGKILL after 5 s.
func (c *chaosCluster) stopLast(i int) {
	cmd := c.pc.cmds[i]
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			c.errorf("node %d (the last) after SIGTERM: %v", i+1, err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		c.logf("node %d, the last (no quorum), still stopping 5s after SIGTERM: killed", i+1)
	}
	c.pids[i].Store(0)
	c.pc.cmds[i] = nil
}

func (c *chaosCluster) signal(i int, sig syscall.Signal) {
	if cmd := c.pc.cmds[i]; cmd != nil {
		cmd.Process.Signal(sig)
	}
}

// sleep waits a random duration in [lo, hi).
func (c *chaosCluster) sleep(lo, hi time.Duration) time.Duration {
	d := lo + time.Duration(c.rng.Int64N(int64(hi-lo)))
	time.Sleep(d)
	return d
}

// waitHealthy waits until every node, asked in turn, reports every partition of the topic
// with a leader and an ISR of 3, every partition of the group coordinator's topic (once it
// exists) with its full ISR, and the same leader epochs as the other nodes. It returns the
// topic's leader epochs.
func (c *chaosCluster) waitHealthy(timeout time.Duration) []int32 {
	c.t.Helper()
	t0 := time.Now()
	deadline := t0.Add(timeout)
	var last string
	var timeline []string // what was missing, when it changed
	defer func() {
		if d := time.Since(t0); d > 10*time.Second {
			c.logf("healthy after %v; waited for: %s", d.Round(time.Millisecond), strings.Join(timeline, "; "))
		}
	}()
	for {
		var epochs []int32
		last = ""
		for id := int32(1); id <= int32(len(c.pids)) && last == ""; id++ {
			why, e := c.viewProblem(id)
			switch {
			case why != "":
				last = why
			case epochs == nil:
				epochs = e
			case !slices.Equal(epochs, e):
				last = fmt.Sprintf("leader epochs %v at node 1, %v at node %d", epochs, e, id)
			}
		}
		if last == "" {
			return epochs
		}
		if len(timeline) == 0 || !strings.HasSuffix(timeline[len(timeline)-1], " "+last) {
			timeline = append(timeline, fmt.Sprintf("+%.1fs %s", time.Since(t0).Seconds(), last))
		}
		if time.Now().After(deadline) {
			c.fatalf("cluster not healthy %v after the fault: %s (timeline: %s)", timeout, last, strings.Join(timeline, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// viewProblem asks node id for the metadata of the topic and the group coordinator's: it
// returns what is not healthy there, or "" and the topic's leader epochs.
func (c *chaosCluster) viewProblem(id int32) (string, []int32) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{chaosTopic, "__consumer_offsets"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.admCl.Broker(int(id)))
	if err != nil {
		return fmt.Sprintf("node %d: %v", id, err), nil
	}
	epochs := make([]int32, chaosParts)
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if name != chaosTopic && t.ErrorCode != 0 {
			continue // not created yet
		}
		if t.ErrorCode != 0 || len(t.Partitions) == 0 {
			return fmt.Sprintf("node %d: %s: error %d, %d partitions", id, name, t.ErrorCode, len(t.Partitions)), nil
		}
		for _, p := range t.Partitions {
			if p.Leader < 0 || p.ErrorCode != 0 || len(p.ISR) != len(p.Replicas) || (name == chaosTopic && len(p.ISR) != 3) {
				return fmt.Sprintf("node %d: %s-%d: leader %d replicas %v isr %v error %d", id, name, p.Partition, p.Leader, p.Replicas, p.ISR, p.ErrorCode), nil
			}
			if name == chaosTopic && p.Partition >= 0 && p.Partition < chaosParts {
				epochs[p.Partition] = p.LeaderEpoch
			}
		}
	}
	return "", epochs
}

// waitProgress waits for n more acknowledged records.
func (c *chaosCluster) waitProgress(n int, timeout time.Duration, what string) {
	c.t.Helper()
	from := c.prod.ackCount()
	deadline := time.Now().Add(timeout)
	for c.prod.ackCount() < from+n {
		if time.Now().After(deadline) {
			c.fatalf("%s: %d records acknowledged in %v, want %d (failed sends %d, %v)", what, c.prod.ackCount()-from, timeout, n, c.prod.failCount(), c.prod.firstErrs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *chaosCluster) leaderOf(p int32) int {
	for try := 0; try < 50; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := c.adm.Metadata(ctx, chaosTopic)
		cancel()
		if err == nil {
			if pd, ok := md.Topics[chaosTopic].Partitions[p]; ok && pd.Leader > 0 {
				return int(pd.Leader - 1)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.fatalf("no leader of partition %d", p)
	return -1
}

func (c *chaosCluster) controller() int {
	for try := 0; try < 50; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := c.adm.BrokerMetadata(ctx)
		cancel()
		if err == nil && md.Controller > 0 {
			return int(md.Controller - 1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.fatalf("no active controller reported")
	return -1
}

// target picks the node a fault hits: a random one, the leader of partition 0 or the active
// controller.
func (c *chaosCluster) target() (int, string) {
	switch c.rng.IntN(3) {
	case 0:
		i := c.leaderOf(0)
		return i, fmt.Sprintf("node %d (leader of partition 0)", i+1)
	case 1:
		i := c.controller()
		return i, fmt.Sprintf("node %d (active controller)", i+1)
	default:
		i := c.rng.IntN(len(c.pids))
		return i, fmt.Sprintf("node %d", i+1)
	}
}

func (c *chaosCluster) faultKillLeader() {
	i := c.leaderOf(0)
	c.killRestart(i, fmt.Sprintf("node %d (leader of partition 0)", i+1))
}

func (c *chaosCluster) faultKillController() {
	i := c.controller()
	c.killRestart(i, fmt.Sprintf("node %d (active controller)", i+1))
}

func (c *chaosCluster) killRestart(i int, who string) {
	c.logf("kill -9 %s, %d acknowledged", who, c.prod.ackCount())
	c.killNode(i)
	c.waitProgress(300, 60*time.Second, fmt.Sprintf("production with node %d down", i+1))
	d := c.sleep(0, 2*time.Second)
	c.logf("restart node %d (down %v more after progress)", i+1, d.Round(time.Millisecond))
	c.startNode(i)
}

func (c *chaosCluster) faultPause() {
	i, who := c.target()
	// Past the session timeout even when the node is the active controller: its successor
	// is elected first (about a second) and gives every broker a fresh session.
	d := 2*chaosSession + 500*time.Millisecond + time.Duration(c.rng.Int64N(int64(2*time.Second)))
	c.logf("SIGSTOP %s for %v", who, d.Round(time.Millisecond))
	c.signal(i, syscall.SIGSTOP)
	time.Sleep(d)
	c.signal(i, syscall.SIGCONT)
	c.logf("SIGCONT node %d", i+1)
}

func (c *chaosCluster) faultCut() {
	i, who := c.target()
	mode := linkReset
	if c.rng.IntN(2) == 0 {
		mode = linkBlackhole
	}
	d := 2*chaosSession + time.Duration(c.rng.Int64N(int64(2*time.Second)))
	c.logf("cut %s off (%s) for %v", who, mode, d.Round(time.Millisecond))
	c.net.set(i, mode, 0)
	time.Sleep(d)
	c.net.set(i, linkPass, 0)
	c.logf("healed node %d", i+1)
}

func (c *chaosCluster) faultDelay() {
	i, who := c.target()
	lat := 50*time.Millisecond + time.Duration(c.rng.Int64N(int64(150*time.Millisecond)))
	d := 3*time.Second + time.Duration(c.rng.Int64N(int64(3*time.Second)))
	c.logf("delay every link of %s by %v for %v", who, lat.Round(time.Millisecond), d.Round(time.Millisecond))
	c.net.set(i, linkDelay, lat)
	time.Sleep(d)
	c.net.set(i, linkPass, 0)
	c.logf("delay of node %d removed", i+1)
}

func (c *chaosCluster) faultRollingRestart() {
	first := c.rng.IntN(len(c.pids))
	c.logf("rolling restart from node %d", first+1)
	for k := range len(c.pids) {
		i := (first + k) % len(c.pids)
		c.stopNode(i)
		c.startNode(i)
		c.waitHealthy(60 * time.Second)
		c.logf("node %d restarted, ISR full", i+1)
	}
}

// run starts the clients, injects next(0), next(1), ... until it reports false, and checks.
func (c *chaosCluster) run(next func(k int) (chaosFault, bool)) {
	c.prod = startChaosProducer(c)
	defer c.prod.close()
	c.cons = startChaosConsumer(c)
	defer c.cons.stop()
	c.waitProgress(500, 60*time.Second, "first records")
	var names []string
	epochs := c.waitHealthy(60 * time.Second)
	for k := 0; ; k++ {
		f, ok := next(k)
		if !ok {
			break
		}
		names = append(names, f.name)
		t0 := time.Now()
		f.run(c)
		now := c.waitHealthy(90 * time.Second)
		moved := 0
		for p := range now {
			if now[p] != epochs[p] {
				moved++
			}
		}
		epochs = now
		c.waitProgress(200, 60*time.Second, "production after "+f.name)
		c.logf("fault %d (%s) over in %v; leadership changed on %d of %d partitions; %d acknowledged",
			k+1, f.name, time.Since(t0).Round(time.Millisecond), moved, chaosParts, c.prod.ackCount())
	}
	c.waitHealthy(60 * time.Second)
	c.prod.stop()
	acked := c.prod.ackedRecords()
	if n := c.prod.failCount(); n > 0 {
		c.errorf("%d produces failed (an idempotent producer retrying forever): %v", n, c.prod.firstErrs())
	}
	ends := c.endOffsets()
	c.logf("faults %v done; %d acknowledged; high watermarks %v", names, len(acked), ends)

	// The group member reads to the end.
	deadline := time.Now().Add(90 * time.Second)
	for {
		behind := c.cons.behind(ends)
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			c.fatalf("the group member did not reach the high watermarks: %s", behind)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.cons.stop()

	final := c.readAll(ends)
	c.check(acked, ends, final)

	// Replicas, after a clean stop of every node but the last: that one has no quorum left,
	// and its controlled shutdown waits for a controller until the controller op timeout
	// (30 s, twice: Drain's shutdown heartbeat, then Close waiting for the heartbeat loop's
	// in flight). It gets 5 s, then SIGKILL (its log is read all the same; a race report
	// would be in its log, which checkLogs reads).
	for i := 0; i < len(c.pc.cmds)-1; i++ {
		c.stopNode(i)
	}
	c.stopLast(len(c.pc.cmds) - 1)
	c.checkReplicas(ends)
	c.checkLogs()
	// Only nodes connect to Raft listeners: each connection there must have been traced to
	// its node, or cuts do not hold (one from a node killed as it connected may not be).
	if unknown, total := c.net.untraced("raft"); unknown > 2 && unknown*10 > total {
		c.errorf("%d of %d Raft connections not traced to a node (cuts would not hold): %s", unknown, total, c.net.stats())
	} else {
		c.logf("proxied connections: %s", c.net.stats())
	}
	c.logf("%d acknowledged, %d group deliveries in %d assignments (%d commits, %d failed), %v in all",
		len(acked), c.cons.deliveries, len(c.cons.sessions), c.cons.commits, c.cons.commitFails, time.Since(c.began).Round(time.Second))
}

func (c *chaosCluster) endOffsets() map[int32]int64 {
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ends, err := c.adm.ListEndOffsets(ctx, chaosTopic)
		cancel()
		out := map[int32]int64{}
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil {
					err = o.Err
				}
				out[o.Partition] = o.Offset
			})
		}
		if err == nil && len(out) == int(chaosParts) {
			return out
		}
		if try == 50 {
			c.fatalf("ListOffsets: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chaosRecord is a record as the fresh consumer read it.
type chaosRecord struct {
	offset int64
	value  string
}

// readAll reads every partition from its start to ends with a fresh (groupless) consumer.
func (c *chaosCluster) readAll(ends map[int32]int64) map[int32][]chaosRecord {
	offs := map[int32]kgo.Offset{}
	for p := int32(0); p < chaosParts; p++ {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.pc.seeds()...), kgo.ClientID("chaos-reader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{chaosTopic: offs}))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]chaosRecord{}
	next := map[int32]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		done := true
		for p, e := range ends {
			if next[p] < e {
				done = false
			}
		}
		if done {
			return out
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.fatalf("read back: at %v of %v", next, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return
			}
			out[r.Partition] = append(out[r.Partition], chaosRecord{r.Offset, string(r.Value)})
			next[r.Partition] = r.Offset + 1
		})
	}
}

// check compares what the clients saw with what the log holds.
func (c *chaosCluster) check(acked map[string]fgRec, ends map[int32]int64, final map[int32][]chaosRecord) {
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 25 {
			c.errorf(format, args...)
		}
	}
	where := map[string]fgRec{}
	at := map[fgRec]string{}
	lastSeq := map[string]int{}
	keyPart := map[string]int32{}
	for p := int32(0); p < chaosParts; p++ {
		next := int64(0)
		for _, r := range final[p] {
			if r.offset != next {
				fail("partition %d: offset %d read where %d was expected (offsets are dense in a plain topic)", p, r.offset, next)
			}
			next = r.offset + 1
			k := fgRec{p, r.offset}
			at[k] = r.value
			if prev, dup := where[r.value]; dup {
				fail("value %s at %d@%d and at %d@%d (duplicate)", r.value, prev.p, prev.o, p, r.offset)
			}
			where[r.value] = k
			key, seqs, _ := strings.Cut(r.value, ":")
			seq, err := strconv.Atoi(seqs)
			if err != nil {
				fail("%d@%d: value %q was never produced", p, r.offset, r.value)
				continue
			}
			if kp, ok := keyPart[key]; ok && kp != p {
				fail("key %s in partitions %d and %d", key, kp, p)
			}
			keyPart[key] = p
			if prev, ok := lastSeq[key]; ok && seq <= prev {
				fail("key %s: seq %d at %d@%d after seq %d (out of order)", key, seq, p, r.offset, prev)
			}
			lastSeq[key] = seq
		}
		if next != ends[p] {
			fail("partition %d: read to %d, high watermark %d", p, next, ends[p])
		}
	}
	lost := 0
	for v, k := range acked {
		got, ok := where[v]
		switch {
		case !ok:
			lost++
			fail("acknowledged record %s (at %d@%d, acknowledged at %s) lost", v, k.p, k.o, c.prod.ackTime(v))
		case got != k:
			fail("acknowledged record %s at %d@%d, found at %d@%d", v, k.p, k.o, got.p, got.o)
		}
	}
	unacked := len(where) - (len(acked) - lost)

	cs := c.cons
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, pr := range cs.problems {
		fail("group member: %s", pr)
	}
	for k, v := range cs.seen {
		if at[k] != v {
			fail("group member read %q at %d@%d, the log holds %q there", v, k.p, k.o, at[k])
		}
	}
	if bad > 25 {
		c.errorf("… %d problems in all", bad)
	}
	c.logf("read back %d records (%d acknowledged, %d written but not acknowledged); group member saw %d offsets", len(where), len(acked), unacked, len(cs.seen))
}

// checkReplicas compares every partition's replicas (the nodes are stopped): the same batches
// over their common prefix, which reaches the high watermark.
func (c *chaosCluster) checkReplicas(ends map[int32]int64) {
	for p := int32(0); p < chaosParts; p++ {
		var logs [][]byte
		var lens []int
		for i := range c.pc.dirs {
			b, err := replicaBatches(filepath.Join(c.pc.dirs[i], fmt.Sprintf("%s-%d", chaosTopic, p)))
			if err != nil {
				c.errorf("partition %d on node %d: %v", p, i+1, err)
			}
			logs = append(logs, b)
			lens = append(lens, len(b))
		}
		short := len(logs[0])
		for _, l := range logs {
			short = min(short, len(l))
		}
		for i := 1; i < len(logs); i++ {
			if !equalBytes(logs[0][:short], logs[i][:short]) {
				at := 0
				for at < short && logs[0][at] == logs[i][at] {
					at++
				}
				c.errorf("partition %d: replica on node %d differs from node 1 at byte %d of %d (lengths %v)", p, i+1, at, short, lens)
			}
		}
		if end := batchesEnd(logs[0][:short]); end < ends[p] {
			c.errorf("partition %d: the replicas' common prefix ends at offset %d, below the high watermark %d (lengths %v)", p, end, ends[p], lens)
		}
	}
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

// replicaBatches concatenates the record batches of a partition folder's segments, in offset
// order, each exactly (a segment's preallocated zero tail, or a torn last batch, is left out).
func replicaBatches(dir string) ([]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no segments in %s (%v)", dir, err)
	}
	sort.Strings(names)
	var out []byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		for len(b) >= 12 {
			size := int(int32(binary.BigEndian.Uint32(b[8:12])))
			if size <= 0 || 12+size > len(b) {
				break
			}
			out = append(out, b[:12+size]...)
			b = b[12+size:]
		}
	}
	return out, nil
}

// batchesEnd is the offset after the last whole batch of b.
func batchesEnd(b []byte) int64 {
	end := int64(0)
	for len(b) >= 27 {
		size := int(int32(binary.BigEndian.Uint32(b[8:12])))
		if size < 15 || 12+size > len(b) {
			break
		}
		base := int64(binary.BigEndian.Uint64(b[0:8]))
		lastDelta := int64(int32(binary.BigEndian.Uint32(b[23:27])))
		end = base + lastDelta + 1
		b = b[12+size:]
	}
	return end
}

// checkLogs looks for race reports and panics in the node logs.
func (c *chaosCluster) checkLogs() {
	for i, f := range c.logs {
		f.Sync()
		r, err := os.Open(f.Name())
		if err != nil {
			c.errorf("%v", err)
			continue
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "DATA RACE") || strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
				c.errorf("node %d log (%s): %s", i+1, f.Name(), line)
			}
		}
		r.Close()
	}
}

func (c *chaosCluster) printLogTails() {
	for i := range c.logs {
		b, err := os.ReadFile(filepath.Join(c.logDir, fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		c.t.Logf("node %d log, last %d of %d lines:\n%s", i+1, min(40, len(lines)), len(lines), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// chaosProducer is an idempotent acks=all producer of "key:seq" values (24 keys, the default
// partitioner) that retries forever and notes where each acknowledged record went.
type chaosProducer struct {
	began    time.Time // of the test
	cl       *kgo.Client
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu     sync.Mutex
	acked  map[string]fgRec
	ackAt  map[string]time.Time
	failed int
	errs   []error
}

func startChaosProducer(c *chaosCluster) *chaosProducer {
	opts := []kgo.Opt{kgo.SeedBrokers(c.pc.seeds()...), kgo.ClientID("chaos-producer"), kgo.DefaultProduceTopic(chaosTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1 << 30), kgo.UnknownTopicRetries(-1),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ProducerLinger(2 * time.Millisecond), kgo.ProduceRequestTimeout(5 * time.Second), kgo.RequestTimeoutOverhead(2 * time.Second),
		kgo.MaxBufferedRecords(20000),
		// A node that is stopping, or a cut proxy, closes a new connection before it answers
		// ApiVersions; kgo takes that first-read EOF for a misconfiguration and fails the
		// records unless told to retry it — the faults here cause it on purpose.
		kgo.AlwaysRetryEOF()}
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return "chaos-producer " + time.Now().Format("15:04:05.000") + " " })))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	pr := &chaosProducer{began: c.began, cl: cl, quit: make(chan struct{}), done: make(chan struct{}), acked: map[string]fgRec{}, ackAt: map[string]time.Time{}}
	go func() {
		defer close(pr.done)
		for seq := 0; ; seq++ {
			select {
			case <-pr.quit:
				return
			default:
			}
			key := fmt.Sprintf("k%02d", seq%chaosKeys)
			val := fmt.Sprintf("%s:%07d", key, seq)
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(key), Value: []byte(val)}, func(r *kgo.Record, err error) {
				pr.mu.Lock()
				defer pr.mu.Unlock()
				if err != nil {
					pr.failed++
					if len(pr.errs) < 5 {
						pr.errs = append(pr.errs, fmt.Errorf("%s: %w", r.Value, err))
					}
					return
				}
				pr.acked[string(r.Value)] = fgRec{r.Partition, r.Offset}
				pr.ackAt[string(r.Value)] = time.Now()
			})
			time.Sleep(time.Millisecond)
		}
	}()
	return pr
}

// stop stops producing and waits (up to 2 minutes) until every record is acknowledged or
// failed.
func (pr *chaosProducer) stop() {
	pr.stopOnce.Do(func() { close(pr.quit) })
	<-pr.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := pr.cl.Flush(ctx); err != nil {
		pr.mu.Lock()
		pr.errs = append(pr.errs, fmt.Errorf("flush: %w", err))
		pr.failed++
		pr.mu.Unlock()
	}
}

func (pr *chaosProducer) close() {
	pr.stopOnce.Do(func() { close(pr.quit) })
	<-pr.done
	pr.cl.Close()
}

// ackTime is when v was acknowledged, as the time since the start of the test and the clock.
func (pr *chaosProducer) ackTime(v string) string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	at := pr.ackAt[v]
	return fmt.Sprintf("%.3fs (%s)", at.Sub(pr.began).Seconds(), at.Format("15:04:05.000"))
}

func (pr *chaosProducer) ackCount() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.acked)
}

func (pr *chaosProducer) failCount() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.failed
}

func (pr *chaosProducer) firstErrs() []error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]error(nil), pr.errs...)
}

func (pr *chaosProducer) ackedRecords() map[string]fgRec {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make(map[string]fgRec, len(pr.acked))
	for k, v := range pr.acked {
		out[k] = v
	}
	return out
}

// chaosSessionRec is one assignment of a partition to the group member.
type chaosSessionRec struct {
	p            int32
	ackedAtStart int64 // last acknowledged commit when it was assigned; -1: none
	first, last  int64 // offsets delivered; -1: none yet
}

// chaosConsumer is a group member (franz-go, cooperative-sticky, BlockRebalanceOnPoll, no
// auto-commit): it checks each delivery against its assignment as it comes and commits what
// it polled synchronously before allowing a rebalance.
type chaosConsumer struct {
	c      *chaosCluster
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu          sync.Mutex
	cur         map[int32]*chaosSessionRec
	sessions    []*chaosSessionRec
	acked       map[int32]int64 // last acknowledged commit
	sent        map[int32]int64 // highest offset sent in a commit
	maxSeen     map[int32]int64
	seen        map[fgRec]string
	deliveries  int
	commits     int
	commitFails int
	problems    []string
}

func startChaosConsumer(c *chaosCluster) *chaosConsumer {
	cs := &chaosConsumer{c: c, done: make(chan struct{}), cur: map[int32]*chaosSessionRec{}, acked: map[int32]int64{},
		sent: map[int32]int64{}, maxSeen: map[int32]int64{}, seen: map[fgRec]string{}}
	assigned := func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		for _, p := range a[chaosTopic] {
			at := int64(-1)
			if o, ok := cs.acked[p]; ok {
				at = o
			}
			s := &chaosSessionRec{p: p, ackedAtStart: at, first: -1, last: -1}
			cs.cur[p] = s
			cs.sessions = append(cs.sessions, s)
		}
	}
	gone := func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		for _, p := range r[chaosTopic] {
			delete(cs.cur, p)
		}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.pc.seeds()...), kgo.ClientID("chaos-consumer"), kgo.ConsumerGroup(chaosGroup), kgo.ConsumeTopics(chaosTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.RebalanceTimeout(20 * time.Second), kgo.FetchMaxWait(200 * time.Millisecond), kgo.RequestTimeoutOverhead(3 * time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.OnPartitionsAssigned(assigned), kgo.OnPartitionsRevoked(gone), kgo.OnPartitionsLost(gone),
	}
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return "chaos-consumer " + time.Now().Format("15:04:05.000") + " " })))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	cs.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	cs.cancel = cancel
	go func() {
		defer close(cs.done)
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				cl.AllowRebalance()
				return
			}
			offsets := map[int32]kgo.EpochOffset{}
			cs.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { cs.deliver(r, offsets) })
			cs.mu.Unlock()
			if len(offsets) > 0 {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				cs.commit(cctx, offsets)
				ccancel()
			}
			cl.AllowRebalance()
		}
	}()
	return cs
}

func (cs *chaosConsumer) problem(format string, args ...any) {
	if len(cs.problems) < 50 {
		cs.problems = append(cs.problems, fmt.Sprintf(format, args...))
	}
}

// deliver checks and notes one record. Caller holds mu.
func (cs *chaosConsumer) deliver(r *kgo.Record, offsets map[int32]kgo.EpochOffset) {
	p, o, v := r.Partition, r.Offset, string(r.Value)
	cs.deliveries++
	s := cs.cur[p]
	switch {
	case r.Topic != chaosTopic:
		cs.problem("record of topic %s", r.Topic)
		return
	case s == nil:
		cs.problem("%d@%d delivered while partition %d was not assigned", p, o, p)
	case s.first < 0:
		// An assignment starts at the committed offset: at or after the last acknowledged
		// commit, at or before the highest offset ever committed (0 when none).
		lo, hi := max(s.ackedAtStart, 0), cs.sent[p]
		if o < lo || o > hi {
			cs.problem("partition %d: assignment %d starts at %d; last acknowledged commit before it %d, highest commit sent %d, highest offset seen %d",
				p, cs.sessionIndex(s), o, s.ackedAtStart, hi, cs.maxSeen[p])
		}
		s.first, s.last = o, o
	case o != s.last+1:
		cs.problem("partition %d: assignment %d delivered %d after %d (gap or reorder; first offset of the assignment %d)", p, cs.sessionIndex(s), o, s.last, s.first)
		s.last = o
	default:
		s.last = o
	}
	k := fgRec{p, o}
	if prev, ok := cs.seen[k]; ok && prev != v {
		cs.problem("%d@%d delivered as %q and, earlier, as %q", p, o, v, prev)
	} else if !ok {
		cs.seen[k] = v
	}
	if m, ok := cs.maxSeen[p]; !ok || o > m {
		cs.maxSeen[p] = o
	}
	offsets[p] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: o + 1}
}

func (cs *chaosConsumer) sessionIndex(s *chaosSessionRec) int {
	n := 0
	for _, x := range cs.sessions {
		if x.p == s.p {
			n++
		}
		if x == s {
			return n
		}
	}
	return -1
}

func (cs *chaosConsumer) commit(ctx context.Context, offsets map[int32]kgo.EpochOffset) {
	cs.mu.Lock()
	for p, eo := range offsets {
		cs.sent[p] = max(cs.sent[p], eo.Offset)
	}
	cs.commits++
	cs.mu.Unlock()
	cs.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{chaosTopic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			if err != nil {
				cs.commitFails++
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					eo, ok := offsets[rp.Partition]
					if !ok || rt.Topic != chaosTopic {
						continue
					}
					if rp.ErrorCode != 0 {
						cs.commitFails++
						continue
					}
					cs.acked[rp.Partition] = max(cs.acked[rp.Partition], eo.Offset)
				}
			}
		})
}

// behind says which partitions the member has not read to ends, or "".
func (cs *chaosConsumer) behind(ends map[int32]int64) string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []string
	for p := int32(0); p < chaosParts; p++ {
		m, ok := cs.maxSeen[p]
		if !ok {
			m = -1
		}
		if m+1 < ends[p] {
			out = append(out, fmt.Sprintf("%d: at %d of %d", p, m+1, ends[p]))
		}
	}
	return strings.Join(out, ", ")
}

func (cs *chaosConsumer) stop() {
	cs.once.Do(func() {
		cs.cancel()
		<-cs.done
		cs.cl.Close()
	})
}
