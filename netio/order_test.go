package netio

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted answers by the frame's text: "slow:MS" replies from a goroutine
// after MS milliseconds, "fast" replies from a goroutine at once, "none"
// answers NoReply from a goroutine, "hold" keeps the request for the test.
type scripted struct {
	mu      sync.Mutex
	replied []Seq // order of Reply calls
	held    []Seq
}

func (h *scripted) Serve(c *Conn, req *Request) {
	text := string(req.Frame)
	seq := req.Seq
	reply := func() {
		h.mu.Lock()
		h.replied = append(h.replied, seq)
		h.mu.Unlock()
		c.Reply(seq, Response{Parts: []Part{{Bytes: []byte(fmt.Sprintf("%d:%s", seq, text))}}})
	}
	switch {
	case strings.HasPrefix(text, "slow:"):
		ms, _ := strconv.Atoi(text[5:])
		go func() {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			reply()
		}()
	case text == "fast":
		go reply()
	case text == "none":
		go c.NoReply(seq)
	case text == "hold":
		h.mu.Lock()
		h.held = append(h.held, seq)
		h.mu.Unlock()
	default:
		reply()
	}
}

func (h *scripted) replyOrder() []Seq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Seq(nil), h.replied...)
}

func TestRepliesLeaveInRequestOrder(t *testing.T) {
	h := &scripted{}
	s := startServer(t, Config{Multicore: true}, h)
	c := dial(t, s)

	reqs := []string{"slow:150", "fast", "none", "fast", "slow:40", "none", "sync", "fast"}
	var stream []byte
	for _, r := range reqs {
		stream = append(stream, frame([]byte(r))...)
	}
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	for seq, r := range reqs {
		if r == "none" {
			continue
		}
		want := fmt.Sprintf("%d:%s", seq, r)
		if got := string(readFrame(t, c)); got != want {
			t.Fatalf("got response %q, want %q", got, want)
		}
	}
	// The replies really completed out of order.
	order := h.replyOrder()
	if len(order) == 0 || order[len(order)-1] != 0 {
		t.Fatalf("reply order %v: request 0 should have been answered last", order)
	}
}

func TestNoReplyDoesNotBlockLaterResponses(t *testing.T) {
	h := &scripted{}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	for _, r := range []string{"none", "none", "fast", "none", "sync"} {
		if _, err := c.Write(frame([]byte(r))); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := string(readFrame(t, c)); got != "2:fast" {
		t.Fatalf("got %q", got)
	}
	if got := string(readFrame(t, c)); got != "4:sync" {
		t.Fatalf("got %q", got)
	}
}

// A client cannot queue more than MaxInflight unanswered requests: further
// frames wait in the buffer until answers are written.
func TestInflightBoundPausesDispatch(t *testing.T) {
	const inflight, total = 4, 20
	h := &scripted{}
	var conn *Conn
	var connMu sync.Mutex
	hh := HandlerFunc(func(c *Conn, req *Request) {
		connMu.Lock()
		conn = c
		connMu.Unlock()
		h.Serve(c, req)
	})
	s := startServer(t, Config{MaxInflight: inflight}, hh)
	c := dial(t, s)
	var stream []byte
	for range total {
		stream = append(stream, frame([]byte("hold"))...)
	}
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	held := func() []Seq {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]Seq(nil), h.held...)
	}
	waitFor(t, "first requests", func() bool { return len(held()) == inflight })
	time.Sleep(50 * time.Millisecond)
	if n := len(held()); n != inflight {
		t.Fatalf("%d requests dispatched, bound is %d", n, inflight)
	}
	connMu.Lock()
	cc := conn
	connMu.Unlock()
	answered := 0
	for answered < total {
		waitFor(t, "more requests", func() bool { return len(held()) > answered })
		for _, seq := range held()[answered:] {
			cc.Reply(seq, Response{Parts: []Part{{Bytes: []byte(strconv.Itoa(int(seq)))}}})
			answered++
		}
		if n := len(held()); n-answered > inflight {
			t.Fatalf("%d outstanding, bound is %d", n-answered, inflight)
		}
	}
	for i := range total {
		if got := string(readFrame(t, c)); got != strconv.Itoa(i) {
			t.Fatalf("response %d: got %q", i, got)
		}
	}
}

// While dispatch is paused, gnet still reads; the unread bytes a paused
// connection may hold are bounded, past that it is closed.
func TestPausedConnectionBufferIsBounded(t *testing.T) {
	const maxBytes = 1024
	h := &scripted{}
	s := startServer(t, Config{MaxInflight: 1, MaxRequestBytes: maxBytes}, h)
	c := dial(t, s)
	hold := frame([]byte("hold"))
	big := frame(make([]byte, maxBytes))
	stream := append([]byte(nil), hold...)
	for len(stream) < s.pausedLimit+len(big) {
		stream = append(stream, big...)
	}
	go func() { _, _ = c.Write(stream) }()
	expectClosed(t, c)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) != 1 {
		t.Fatalf("%d requests dispatched, want 1", len(h.held))
	}
}

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: time)")

// Random mixes of synchronous, delayed, NoReply and file responses on
// several connections at once all come out in request order, byte-exact.
func TestRandomRepliesKeepRequestOrder(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed)", seed)
	f, data := tempFile(t, 1<<20)
	h := HandlerFunc(func(c *Conn, req *Request) {
		kind, off, n := req.Frame[0], binary.BigEndian.Uint32(req.Frame[1:]), binary.BigEndian.Uint32(req.Frame[5:])
		delay := time.Duration(req.Frame[9]) * 20 * time.Microsecond
		seq := req.Seq
		var r Response
		switch kind {
		case 'n':
			go c.NoReply(seq)
			return
		case 'f':
			r.AppendBytes(binary.BigEndian.AppendUint64(nil, uint64(seq)))
			r.AppendFile(f, int64(off), int64(n))
			r.AppendBytes([]byte{'!'})
		default:
			r.AppendBytes(binary.BigEndian.AppendUint64(nil, uint64(seq)))
			r.AppendBytes(bytes.Repeat([]byte{byte(seq)}, int(n%5000)))
		}
		if kind == 's' {
			c.Reply(seq, r)
			return
		}
		go func() {
			time.Sleep(delay)
			c.Reply(seq, r)
		}()
	})
	s := startServer(t, Config{NumLoops: 2, MaxInflight: 8}, h)
	var wg sync.WaitGroup
	for conn := range 3 {
		rng := rand.New(rand.NewPCG(seed, uint64(conn)))
		c := dial(t, s)
		var stream, want []byte
		for seq := range 300 {
			kind := "snbf"[rng.IntN(4)]
			off := uint32(rng.IntN(len(data)))
			n := uint32(rng.IntN(len(data) - int(off) + 1))
			p := []byte{kind}
			p = binary.BigEndian.AppendUint32(p, off)
			p = binary.BigEndian.AppendUint32(p, n)
			p = append(p, byte(rng.IntN(50)))
			stream = append(stream, frame(p)...)
			var resp []byte
			switch kind {
			case 'n':
				continue
			case 'f':
				resp = binary.BigEndian.AppendUint64(nil, uint64(seq))
				resp = append(resp, data[off:off+n]...)
				resp = append(resp, '!')
			default:
				resp = binary.BigEndian.AppendUint64(nil, uint64(seq))
				resp = append(resp, bytes.Repeat([]byte{byte(seq)}, int(n%5000))...)
			}
			want = append(want, frame(resp)...)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = c.Write(stream)
		}()
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Errorf("conn %d: %v", conn, err)
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("conn %d: stream differs at byte %d", conn, firstDiff(got, want))
			}
		}()
	}
	wg.Wait()
}

// TestPipelinedAnswersLeaveTogether: the answers to requests that arrive in one read and are
// answered during their dispatch leave in one writev (OnTraffic batches), in order.
func TestPipelinedAnswersLeaveTogether(t *testing.T) {
	s := startServer(t, Config{}, &echo{})
	c := dial(t, s)
	const n = 16
	var buf []byte
	for i := 0; i < n; i++ {
		buf = append(buf, frame([]byte(fmt.Sprintf("request-%02d", i)))...)
	}
	before := s.writevs.Load()
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < n; i++ {
		if got, want := string(readFrame(t, c)), fmt.Sprintf("request-%02d", i); got != want {
			t.Fatalf("answer %d = %q, want %q", i, got, want)
		}
	}
	// One read normally holds all 16 frames; allow the kernel to have split them once.
	if w := s.writevs.Load() - before; w > 2 {
		t.Fatalf("%d answers took %d writev calls, want them batched (≤ 2)", n, w)
	}
}
