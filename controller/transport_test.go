package controller

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestGuardedTransportFenceWaitsForHeartbeats checks the shutdown order the stores rely on:
// fence returns only after a running heartbeat finished, and a later heartbeat is answered
// with an error without reaching Raft.
func TestGuardedTransportFenceWaitsForHeartbeats(t *testing.T) {
	gt := &guardedTransport{}
	var calls atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	h := gt.guard(func(rpc raft.RPC) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})

	first := make(chan raft.RPCResponse, 1)
	go h(raft.RPC{Command: &raft.AppendEntriesRequest{}, RespChan: first})
	<-entered

	fenced := make(chan struct{})
	go func() { gt.fence(); close(fenced) }()
	select {
	case <-fenced:
		t.Fatal("fence returned while a heartbeat was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-fenced:
	case <-time.After(5 * time.Second):
		t.Fatal("fence did not return after the heartbeat finished")
	}
	if r := <-first; r.Error != nil || !r.Response.(*raft.AppendEntriesResponse).Success {
		t.Fatalf("first heartbeat answered %+v, want success", r)
	}

	later := make(chan raft.RPCResponse, 1)
	h(raft.RPC{Command: &raft.AppendEntriesRequest{}, RespChan: later})
	if r := <-later; !errors.Is(r.Error, errTransportClosing) {
		t.Fatalf("heartbeat after fence answered %+v, want %v", r, errTransportClosing)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}
