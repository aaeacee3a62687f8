package compat

// A broker as a separate process (the spate command), for tests that kill it with SIGKILL:
// the command is built once per test binary, and each process serves on a free loopback port
// behind a tracing proxy that outlives its restarts (the broker advertises the proxy).

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var spateBuild struct {
	sync.Once
	path string
	err  error
}

// spateBinary builds ./cmd/spate (with -race, whose packages the race-built test binary
// already compiled) into a temp dir once per test binary.
func spateBinary(t *testing.T) string {
	t.Helper()
	spateBuild.Do(func() {
		dir, err := os.MkdirTemp("", "compat-spate-bin")
		if err != nil {
			spateBuild.err = err
			return
		}
		spateBuild.path = filepath.Join(dir, "spate")
		cmd := exec.Command("go", "build", "-race", "-o", spateBuild.path, "github.com/spate-broker/spate/cmd/spate")
		if out, err := cmd.CombinedOutput(); err != nil {
			spateBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if spateBuild.err != nil {
		t.Fatal(spateBuild.err)
	}
	return spateBuild.path
}

// spateProcess is a broker process on a data folder, restartable on the same port.
type spateProcess struct {
	t      *testing.T
	bin    string
	dir    string
	listen string // the broker's own address
	addr   string // the proxy's: what clients dial and the broker advertises
	args   []string
	trace  *tracer
	cmd    *exec.Cmd
}

// startSpateProcess starts the broker with group timers for tests (initial rebalance delay
// 100 ms) and extra flags; it is killed at the end of the test.
func startSpateProcess(t *testing.T, extra ...string) *spateProcess {
	t.Helper()
	tr, err := newTracer(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	p := &spateProcess{t: t, bin: spateBinary(t), dir: t.TempDir(), listen: listen, addr: tr.addr(), trace: tr,
		args: append([]string{"-group-initial-rebalance-delay", "100ms", "-offsets-topic-partitions", "4"}, extra...)}
	tr.serve(listen)
	t.Cleanup(func() {
		p.kill()
		tr.close()
		tr.report(t)
	})
	p.start()
	return p
}

// start runs the broker and waits until it accepts connections.
func (p *spateProcess) start() {
	p.t.Helper()
	level := "warn"
	if debugLevel() > 0 {
		level = "debug"
	}
	args := append([]string{"-data-dir", p.dir, "-listen", p.listen, "-advertised", p.addr, "-admin", "", "-log-level", level}, p.args...)
	cmd := exec.Command(p.bin, args...)
	cmd.Stderr = os.Stderr
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", p.listen)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.kill()
			p.t.Fatalf("broker did not start on %s", p.listen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL (a no-op when the broker is not running) and waits for the process.
func (p *spateProcess) kill() {
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		p.cmd = nil
	}
}

// stop sends SIGTERM and checks that the broker exits cleanly (status 0: also no race report).
func (p *spateProcess) stop() {
	p.t.Helper()
	if p.cmd == nil {
		return
	}
	cmd := p.cmd
	p.cmd = nil
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Fatalf("broker exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		p.t.Fatal("broker did not exit within 30 s of SIGTERM")
	}
}

// restart stops the broker — with SIGKILL when kill9, else SIGTERM — and starts it again on
// the same folder and port.
func (p *spateProcess) restart(kill9 bool) {
	p.t.Helper()
	if kill9 {
		p.kill()
	} else {
		p.stop()
	}
	p.start()
}
