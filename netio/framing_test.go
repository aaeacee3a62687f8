package netio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func TestFramesInOneWriteAreEachDeliveredOnce(t *testing.T) {
	h := &echo{}
	s := startServer(t, Config{NumLoops: 2}, h)
	c := dial(t, s)

	var want [][]byte
	var all []byte
	for i := range 200 {
		p := bytes.Repeat([]byte{byte(i)}, i*37%3000) // includes empty frames
		want = append(want, p)
		all = append(all, frame(p)...)
	}
	if _, err := c.Write(all); err != nil {
		t.Fatal(err)
	}
	for i, p := range want {
		if got := readFrame(t, c); !bytes.Equal(got, p) {
			t.Fatalf("response %d: got %d bytes, want %d", i, len(got), len(p))
		}
	}
	got := h.got()
	if len(got) != len(want) {
		t.Fatalf("handler saw %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

func TestFrameSplitOverManyWritesIsDeliveredWhole(t *testing.T) {
	h := &echo{}
	s := startServer(t, Config{}, h)
	c := dial(t, s)

	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	stream := append(frame(big), frame([]byte("tail"))...)
	// The size prefix byte by byte, then random chunks, pausing now and then
	// so the server sees partial frames.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(stream); {
		n := 1
		if i >= 4 {
			n = min(1+rng.IntN(4096), len(stream)-i)
		}
		if _, err := c.Write(stream[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
		if i < 8 || rng.IntN(20) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if got := readFrame(t, c); !bytes.Equal(got, big) {
		t.Fatalf("big frame: got %d bytes, differs", len(got))
	}
	if got := readFrame(t, c); string(got) != "tail" {
		t.Fatalf("tail frame: got %q", got)
	}
	if n := len(h.got()); n != 2 {
		t.Fatalf("handler called %d times, want 2", n)
	}
}

// socket.request.max.bytes: a size prefix outside [0, max] closes the
// connection before the handler sees anything.
func TestSizeOutsideLimitsClosesConnection(t *testing.T) {
	const maxBytes = 1024
	for _, size := range []uint32{maxBytes + 1, 1 << 31, 0xFFFFFFFF, 0x7FFFFFFF} {
		t.Run(fmt.Sprintf("%#x", size), func(t *testing.T) {
			var calls atomic.Int32
			h := HandlerFunc(func(c *Conn, req *Request) {
				calls.Add(1)
				c.NoReply(req.Seq)
			})
			s := startServer(t, Config{MaxRequestBytes: maxBytes}, h)
			c := dial(t, s)
			msg := binary.BigEndian.AppendUint32(nil, size)
			msg = append(msg, make([]byte, 64)...)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			if n := calls.Load(); n != 0 {
				t.Fatalf("handler called %d times", n)
			}
		})
	}
	t.Run("at limit", func(t *testing.T) {
		h := &echo{}
		s := startServer(t, Config{MaxRequestBytes: maxBytes}, h)
		c := dial(t, s)
		p := bytes.Repeat([]byte{7}, maxBytes)
		if _, err := c.Write(frame(p)); err != nil {
			t.Fatal(err)
		}
		if got := readFrame(t, c); !bytes.Equal(got, p) {
			t.Fatal("frame at the limit not echoed")
		}
	})
}
