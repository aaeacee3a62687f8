package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// producerIDs hands out producer ids that are never reused across restarts: ids come in blocks
// whose end is written (and synced) to <data>/producer-id-block before any id of the block is
// given out, so a crash can skip ids but never repeat one.
//
// In cluster mode blocks come from the controller instead (remote), unique cluster-wide.
type producerIDs struct {
	mu     sync.Mutex
	path   string
	next   int64 // guarded by mu
	end    int64 // first id past the reserved block; guarded by mu
	remote func() (first, size int64, err error)
}

const producerIDBlock = 1000

func openProducerIDs(dir string) (*producerIDs, error) {
	p := &producerIDs{path: filepath.Join(dir, "producer-id-block")}
	raw, err := os.ReadFile(p.path)
	switch {
	case err == nil:
		n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("malformed %s", p.path)
		}
		p.next, p.end = n, n
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, err
	}
	return p, nil
}

// allocate returns a fresh producer id.
func (p *producerIDs) allocate() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.end && p.remote != nil {
		first, size, err := p.remote()
		if err != nil {
			return -1, err
		}
		p.next, p.end = first, first+size
	}
	if p.next >= p.end {
		end := p.next + producerIDBlock
		if err := writeFileAtomic(p.path, []byte(strconv.FormatInt(end, 10)+"\n")); err != nil {
			return -1, err
		}
		p.end = end
	}
	id := p.next
	p.next++
	return id, nil
}
