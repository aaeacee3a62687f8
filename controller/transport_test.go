package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// levelRecorder keeps the level of each record logged.
type levelRecorder struct{ levels []slog.Level }

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.levels = append(r.levels, rec.Level)
	return nil
}
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler      { return r }

// TestTransportShutdownIsNotAnError: Raft's transport error for a connection it was reading
// when it closed is logged at debug level; the same message with another error stays an
// error.
func TestTransportShutdownIsNotAnError(t *testing.T) {
	rec := &levelRecorder{}
	hl := newHCLogger(slog.New(rec))
	hl.Error("failed to decode incoming command", "error", raft.ErrTransportShutdown)
	hl.Error("failed to decode incoming command", "error", errors.New("unexpected EOF"))
	hl.Error("failed to make requestVote RPC", "error", raft.ErrTransportShutdown)
	want := []slog.Level{slog.LevelDebug, slog.LevelError, slog.LevelError}
	if fmt.Sprint(rec.levels) != fmt.Sprint(want) {
		t.Fatalf("levels %v, want %v", rec.levels, want)
	}
}
