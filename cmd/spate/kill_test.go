package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// buildSpate builds this command into a temp dir once per test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func spateBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "spate-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "spate")
		out, err := exec.Command("go", "build", "-race", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs the broker binary and waits until it accepts connections.
func startProcess(t *testing.T, bin, dataDir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-data-dir", dataDir, "-listen", addr, "-admin", "", "-log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("broker did not start on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKill9KeepsEveryAcknowledgedRecord: an idempotent acks=all producer runs while the broker
// process is killed with SIGKILL and restarted; afterwards every acknowledged record is read
// back exactly once. (acks=all on a single node means the batch is in the log's page cache:
// it survives the death of the process; surviving the machine takes flush.messages/flush.ms.)
func TestKill9KeepsEveryAcknowledgedRecord(t *testing.T) {
	bin := spateBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := startProcess(t, bin, dir, addr)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic("kill9"), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(1<<30),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ProducerLinger(time.Millisecond), kgo.RequestTimeoutOverhead(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const total = 6000
	for i := 0; i < total; i++ {
		v := strconv.Itoa(i)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 8)), Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err == nil {
				mu.Lock()
				acked[string(r.Value)] = true
				mu.Unlock()
			}
		})
		if i == total/3 {
			// Kill mid-load, once some records were acknowledged.
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n > 200 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			cmd = startProcess(t, bin, dir, addr)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("produces did not finish")
	}
	cancel()
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()
	if nAcked != total {
		t.Fatalf("%d of %d records acknowledged (retries should have carried every one)", nAcked, total)
	}
	// Read everything back: each acknowledged value exactly once.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("kill9"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	for len(seen) < total {
		fs := consumer.PollFetches(rctx)
		if rctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Fatalf("acknowledged record %s read %d times", v, seen[v])
		}
	}
	if len(seen) != total {
		t.Fatalf("read %d distinct records, want %d", len(seen), total)
	}
}

// TestSigtermStopsCleanlyAndKeepsData: SIGTERM stops the broker with exit status 0 after
// flushing; a restart finds every record, and /metrics answered while it ran.
func TestSigtermStopsCleanlyAndKeepsData(t *testing.T) {
	bin := spateBinary(t)
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "-data-dir", dir, "-listen", addr, "-admin", adminAddr, "-log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitListening(t, addr)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("term"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "spate_connections ") || !strings.Contains(string(body), `spate_partition_log_end_offset{topic="term",partition="0"} 100`) {
		t.Fatalf("metrics:\n%s", body)
	}
	cl.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	cmd = startProcess(t, bin, dir, addr)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("term"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < 100 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, v)
		}
	}
	if len(got) != 100 {
		t.Fatalf("read %d records after restart, want 100", len(got))
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}
