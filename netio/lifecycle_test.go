package netio

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// releaseHandler answers "file" with a 32 MiB region, "bytes" with a byte
// part, "hold" not at all until the test says; every response's Release is
// counted under the request's sequence number.
type releaseHandler struct {
	f      *os.File
	size   int64
	rel    *releases
	closed chan struct{}

	mu   sync.Mutex
	conn *Conn
	held []Seq
}

func (h *releaseHandler) Serve(c *Conn, req *Request) {
	h.mu.Lock()
	h.conn = c
	h.mu.Unlock()
	r := Response{Release: h.rel.fn(int(req.Seq))}
	switch string(req.Frame) {
	case "file":
		r.AppendBytes([]byte("f"))
		r.AppendFile(h.f, 0, h.size)
	case "hold":
		h.mu.Lock()
		h.held = append(h.held, req.Seq)
		h.mu.Unlock()
		return
	default:
		r.AppendBytes(fmt.Appendf(nil, "b%d", req.Seq))
	}
	c.Reply(req.Seq, r)
}

func (h *releaseHandler) OnOpen(*Conn) {}
func (h *releaseHandler) OnClose(*Conn, error) {
	if h.closed != nil {
		close(h.closed)
	}
}

func TestReleaseCalledOncePerResponse(t *testing.T) {
	f, _ := tempFile(t, 1<<20)
	rel := &releases{n: map[int]int{}}
	h := &releaseHandler{f: f, size: 1 << 20, rel: rel}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	const n = 50
	var stream []byte
	for i := range n {
		if i%3 == 0 {
			stream = append(stream, frame([]byte("file"))...)
		} else {
			stream = append(stream, frame([]byte("bytes"))...)
		}
	}
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	for range n {
		readFrame(t, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := rel.count(i); got != 1 {
			t.Fatalf("response %d released %d times", i, got)
		}
	}
}

func TestReleaseCalledOnceWhenClientLeavesMidResponse(t *testing.T) {
	f, _ := tempFile(t, 32<<20)
	rel := &releases{n: map[int]int{}}
	h := &releaseHandler{f: f, size: 32 << 20, rel: rel, closed: make(chan struct{})}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	// 0: a 32 MiB file response, 1: a byte response queued behind it,
	// 2: unanswered until after the connection closed.
	stream := append(frame([]byte("file")), frame([]byte("bytes"))...)
	stream = append(stream, frame([]byte("hold"))...)
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "held request", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.held) == 1
	})
	_ = c.SetLinger(0)
	_ = c.Close()
	select {
	case <-h.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("server never saw the close")
	}
	waitFor(t, "releases", func() bool { return rel.count(0) == 1 && rel.count(1) == 1 })
	h.mu.Lock()
	conn := h.conn
	h.mu.Unlock()
	conn.Reply(2, Response{Release: rel.fn(2), Parts: []Part{{Bytes: []byte("late")}}})
	if got := rel.count(2); got != 1 {
		t.Fatalf("late reply released %d times, want 1 inside Reply", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := rel.count(i); got != 1 {
			t.Fatalf("response %d released %d times", i, got)
		}
	}
}

// connections.max.idle.ms: an idle connection is closed; one with an
// outstanding request is not.
func TestIdleTimeoutClosesIdleConnection(t *testing.T) {
	rel := &releases{n: map[int]int{}}
	h := &releaseHandler{rel: rel}
	s := startServer(t, Config{IdleTimeout: 100 * time.Millisecond}, h)

	busy := dial(t, s)
	if _, err := busy.Write(frame([]byte("hold"))); err != nil {
		t.Fatal(err)
	}
	idle := dial(t, s)
	start := time.Now()
	expectClosed(t, idle)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	time.Sleep(200 * time.Millisecond)
	h.mu.Lock()
	conn, held := h.conn, h.held
	h.mu.Unlock()
	if len(held) != 1 {
		t.Fatalf("held %v", held)
	}
	conn.Reply(held[0], Response{Parts: []Part{{Bytes: []byte("late")}}})
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := string(readFrame(t, busy)); got != "late" {
		t.Fatalf("busy connection: got %q", got)
	}
}

func TestMaxConnectionsRefusesExtra(t *testing.T) {
	h := &echo{}
	s := startServer(t, Config{MaxConnections: 2, NumLoops: 2}, h)
	roundTrip := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(frame([]byte("ping"))); err != nil {
			return err
		}
		var b [8]byte
		n, err := c.Read(b[:])
		if err != nil {
			return err
		}
		if !bytes.Equal(b[:n], frame([]byte("ping"))) {
			return fmt.Errorf("got %q", b[:n])
		}
		return nil
	}
	a, b := dial(t, s), dial(t, s)
	for _, c := range []net.Conn{a, b} {
		if err := roundTrip(c); err != nil {
			t.Fatal(err)
		}
	}
	expectClosed(t, dial(t, s))

	// A closed connection frees its place.
	_ = a.Close()
	waitFor(t, "a free place", func() bool {
		c := dial(t, s)
		defer c.Close()
		return roundTrip(c) == nil
	})
}

func TestStopDrainsInFlightReplies(t *testing.T) {
	var served atomic.Int32
	h := HandlerFunc(func(c *Conn, req *Request) {
		served.Add(1)
		b, seq := append([]byte(nil), req.Frame...), req.Seq
		go func() {
			time.Sleep(200 * time.Millisecond)
			c.Reply(seq, Response{Parts: []Part{{Bytes: b}}})
		}()
	})
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	for _, p := range []string{"one", "two", "three"} {
		if _, err := c.Write(frame([]byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "dispatch", func() bool { return served.Load() == 3 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, p := range []string{"one", "two", "three"} {
		if got := string(readFrame(t, c)); got != p {
			t.Fatalf("got %q want %q", got, p)
		}
	}
	expectClosed(t, c)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestConnContextAndHooks(t *testing.T) {
	h := &hooks{closed: make(chan *Conn, 1)}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if got := string(readFrame(t, c)); got != "ctx-ok "+c.LocalAddr().String() {
		t.Fatalf("got %q", got)
	}
	_ = c.Close()
	select {
	case cc := <-h.closed:
		if cc.Context() != "ctx-ok" {
			t.Fatalf("context in OnClose: %v", cc.Context())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called")
	}
}

type hooks struct{ closed chan *Conn }

func (h *hooks) OnOpen(c *Conn)             { c.SetContext("ctx-ok") }
func (h *hooks) OnClose(c *Conn, err error) { h.closed <- c }
func (h *hooks) Serve(c *Conn, req *Request) {
	msg := fmt.Sprintf("%v %v", c.Context(), c.RemoteAddr())
	c.Reply(req.Seq, Response{Parts: []Part{{Bytes: []byte(msg)}}})
}

// DESIGN.md: netio knows nothing of Kafka and imports no other spate package.
func TestNoSpateImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/spate-broker/spate/") && dep != "github.com/spate-broker/spate/netio" {
			t.Errorf("netio depends on %s", dep)
		}
	}
}

// Conn.Close from Serve closes at once: frames behind it are not served.
func TestCloseFromServeStopsDispatch(t *testing.T) {
	var calls atomic.Int32
	h := HandlerFunc(func(c *Conn, req *Request) {
		calls.Add(1)
		if string(req.Frame) == "bye" {
			c.Close()
		}
		c.NoReply(req.Seq)
	})
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	stream := append(frame([]byte("hi")), frame([]byte("bye"))...)
	stream = append(stream, frame([]byte("late"))...)
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler called %d times, want 2", n)
	}
}

// Clients that vanish at random points: every response handed to Reply is
// released exactly once, whether written, queued, in flight or late.
func TestReleaseOnceUnderAbruptDisconnects(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed)", seed)
	f, _ := tempFile(t, 4<<20)
	var (
		mu     sync.Mutex
		counts []int
	)
	newResp := func() Response {
		mu.Lock()
		defer mu.Unlock()
		id := len(counts)
		counts = append(counts, 0)
		return Response{Release: func() {
			mu.Lock()
			counts[id]++
			mu.Unlock()
		}}
	}
	h := HandlerFunc(func(c *Conn, req *Request) {
		r := newResp()
		seq := req.Seq
		switch req.Frame[0] % 4 {
		case 0:
			r.AppendBytes(make([]byte, 100))
			c.Reply(seq, r)
		case 1:
			r.AppendBytes([]byte("x"))
			r.AppendFile(f, 0, 4<<20)
			c.Reply(seq, r)
		case 2:
			r.AppendBytes(make([]byte, 3000))
			go func() {
				time.Sleep(time.Duration(seq%7) * 100 * time.Microsecond)
				c.Reply(seq, r)
			}()
		default:
			r.AppendFile(f, int64(seq), 1000)
			go c.Reply(seq, r)
		}
	})
	s := startServer(t, Config{NumLoops: 2, MaxInflight: 16}, h)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 20 {
		c := dial(t, s)
		var stream []byte
		for range 100 {
			stream = append(stream, frame([]byte{byte(rng.IntN(256))})...)
		}
		go func() { _, _ = c.Write(stream) }()
		buf := make([]byte, rng.IntN(8<<20)+1)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.ReadFull(c, buf)
		_ = c.SetLinger(0)
		_ = c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "all replies", func() bool {
		// Delayed replies may still be arriving after the connections closed.
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for _, n := range counts {
			if n == 0 {
				return false
			}
		}
		return true
	})
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range counts {
		if n != 1 {
			t.Fatalf("response %d released %d times (of %d responses)", id, n, len(counts))
		}
	}
}
