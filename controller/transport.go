package controller

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// errTransportClosing answers a heartbeat that arrives while the controller closes.
var errTransportClosing = errors.New("controller: closing")

// guardedTransport is Raft's TCP transport with its heartbeat fast path fenced off from the
// stores' closing.
//
// raft.NetworkTransport runs heartbeats on its connection goroutines, straight into
// Raft's appendEntries, which panics when the log or stable store fails — and neither
// Raft.Shutdown nor NetworkTransport.Close waits for those goroutines. So a heartbeat that
// raced the shutdown used to find the bbolt file closed and take the process down.
// fence stops new heartbeats (they are answered with an error) and waits for the ones
// running; only then may the stores close.
type guardedTransport struct {
	*raft.NetworkTransport

	mu     sync.RWMutex // held for reading while a heartbeat runs; fence takes it to write
	fenced bool         // guarded by mu
}

// SetHeartbeatHandler implements raft.Transport; Raft calls it once from NewRaft.
func (t *guardedTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(t.guard(cb))
}

// guard wraps a heartbeat handler so that it runs only before fence.
func (t *guardedTransport) guard(cb func(rpc raft.RPC)) func(rpc raft.RPC) {
	return func(rpc raft.RPC) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.fenced {
			rpc.Respond(nil, errTransportClosing)
			return
		}
		cb(rpc)
	}
}

// fence makes every later heartbeat fail and returns once none is running. Call it after
// Raft.Shutdown and before closing the stores.
func (t *guardedTransport) fence() {
	t.mu.Lock()
	t.fenced = true
	t.mu.Unlock()
}
