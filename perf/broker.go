package perf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Broker is how to start one broker under test: a binary and its flags. It is measured from
// outside, as a process.
type Broker struct {
	Name string // label in tables and file names: "spate", "kfake"
	Bin  string // path of the binary
	// Args returns the flags that make the broker accept Kafka clients on listen, keep its
	// data in dataDir and serve /debug/pprof/ on admin.
	Args func(listen, admin, dataDir string) []string
}

// SpateBroker runs cmd/spate with its defaults, quiet but for warnings.
func SpateBroker(bin string) Broker {
	return Broker{Name: "spate", Bin: bin, Args: func(listen, admin, dataDir string) []string {
		return []string{"-listen", listen, "-admin", admin, "-data-dir", dataDir, "-log-level", "warn"}
	}}
}

// KfakeBroker runs perf/cmd/perf-kfake: kfake as a one-broker cluster persisting to dataDir.
func KfakeBroker(bin string) Broker {
	return Broker{Name: "kfake", Bin: bin, Args: func(listen, admin, dataDir string) []string {
		return []string{"-listen", listen, "-admin", admin, "-data-dir", dataDir, "-log-level", "warn"}
	}}
}

// ModuleRoot returns the folder of the main module's go.mod (as `go env GOMOD` sees it from
// the current directory).
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find module root: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// BuildBrokers builds cmd/spate and perf/cmd/perf-kfake of the module at root into dir, as
// static binaries (CGO_ENABLED=0, as `make` builds Spate), and returns their paths.
func BuildBrokers(ctx context.Context, root, dir string) (spate, kfake string, err error) {
	spate, kfake = filepath.Join(dir, "spate"), filepath.Join(dir, "perf-kfake")
	for _, b := range [][2]string{{spate, "./cmd/spate"}, {kfake, "./perf/cmd/perf-kfake"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b[0], b[1])
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("build %s: %w\n%s", b[1], err, out)
		}
	}
	return spate, kfake, nil
}

// Process is a running broker.
type Process struct {
	Broker  Broker
	Addr    string // Kafka listener, 127.0.0.1:port
	Admin   string // /debug/pprof/, 127.0.0.1:port
	DataDir string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed once the process has exited and exitErr is set
	// Invariant: written once, before exited is closed.
	exitErr error

	memMu    sync.Mutex
	peakAnon int64 // highest RssAnon sampled. Invariant: guarded by memMu.
	peakFile int64 // highest RssFile sampled. Invariant: guarded by memMu.
}

// memSampleEvery is how often a broker's RssAnon and RssFile are sampled.
const memSampleEvery = 100 * time.Millisecond

// StartBroker starts b on free loopback ports with a fresh data dir under workDir, its stdout
// and stderr going to logPath, and waits until both its ports accept connections.
func StartBroker(ctx context.Context, b Broker, workDir, logPath string) (*Process, error) {
	dataDir, err := os.MkdirTemp(workDir, "perf-"+b.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", b.Name, err)
	}
	addr, err := freePort()
	if err == nil {
		var admin string
		if admin, err = freePort(); err == nil {
			var p *Process
			if p, err = startProcess(ctx, b, addr, admin, dataDir, logPath); err == nil {
				return p, nil
			}
		}
	}
	os.RemoveAll(dataDir)
	return nil, err
}

func startProcess(ctx context.Context, b Broker, addr, admin, dataDir, logPath string) (*Process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", b.Name, err)
	}
	cmd := exec.Command(b.Bin, b.Args(addr, admin, dataDir)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", b.Name, err)
	}
	p := &Process{Broker: b, Addr: addr, Admin: admin, DataDir: dataDir, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitListening(ctx, 30*time.Second); err != nil {
		p.kill()
		log.Close()
		return nil, fmt.Errorf("start %s (log %s): %w", b.Name, logPath, err)
	}
	go p.sampleMem()
	return p, nil
}

// sampleMem keeps the highest RssAnon and RssFile of the process until it exits.
func (p *Process) sampleMem() {
	t := time.NewTicker(memSampleEvery)
	defer t.Stop()
	for {
		if m, err := ReadMemStatus(p.Pid()); err == nil {
			p.notePeaks(m.Anon, m.File)
		}
		select {
		case <-p.exited:
			return
		case <-t.C:
		}
	}
}

func (p *Process) notePeaks(anon, file int64) (peakAnon, peakFile int64) {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	p.peakAnon, p.peakFile = max(p.peakAnon, anon), max(p.peakFile, file)
	return p.peakAnon, p.peakFile
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (p *Process) waitListening(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range []string{p.Addr, p.Admin} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not listening after %v: %w", addr, timeout, err)
			}
			select {
			case <-p.exited:
				return fmt.Errorf("exited before listening: %v", p.exitErr)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Pid is the broker's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stats reads the broker's CPU time and memory from /proc.
func (p *Process) Stats() (ProcStats, error) {
	select {
	case <-p.exited:
		return ProcStats{}, fmt.Errorf("%s stats: the process has exited (%v)", p.Broker.Name, p.exitErr)
	default:
	}
	s, err := ReadProcStats(p.Pid())
	if err != nil {
		return ProcStats{}, err
	}
	s.PeakAnonBytes, s.PeakFileBytes = p.notePeaks(s.Mem.Anon, s.Mem.File)
	return s, nil
}

// Stop asks the broker to stop (SIGTERM), kills it when it has not exited after timeout,
// removes its data dir and reports how it ended.
func (p *Process) Stop(timeout time.Duration) error {
	defer os.RemoveAll(p.DataDir)
	defer p.log.Close()
	select {
	case <-p.exited:
		return fmt.Errorf("stop %s: it had already exited: %v", p.Broker.Name, p.exitErr)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.kill()
		return fmt.Errorf("stop %s: %w", p.Broker.Name, err)
	}
	select {
	case <-p.exited:
		if p.exitErr != nil {
			return fmt.Errorf("stop %s: %w", p.Broker.Name, p.exitErr)
		}
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("stop %s: still running %v after SIGTERM; killed", p.Broker.Name, timeout)
	}
}

func (p *Process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}
