package main

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterControllerOnlyProcessesKill9ActiveController: six processes, three
// controller-only (-process-roles controller, the voters) and three broker-only. Clients
// know only the brokers. An idempotent acks=all producer runs while the active controller
// (found with DescribeCluster on a controller's listener) is killed with SIGKILL: another
// controller takes over, the brokers carry on, a topic is created after the failover, and
// the killed controller comes back. Every acknowledged record is read back exactly once
// and in order per key; Metadata lists only the brokers.
func TestClusterControllerOnlyProcessesKill9ActiveController(t *testing.T) {
	const n = 6
	pc := &procCluster{t: t, bin: spateBinary(t), cmds: make([]*exec.Cmd, n)}
	var vs, ctlAddrs, brokerAddrs []string
	for i := 0; i < n; i++ {
		pc.addrs = append(pc.addrs, freeAddr(t))
		pc.dirs = append(pc.dirs, t.TempDir())
	}
	for i := 0; i < 3; i++ {
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, freeAddr(t)))
		ctlAddrs = append(ctlAddrs, pc.addrs[i])
		brokerAddrs = append(brokerAddrs, pc.addrs[i+3])
	}
	pc.voters = strings.Join(vs, ",")
	raftAddrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	pc.extraArgs = func(i int) []string {
		if i < 3 {
			return []string{"-process-roles", "controller"}
		}
		return []string{"-process-roles", "broker", "-controller-listen", raftAddrs[i-3],
			"-controller-bootstrap-servers", strings.Join(ctlAddrs, ",")}
	}
	t.Cleanup(func() {
		for i := range pc.cmds {
			pc.kill(i)
		}
	})
	for i := 0; i < n; i++ {
		pc.start(i)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddrs...), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopic := func(topic string, parts int32) {
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
	const topic = "ctl-only-kill9"
	createTopic(topic, 6)
	pc.waitISR(adm, topic, 3, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	md, err := adm.Metadata(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if ids := md.Brokers.NodeIDs(); fmt.Sprint(ids) != "[4 5 6]" || md.Controller < 4 {
		t.Fatalf("Metadata: brokers %v, controller %d; want brokers [4 5 6] and a broker as controller", ids, md.Controller)
	}
	activeController := func(addr string) int32 {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.SetVersion(1)
		req.EndpointType = 2
		resp := txkRaw[*kmsg.DescribeClusterResponse](t, addr, req)
		if resp.ErrorCode != 0 || len(resp.Brokers) != 3 {
			t.Fatalf("DescribeCluster(CONTROLLER) from %s: %+v", addr, resp)
		}
		return resp.ControllerID
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokerAddrs...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("k%02d", seq%24)
			prod.Produce(context.Background(), &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf("%s:%06d", key, seq))}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[string(r.Value)] = true
					mu.Unlock()
				}
			})
			time.Sleep(500 * time.Microsecond)
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitAcks := func(want int) {
		deadline := time.Now().Add(60 * time.Second)
		for count() < want {
			if time.Now().After(deadline) {
				t.Fatalf("only %d acknowledged, want %d", count(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitAcks(500)

	killed := activeController(ctlAddrs[0])
	if killed < 1 || killed > 3 {
		t.Fatalf("active controller %d is not a controller-only node", killed)
	}
	t.Logf("killing the active controller %d with %d acknowledged", killed, count())
	pc.kill(int(killed - 1))
	survivor := ctlAddrs[int(killed)%3]
	deadline := time.Now().Add(30 * time.Second)
	for {
		if next := activeController(survivor); next >= 1 && next != killed {
			t.Logf("node %d is the active controller", next)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new active controller")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitAcks(count() + 500)
	createTopic(topic+"-after", 2)
	pc.waitISR(adm, topic+"-after", 3, 30*time.Second)
	pc.start(int(killed - 1))
	waitAcks(count() + 500)
	close(stop)
	<-done
	if err := prod.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Read everything back.
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokerAddrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	seen := map[string]int{}
	last := map[string]int{}
	var total int
	deadline = time.Now().Add(60 * time.Second)
	for total < want || len(seen) < want {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d records (%d distinct), want every one of %d acknowledged", total, len(seen), want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cons.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			total++
			v := string(r.Value)
			seen[v]++
			k, seqs, _ := strings.Cut(v, ":")
			seq, _ := strconv.Atoi(seqs)
			if p, ok := last[k]; ok && seq <= p {
				t.Errorf("key %s: %d after %d", k, seq, p)
			}
			last[k] = seq
		})
	}
	var missing []string
	for v := range acked {
		if seen[v] == 0 {
			missing = append(missing, v)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged records lost, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for v, c := range seen {
		if c > 1 {
			t.Fatalf("record %s read %d times", v, c)
		}
	}
	t.Logf("%d acknowledged records read back exactly once", want)
}
