package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test harness: in-process controllers on 127.0.0.1, each with its own t.TempDir(), short
// Raft timeouts. Node ids are 1..n; the tests register brokers with the same ids, as a
// combined controller+broker deployment does.

const waitFor = 15 * time.Second

// testLogWriter sends log lines to t.Log until the test ends (Raft goroutines may log a
// little after a node closes).
type testLogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	level := slog.LevelWarn
	if os.Getenv("SPATE_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// zeroRand makes every placement start at broker 0 with shift 0.
type zeroRand struct{}

func (zeroRand) IntN(int) int { return 0 }

type testNode struct {
	id   int32
	addr string
	dir  string
	c    *Controller // nil while stopped
}

type testCluster struct {
	t      *testing.T
	log    *slog.Logger
	nodes  []*testNode
	voters []Voter
	opts   []func(*Config)
}

// newCluster starts n bootstrap voters with ids 1..n.
func newCluster(t *testing.T, n int, opts ...func(*Config)) *testCluster {
	t.Helper()
	cl := &testCluster{t: t, log: testLogger(t), opts: opts}
	for i := 1; i <= n; i++ {
		nd := &testNode{id: int32(i), addr: freeAddr(t), dir: filepath.Join(t.TempDir(), "__cluster_metadata-0")}
		cl.nodes = append(cl.nodes, nd)
		cl.voters = append(cl.voters, Voter{ID: nd.id, Addr: nd.addr})
	}
	t.Cleanup(cl.closeAll)
	for _, nd := range cl.nodes {
		cl.start(nd)
	}
	return cl
}

func (cl *testCluster) config(nd *testNode) Config {
	cfg := Config{
		NodeID: nd.id, Dir: nd.dir, RaftAddr: nd.addr, BootstrapVoters: cl.voters,
		RaftHeartbeatTimeout: 250 * time.Millisecond, RaftElectionTimeout: 250 * time.Millisecond,
		RaftLeaderLeaseTimeout: 100 * time.Millisecond, RaftCommitTimeout: 5 * time.Millisecond,
		SessionTimeout: time.Minute, LeaderImbalanceCheckInterval: -1,
		Logger: cl.log, rand: zeroRand{},
	}
	for _, o := range cl.opts {
		o(&cfg)
	}
	return cfg
}

func (cl *testCluster) start(nd *testNode) {
	cl.t.Helper()
	c, err := New(cl.config(nd))
	if err != nil {
		cl.t.Fatalf("start node %d: %v", nd.id, err)
	}
	nd.c = c
}

// addNode starts a node that is not a bootstrap voter.
func (cl *testCluster) addNode(id int32) *testNode {
	nd := &testNode{id: id, addr: freeAddr(cl.t), dir: filepath.Join(cl.t.TempDir(), "__cluster_metadata-0")}
	cl.nodes = append(cl.nodes, nd)
	cl.start(nd)
	return nd
}

func (cl *testCluster) stop(nd *testNode) {
	cl.t.Helper()
	if err := nd.c.Close(); err != nil {
		cl.t.Errorf("close node %d: %v", nd.id, err)
	}
	nd.c = nil
}

func (cl *testCluster) closeAll() {
	for _, nd := range cl.nodes {
		if nd.c != nil {
			cl.stop(nd)
		}
	}
}

func (cl *testCluster) running() []*testNode {
	var out []*testNode
	for _, nd := range cl.nodes {
		if nd.c != nil {
			out = append(out, nd)
		}
	}
	return out
}

// leader waits for a ready leader among the running nodes.
func (cl *testCluster) leader() *testNode {
	cl.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for _, nd := range cl.running() {
			if nd.c.IsLeader() {
				return nd
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl.t.Fatal("no leader elected")
	return nil
}

// do runs op on the leader, retrying on another leader while it answers ErrNotLeader.
func (cl *testCluster) do(op func(c *Controller) error) {
	cl.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := op(cl.leader().c)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			cl.t.Fatalf("leader operation: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converge waits until every running node has applied what the leader has, with equal
// images, and returns the leader's.
func (cl *testCluster) converge() *Image {
	cl.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		want := cl.leader().c.Image()
		same := true
		for _, nd := range cl.running() {
			if img := nd.c.Image(); !reflect.DeepEqual(img, want) {
				same = false
				if time.Now().After(deadline) {
					cl.t.Fatalf("node %d image (index %d) differs from the leader's (index %d):\n%s\nvs\n%s",
						nd.id, img.AppliedIndex(), want.AppliedIndex(), dumpImage(img), dumpImage(want))
				}
			}
		}
		if same {
			return want
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// registerBrokers registers and unfences brokers with the given racks (nil: no rack) and
// returns their epochs.
func (cl *testCluster) registerBrokers(ids []int32, racks []*string) map[int32]int64 {
	cl.t.Helper()
	epochs := map[int32]int64{}
	for i, id := range ids {
		reg := BrokerRegistration{ID: id, IncarnationID: [16]byte{byte(id), 1},
			Endpoints: []Endpoint{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9090 + id, Protocol: "PLAINTEXT"}}}
		if racks != nil {
			reg.Rack = racks[i]
		}
		cl.do(func(c *Controller) error {
			e, err := c.RegisterBroker(ctxT(cl.t), reg)
			epochs[id] = e
			return err
		})
		cl.do(func(c *Controller) error {
			hr, err := c.Heartbeat(ctxT(cl.t), id, epochs[id], false)
			if err == nil && hr.Fenced {
				return fmt.Errorf("broker %d still fenced after a heartbeat", id)
			}
			return err
		})
	}
	return epochs
}

func (cl *testCluster) createTopics(specs ...TopicSpec) []TopicResult {
	cl.t.Helper()
	var res []TopicResult
	cl.do(func(c *Controller) error {
		var err error
		res, err = c.CreateTopics(ctxT(cl.t), specs, false)
		return err
	})
	return res
}

// heartbeater keeps brokers' sessions alive until stopped (or the broker is dropped).
type heartbeater struct {
	cl     *testCluster
	mu     sync.Mutex
	epochs map[int32]int64
	stop   chan struct{}
	done   chan struct{}
}

func (cl *testCluster) heartbeat(epochs map[int32]int64) *heartbeater {
	h := &heartbeater{cl: cl, epochs: epochs, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			h.mu.Lock()
			for id, e := range h.epochs {
				for _, nd := range cl.running() {
					if nd.c.IsLeader() {
						nd.c.Heartbeat(context.Background(), id, e, false)
					}
				}
			}
			h.mu.Unlock()
		}
	}()
	cl.t.Cleanup(h.close)
	return h
}

func (h *heartbeater) drop(id int32) {
	h.mu.Lock()
	delete(h.epochs, id)
	h.mu.Unlock()
}

func (h *heartbeater) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

func dumpImage(img *Image) string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied=%d nextPID=%d\n", img.AppliedIndex(), img.NextProducerID())
	for _, br := range img.Brokers() {
		fmt.Fprintf(&b, "broker %d epoch=%d fenced=%v\n", br.ID, br.Epoch, br.Fenced)
	}
	for _, t := range img.Topics() {
		for i, p := range t.Partitions {
			fmt.Fprintf(&b, "%s-%d %+v\n", t.Name, i, p)
		}
	}
	return b.String()
}

func strp(s string) *string { return &s }

// wantPartition fails unless the partition's state is exactly want.
func wantPartition(t *testing.T, img *Image, topic string, p int32, want PartitionState) {
	t.Helper()
	got, ok := img.Partition(topic, p)
	if !ok {
		t.Fatalf("%s-%d missing", topic, p)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s-%d = %+v, want %+v", topic, p, got, want)
	}
}
