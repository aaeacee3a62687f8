package netio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Handler serves requests. Serve runs on the connection's event loop and must
// not block; it answers req.Seq with c.Reply or c.NoReply, now or later.
type Handler interface {
	Serve(c *Conn, req *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *Conn, req *Request)

// Serve calls f(c, req).
func (f HandlerFunc) Serve(c *Conn, req *Request) { f(c, req) }

// ConnHandler is optionally implemented by a Handler to see connections open
// and close. Both run on the connection's event loop. OnClose runs after the
// Release of every response that was answered and not taken by a writer;
// requests still unanswered get their Release when Reply is called.
type ConnHandler interface {
	OnOpen(c *Conn)
	OnClose(c *Conn, err error)
}

// Server is a running netio server.
type Server struct {
	cfg   Config
	h     Handler
	ch    ConnHandler // nil if h does not implement it
	epoch time.Time
	addr  net.Addr
	// pausedLimit is the most inbound bytes a paused connection may buffer.
	pausedLimit int
	// bigBytes is the capacity of the large-frame buffers held by connections (frame.go),
	// bounded by bigBudget.
	bigBytes  atomic.Int64
	bigBudget int64 // bigBudget, unless a test set it before connections came

	eng      gnet.Engine
	stopping atomic.Bool
	open     atomic.Int64   // admitted connections, for MaxConnections
	handoffs atomic.Int64   // inline writes handed to a writer goroutine
	parks    atomic.Int64   // writer waits for writability
	writevs  atomic.Int64   // writev(2) calls
	writers  sync.WaitGroup // write-token holders
	done     chan struct{}  // closed when gnet.Run returned
	runErr   error
	quit     chan struct{} // closed by Stop: ends the idle reaper
	stopOnce sync.Once

	mu    sync.Mutex
	conns map[*Conn]struct{} // open connections; guarded by mu
}

// Start listens on cfg.Addr and serves connections with h on gnet event
// loops until Stop. It returns once the listener is bound.
func Start(cfg Config, h Handler) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		h:           h,
		epoch:       time.Now(),
		pausedLimit: int(cfg.MaxRequestBytes) + 4 + gnet.MaxStreamBufferCap,
		bigBudget:   bigBudget,
		done:        make(chan struct{}),
		quit:        make(chan struct{}),
		conns:       make(map[*Conn]struct{}),
	}
	s.ch, _ = h.(ConnHandler)
	ev := &events{s: s, booted: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.runErr = gnet.Run(ev, cfg.Addr,
			gnet.WithMulticore(cfg.Multicore),
			gnet.WithNumEventLoop(eventLoops(cfg)),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReuseAddr(true),
			gnet.WithReuseAddr(true), // rebind at once after a restart (TIME_WAIT)
			gnet.WithLogger(gnetLogger{}),
		)
	}()
	select {
	case <-ev.booted:
	case <-s.done:
		if s.runErr == nil {
			s.runErr = errors.New("netio: gnet stopped before boot")
		}
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, s.runErr)
	}
	if s.cfg.IdleTimeout > 0 {
		go s.reapIdle()
	}
	return s, nil
}

// Addr returns the bound listener address (the real port when Config.Addr
// had port 0).
func (s *Server) Addr() net.Addr { return s.addr }

// Connections returns the number of open connections. Any goroutine.
func (s *Server) Connections() int64 { return s.open.Load() }

// Stop stops admitting connections and requests, waits until every
// dispatched request has been answered and written (bounded by ctx), then
// closes every connection and the listener and waits for the event loops and
// writers to finish (bounded by ctx). It returns ctx.Err() if ctx ended
// first; the connections are closed either way. gnet cannot close its
// listener early, so until the drain ends new connections are accepted and
// closed at once; frames not yet dispatched are never served.
func (s *Server) Stop(ctx context.Context) error {
	s.stopping.Store(true)
	err := s.waitDrained(ctx)
	s.stopOnce.Do(func() {
		close(s.quit)
		// A cancelled context makes gnet start its shutdown without
		// polling for its end; s.done tells the end.
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.eng.Stop(cancelled)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	writersDone := make(chan struct{})
	go func() {
		s.writers.Wait()
		close(writersDone)
	}()
	select {
	case <-writersDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

func (s *Server) waitDrained(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !s.drained() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func (s *Server) drained() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.mu.Lock()
		ok := c.drainedLocked()
		c.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// now is a monotonic clock for idle expiry.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// reapIdle closes connections idle for IdleTimeout.
func (s *Server) reapIdle() {
	period := min(max(s.cfg.IdleTimeout/10, 10*time.Millisecond), 5*time.Second)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var idle []*Conn
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		deadline := s.now() - int64(s.cfg.IdleTimeout)
		idle = idle[:0]
		s.mu.Lock()
		for c := range s.conns {
			if c.lastActive.Load() > deadline {
				continue
			}
			c.mu.Lock()
			if c.seqNext == c.seqDone {
				idle = append(idle, c)
			}
			c.mu.Unlock()
		}
		s.mu.Unlock()
		for _, c := range idle {
			c.Close()
		}
		clear(idle)
	}
}

// events is the gnet event handler; its methods run on event loops.
type events struct {
	gnet.BuiltinEventEngine
	s      *Server
	booted chan struct{}
}

func (ev *events) OnBoot(eng gnet.Engine) gnet.Action {
	s := ev.s
	s.eng = eng
	addr, err := listenAddr(eng)
	if err != nil {
		slog.Warn("netio: listener address", "err", err)
	}
	s.addr = addr
	close(ev.booted)
	return gnet.None
}

func listenAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}, nil
	}
	return nil, fmt.Errorf("unexpected socket address %T", sa)
}

func (ev *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := ev.s
	if s.stopping.Load() {
		return nil, gnet.Close
	}
	if n := s.open.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		s.open.Add(-1)
		return nil, gnet.Close
	}
	c, err := newConn(s, gc)
	if err != nil {
		s.open.Add(-1)
		slog.Warn("netio: open connection", "remote", gc.RemoteAddr(), "err", err)
		return nil, gnet.Close
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	gc.SetContext(c)
	if s.ch != nil {
		s.ch.OnOpen(c)
	}
	return nil, gnet.None
}

func (ev *events) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.None // refused in OnOpen
	}
	s := ev.s
	c.onClose()
	c.closeBig()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.open.Add(-1)
	if s.ch != nil {
		s.ch.OnClose(c, err)
	}
	return gnet.None
}

// OnTraffic frames the inbound buffer and dispatches every whole frame; the answers given
// meanwhile are written together at the end (Conn.endBatch).
func (ev *events) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.Close
	}
	c.touch()
	c.beginBatch()
	act := ev.dispatch(c, gc)
	c.endBatch()
	return act
}

func (ev *events) dispatch(c *Conn, gc gnet.Conn) gnet.Action {
	s := ev.s
	for {
		if c.big.buf != nil {
			// A large frame is being read into its own buffer (frame.go).
			frame, act, ready := c.fillBig(gc)
			if !ready {
				return act
			}
			seq, res := c.admit()
			switch res {
			case admitClosed:
				return gnet.Close
			case admitPaused:
				return gnet.None // the frame waits, complete, for the resume's wake-up
			}
			c.req = Request{Seq: seq, Frame: frame, chunks: c.big.crcs}
			s.h.Serve(c, &c.req)
			c.req = Request{}
			c.doneBig()
			continue
		}
		buffered := gc.InboundBuffered()
		if buffered < 4 {
			return gnet.None
		}
		hdr, err := gc.Peek(4)
		if err != nil {
			return gnet.None
		}
		size := int32(binary.BigEndian.Uint32(hdr))
		if size < 0 || size > s.cfg.MaxRequestBytes {
			return gnet.Close
		}
		total := 4 + int(size)
		if buffered < total {
			if total >= bigFrameMin && c.startBig(total) {
				continue
			}
			return gnet.None
		}
		seq, res := c.admit()
		switch res {
		case admitClosed:
			return gnet.Close
		case admitPaused:
			if buffered > s.pausedLimit {
				return gnet.Close
			}
			return gnet.None
		}
		frame, err := gc.Peek(total)
		if err != nil {
			panic("BUG: netio: buffered frame cannot be peeked")
		}
		c.req = Request{Seq: seq, Frame: frame[4:total:total]}
		s.h.Serve(c, &c.req)
		c.req = Request{}
		_, _ = gc.Discard(total)
	}
}

// gnetLogger passes gnet's warnings and errors to slog and drops the rest.
type gnetLogger struct{}

func (gnetLogger) Debugf(string, ...any) {}
func (gnetLogger) Infof(string, ...any)  {}
func (gnetLogger) Warnf(format string, args ...any) {
	slog.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (gnetLogger) Errorf(format string, args ...any) {
	slog.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (gnetLogger) Fatalf(format string, args ...any) {
	slog.Error("gnet: FATAL: " + fmt.Sprintf(format, args...))
}
