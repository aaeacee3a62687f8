//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// procCluster is a cluster of spate processes (combined controller+broker nodes) on
// loopback ports, each with its own data folder.
type procCluster struct {
	t      *testing.T
	bin    string
	addrs  []string // Kafka listeners
	dirs   []string
	voters string
	cmds   []*exec.Cmd

	// Optional, set before the nodes start (cluster_chaos_test.go): per node, the Kafka
	// address advertised to clients and brokers (a proxy), the Raft listen address and the
	// Raft address advertised to peers (the voters then name proxies), and where the node's
	// stderr goes (default os.Stderr).
	advertised     []string
	raftListen     []string
	raftAdvertised []string
	stderr         func(i int) io.Writer
	// extraArgs, when set, adds flags to node i's command line.
	extraArgs func(i int) []string
}

func startProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	pc := &procCluster{t: t, bin: spateBinary(t), cmds: make([]*exec.Cmd, n)}
	var vs []string
	for i := 0; i < n; i++ {
		pc.addrs = append(pc.addrs, freeAddr(t))
		pc.dirs = append(pc.dirs, t.TempDir())
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, freeAddr(t)))
	}
	pc.voters = strings.Join(vs, ",")
	for i := 0; i < n; i++ {
		pc.start(i)
	}
	t.Cleanup(func() {
		for i := range pc.cmds {
			pc.kill(i)
		}
	})
	return pc
}

func (pc *procCluster) start(i int) {
	pc.t.Helper()
	level := "warn"
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		level = "info"
	}
	cmd := exec.Command(pc.bin, "-node-id", strconv.Itoa(i+1), "-data-dir", pc.dirs[i], "-listen", pc.addrs[i], "-admin", "",
		"-log-level", level, "-controller-quorum-voters", pc.voters, "-broker-session-timeout", "2s",
		"-replica-lag-time-max", "3s", "-default-replication-factor", "3", "-group-initial-rebalance-delay", "0s",
		"-offsets-topic-partitions", "6")
	if pc.advertised != nil {
		cmd.Args = append(cmd.Args, "-advertised", pc.advertised[i])
	}
	if pc.raftListen != nil {
		cmd.Args = append(cmd.Args, "-controller-listen", pc.raftListen[i])
	}
	if pc.raftAdvertised != nil {
		cmd.Args = append(cmd.Args, "-controller-advertised", pc.raftAdvertised[i])
	}
	if pc.extraArgs != nil {
		cmd.Args = append(cmd.Args, pc.extraArgs(i)...)
	}
	cmd.Stderr = os.Stderr
	if pc.stderr != nil {
		cmd.Stderr = pc.stderr(i)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pc.t.Fatal(err)
	}
	pc.cmds[i] = cmd
	waitListening(pc.t, pc.addrs[i])
}

// kill sends SIGKILL to node i (a no-op when it is not running).
func (pc *procCluster) kill(i int) {
	if c := pc.cmds[i]; c != nil {
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		pc.cmds[i] = nil
	}
}

// stop ends node i with SIGTERM (controlled shutdown) and waits for it.
func (pc *procCluster) stop(i int) {
	if c := pc.cmds[i]; c != nil {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
		pc.cmds[i] = nil
	}
}

// seeds are the addresses clients bootstrap from: the advertised ones.
func (pc *procCluster) seeds() []string {
	if pc.advertised != nil {
		return pc.advertised
	}
	return pc.addrs
}

func (pc *procCluster) admin() *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(pc.seeds()...), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		pc.t.Fatal(err)
	}
	pc.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// waitISR waits until every partition of topic has a leader and an ISR of want.
func (pc *procCluster) waitISR(adm *kadm.Client, topic string, want int, timeout time.Duration) kadm.TopicDetail {
	pc.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := adm.Metadata(ctx, topic)
		cancel()
		if err == nil {
			td := md.Topics[topic]
			ok := td.Err == nil && len(td.Partitions) > 0
			for _, p := range td.Partitions {
				if p.Leader < 0 || len(p.ISR) != want {
					ok = false
				}
			}
			if ok {
				return td
			}
			last = fmt.Sprintf("%+v", td.Partitions)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			pc.t.Fatalf("%s: no ISR of %d after %v: %s", topic, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logBytes concatenates a partition's segment files on node i (the node is stopped).
func (pc *procCluster) logBytes(i int, topic string, p int32) []byte {
	dir := filepath.Join(pc.dirs[i], fmt.Sprintf("%s-%d", topic, p))
	names, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(names)
	var out []byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			pc.t.Fatal(err)
		}
		out = append(out, bytes.TrimRight(b, "\x00")...) // preallocated tails are zeros
	}
	return out
}

// TestClusterKill9LeaderNoAcknowledgedLoss: three spate processes; a topic of 6 partitions
// with replication factor 3 and min.insync.replicas=2; an idempotent acks=all producer runs
// throughout while the leader of partition 0 is killed with SIGKILL and restarted, then the
// active controller is killed and restarted. At the end every acknowledged record is read
// back exactly once, in order per key, and after a clean stop every replica's log holds the
// same bytes as the others up to the shortest of them.
func TestClusterKill9LeaderNoAcknowledgedLoss(t *testing.T) {
	pc := startProcCluster(t, 3)
	adm := pc.admin()
	const topic, parts = "cluster-kill9", int32(6)
	createRF3Topic(t, adm, topic, parts)
	td := pc.waitISR(adm, topic, 3, 20*time.Second)
	prod := startAckedProducer(t, pc.addrs, topic)
	prod.waitAcks(500)

	var leader0 int32
	for _, p := range td.Partitions {
		if p.Partition == 0 {
			leader0 = p.Leader
		}
	}
	t.Logf("killing node %d (leader of partition 0) with %d acknowledged", leader0, prod.count())
	pc.kill(int(leader0 - 1))
	prod.waitAcks(prod.count() + 500) // production goes on with the other two
	pc.start(int(leader0 - 1))
	pc.waitISR(adm, topic, 3, 30*time.Second)

	ctl := int32(-1)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	if md, err := adm.BrokerMetadata(ctx2); err == nil {
		ctl = md.Controller
	}
	cancel2()
	if ctl < 1 {
		t.Fatalf("no active controller reported")
	}
	t.Logf("killing node %d (active controller) with %d acknowledged", ctl, prod.count())
	pc.kill(int(ctl - 1))
	prod.waitAcks(prod.count() + 500)
	pc.start(int(ctl - 1))
	pc.waitISR(adm, topic, 3, 30*time.Second)
	prod.waitAcks(prod.count() + 200)
	acked, failed := prod.finish()
	read := readBackExactlyOnce(t, pc.addrs, topic, acked)
	t.Logf("%d acknowledged, %d failed sends, %d read", len(acked), failed, read)

	// Replicas agree byte for byte up to the shortest log.
	for i := range pc.cmds {
		pc.stop(i)
	}
	for p := int32(0); p < parts; p++ {
		logs := [][]byte{pc.logBytes(0, topic, p), pc.logBytes(1, topic, p), pc.logBytes(2, topic, p)}
		short := min(len(logs[0]), len(logs[1]), len(logs[2]))
		if short == 0 {
			t.Fatalf("partition %d: a replica is empty (%d %d %d bytes)", p, len(logs[0]), len(logs[1]), len(logs[2]))
		}
		for i := 1; i < 3; i++ {
			if !bytes.Equal(logs[0][:short], logs[i][:short]) {
				t.Fatalf("partition %d: replica on node %d differs from node 1 within the first %d bytes", p, i+1, short)
			}
		}
	}
}

// createRF3Topic creates topic with replication factor 3 and min.insync.replicas=2,
// retrying until the cluster takes it (30 s).
func createRF3Topic(t *testing.T, adm *kadm.Client, topic string, parts int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := adm.CreateTopic(ctx, parts, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
		if err == nil && resp.Err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ackedProducer is an idempotent acks=all producer of values "key:seq" (24 keys, a record
// every 0.5 ms) that records every acknowledged value, until finish.
type ackedProducer struct {
	t          *testing.T
	cl         *kgo.Client
	mu         sync.Mutex
	acked      map[string]bool // guarded by mu
	failed     int             // guarded by mu
	stop, done chan struct{}
}

func startAckedProducer(t *testing.T, seeds []string, topic string) *ackedProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p := &ackedProducer{t: t, cl: cl, acked: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for seq := 0; ; seq++ {
			select {
			case <-p.stop:
				return
			default:
			}
			key := fmt.Sprintf("k%02d", seq%24)
			val := fmt.Sprintf("%s:%06d", key, seq)
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(key), Value: []byte(val)}, func(r *kgo.Record, err error) {
				p.mu.Lock()
				defer p.mu.Unlock()
				if err != nil {
					p.failed++
					return
				}
				p.acked[string(r.Value)] = true
			})
			time.Sleep(500 * time.Microsecond)
		}
	}()
	return p
}

func (p *ackedProducer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// waitAcks waits (60 s at most) until n records are acknowledged.
func (p *ackedProducer) waitAcks(n int) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for p.count() < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("only %d acknowledged, want %d", p.count(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish stops producing, waits for every record sent to be answered and returns the
// acknowledged values and the number of failed sends.
func (p *ackedProducer) finish() (map[string]bool, int) {
	p.t.Helper()
	close(p.stop)
	<-p.done
	if err := p.cl.Flush(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.failed
}

// readBackExactlyOnce reads topic from the start until every acknowledged value was seen (60
// s at most) and fails on a value read twice or a key's sequence numbers not increasing. It
// returns the number of distinct values read.
func readBackExactlyOnce(t *testing.T, seeds []string, topic string, acked map[string]bool) int {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	lastSeq := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		missing := 0
		for v := range acked {
			if seen[v] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d acknowledged records never read back (of %d)", missing, len(acked))
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			seen[v]++
			key, seqs, _ := strings.Cut(v, ":")
			seq, _ := strconv.Atoi(seqs)
			if prev, ok := lastSeq[key]; ok && seq <= prev {
				t.Errorf("key %s: %d after %d (out of order or duplicated)", key, seq, prev)
			}
			lastSeq[key] = seq
		})
	}
	for v, c := range seen {
		if c != 1 {
			t.Errorf("%s read %d times", v, c)
		}
	}
	return len(seen)
}
