package perf

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// cpuProfiler takes back-to-back CPU profiles of a broker (/debug/pprof/profile?seconds=N on
// its admin address) while a run lasts, so that the profile covers the run however long it
// turns out to be, and merges them into one file when stopped (`go tool pprof -proto`). The
// last chunk may run past the workload by up to one chunk, on an idle broker.
type cpuProfiler struct {
	admin    string
	chunkSec int
	path     string
	stopping chan struct{}
	done     chan struct{}
	// Invariant: written only by the profiling goroutine, read after done is closed.
	chunks []string
	err    error
}

func startCPUProfile(admin string, chunk time.Duration, path string) *cpuProfiler {
	p := &cpuProfiler{admin: admin, chunkSec: max(1, int(chunk.Round(time.Second)/time.Second)), path: path,
		stopping: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *cpuProfiler) loop() {
	defer close(p.done)
	for i := 0; ; i++ {
		chunk := fmt.Sprintf("%s.part%03d", p.path, i)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.admin, p.chunkSec)
		if err := fetch(context.Background(), url, chunk, time.Duration(p.chunkSec+30)*time.Second); err != nil {
			p.err = err
			return
		}
		p.chunks = append(p.chunks, chunk)
		select {
		case <-p.stopping:
			return
		default:
		}
	}
}

// stop waits for the chunk in flight and merges the chunks into the profiler's path.
func (p *cpuProfiler) stop() error {
	close(p.stopping)
	<-p.done
	if len(p.chunks) == 0 {
		return fmt.Errorf("cpu profile: %w", p.err)
	}
	err := mergeProfiles(p.path, p.chunks)
	if err == nil {
		for _, c := range p.chunks {
			os.Remove(c)
		}
	}
	if err == nil && p.err != nil {
		err = fmt.Errorf("cpu profile (kept %d chunks): %w", len(p.chunks), p.err)
	}
	return err
}

// mergeProfiles writes the merge of profiles to path (one profile: renamed).
func mergeProfiles(path string, parts []string) error {
	if len(parts) == 1 {
		return os.Rename(parts[0], path)
	}
	args := append([]string{"tool", "pprof", "-proto", "-output", path}, parts...)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("merge cpu profiles (chunks kept): %w: %s", err, out)
	}
	return nil
}

// fetchHeap saves the broker's heap profile (in-use and allocated, since the start).
func fetchHeap(admin, path string) error {
	return fetch(context.Background(), "http://"+admin+"/debug/pprof/heap", path, 30*time.Second)
}

// fetch GETs url into the file path.
func fetch(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("fetch %s: %s: %s", url, resp.Status, msg)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return nil
}
