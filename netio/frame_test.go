package netio

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// bigPayload is n bytes that differ from one position to the next.
func bigPayload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// TestLargeFrameReadIntoItsOwnBuffer: a frame above bigFrameMin that arrives in many small
// writes is assembled in a buffer of its own (the server's large-frame bytes go up), handed
// to the handler whole and exact, followed in order by the frames after it in the stream
// (a small one and another large one sent with it in one write); the buffers' bytes are
// given back when the connection closes.
func TestLargeFrameReadIntoItsOwnBuffer(t *testing.T) {
	e := &echo{}
	s := startServer(t, Config{}, e)
	c := dial(t, s)
	first := bigPayload(3<<20, 1)
	second := bigPayload(bigFrameMin, 2) // with its size prefix, past the threshold too
	stream := frame(first)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the client reads while it writes: answers are big too
		defer wg.Done()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for i, want := range [][]byte{first, []byte("small"), second} {
			if got := readFrame(t, c); !bytes.Equal(got, want) {
				t.Errorf("answer %d: %d bytes, want %d (equal: %v)", i, len(got), len(want), bytes.Equal(got, want))
			}
		}
	}()
	sawBig := false
	cut := len(stream) - 1000 // the frame's last bytes go with the frames after it
	for off := 0; off < cut; off += 4096 {
		if _, err := c.Write(stream[off:min(off+4096, cut)]); err != nil {
			t.Fatal(err)
		}
		if off%(256<<10) == 0 {
			time.Sleep(time.Millisecond) // let the loop see partial frames
			sawBig = sawBig || s.bigBytes.Load() > 0
		}
	}
	tail := append(append(append([]byte(nil), stream[cut:]...), frame([]byte("small"))...), frame(second)...)
	if _, err := c.Write(tail); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !sawBig {
		t.Fatal("the large frame was not read into its own buffer")
	}
	got := e.got()
	if len(got) != 3 || !bytes.Equal(got[0], first) || string(got[1]) != "small" || !bytes.Equal(got[2], second) {
		t.Fatalf("handler saw %d frames", len(got))
	}
	_ = c.Close()
	waitFor(t, "large-frame buffers released", func() bool { return s.bigBytes.Load() == 0 })
}

// TestLargeFrameWaitsWhilePaused: a large frame that completes while dispatch is paused
// (MaxInflight reached) is dispatched, in order, once an answer makes room.
func TestLargeFrameWaitsWhilePaused(t *testing.T) {
	h := &scripted{}
	var mu sync.Mutex
	var conn *Conn
	s := startServer(t, Config{MaxInflight: 1}, HandlerFunc(func(c *Conn, req *Request) {
		mu.Lock()
		conn = c
		mu.Unlock()
		h.Serve(c, req)
	}))
	c := dial(t, s)
	big := bigPayload(1<<20, 3) // scripted answers any frame but "hold" at once with "<seq>:<frame>"
	if _, err := c.Write(append(frame([]byte("hold")), frame(big)...)); err != nil {
		t.Fatal(err)
	}
	held := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.held)
	}
	waitFor(t, "the held request", func() bool { return held() == 1 })
	time.Sleep(100 * time.Millisecond)
	h.mu.Lock()
	replied := len(h.replied)
	h.mu.Unlock()
	if replied != 0 {
		t.Fatalf("the large frame was dispatched past the in-flight bound (%d replies)", replied)
	}
	mu.Lock()
	cc := conn
	mu.Unlock()
	cc.Reply(0, Response{Parts: []Part{{Bytes: []byte("released")}}})
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := string(readFrame(t, c)); got != "released" {
		t.Fatalf("first answer %q", got)
	}
	if got := readFrame(t, c); string(got) != "1:"+string(big) {
		t.Fatalf("second answer: %d bytes, want the large frame echoed with its sequence number", len(got))
	}
}

// TestLargeFrameOverBudgetUsesTheRingBuffer: with the large-frame budget spent, a large
// frame goes through gnet's buffer as any frame, and arrives exact.
func TestLargeFrameOverBudgetUsesTheRingBuffer(t *testing.T) {
	e := &echo{}
	s := startServer(t, Config{}, e)
	s.bigBudget = bigFrameMin - 1 // no large frame fits
	c := dial(t, s)
	payload := bigPayload(2<<20, 4)
	stream := frame(payload)
	for off := 0; off < len(stream); off += 64 << 10 {
		if _, err := c.Write(stream[off:min(off+64<<10, len(stream))]); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readFrame(t, c); !bytes.Equal(got, payload) {
		t.Fatalf("echo of %d bytes differs", len(payload))
	}
	if n := s.bigBytes.Load(); n != 0 {
		t.Fatalf("large-frame bytes %d over a budget of %d", n, s.bigBudget)
	}
}

// TestLargeFramePeerClosesMidFrame: a peer that closes with a large frame half sent (the
// rest was being read from the socket directly) has its connection closed, the handler sees
// nothing, and the frame's buffer is given back.
func TestLargeFramePeerClosesMidFrame(t *testing.T) {
	e := &echo{}
	s := startServer(t, Config{}, e)
	c := dial(t, s)
	stream := frame(bigPayload(2<<20, 4))
	if _, err := c.Write(stream[:1<<20]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the large frame started", func() bool { return s.bigBytes.Load() > 0 })
	_ = c.Close()
	waitFor(t, "the buffer given back", func() bool { return s.bigBytes.Load() == 0 })
	if got := e.got(); len(got) != 0 {
		t.Fatalf("handler saw %d frames", len(got))
	}
}
