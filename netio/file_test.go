package netio

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"testing"
	"time"
)

// regionHandler answers "file" with the response built by layout and
// anything else by echo.
type regionHandler struct {
	f      *os.File
	layout func(f *os.File) Response
}

func (h *regionHandler) Serve(c *Conn, req *Request) {
	if string(req.Frame) == "file" {
		c.Reply(req.Seq, h.layout(h.f))
		return
	}
	c.Reply(req.Seq, Response{Parts: []Part{{Bytes: append([]byte(nil), req.Frame...)}}})
}

// expected returns the payload a Response should put on the wire.
func expected(r Response, data []byte) []byte {
	var b []byte
	for _, p := range r.Parts {
		if p.Region.File != nil {
			b = append(b, data[p.Region.Offset:p.Region.Offset+p.Region.Length]...)
		} else {
			b = append(b, p.Bytes...)
		}
	}
	return b
}

func mixedLayout(f *os.File) Response {
	var r Response
	r.AppendBytes([]byte("header"))
	r.AppendFile(f, 0, 1<<20)
	r.AppendBytes([]byte("between"))
	r.AppendFile(f, 5, 1) // tiny region
	r.AppendFile(f, 0, 0) // empty region
	r.AppendBytes(nil)    // empty bytes
	r.AppendFile(f, 1<<20, 31<<20)
	r.AppendFile(f, 12345, 4096)
	r.AppendBytes([]byte("trailer"))
	return r
}

func TestFileRegionsArriveByteIdentical(t *testing.T) {
	f, data := tempFile(t, 32<<20)
	h := &regionHandler{f: f, layout: mixedLayout}
	s := startServer(t, Config{NumLoops: 2}, h)
	c := dial(t, s)

	// A byte response, the file response, and a byte response pipelined.
	stream := append(frame([]byte("before")), frame([]byte("file"))...)
	stream = append(stream, frame([]byte("after"))...)
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	if got := string(readFrame(t, c)); got != "before" {
		t.Fatalf("got %q", got)
	}
	want := expected(mixedLayout(f), data)
	if got := readFrame(t, c); !bytes.Equal(got, want) {
		t.Fatalf("file response: %d bytes, want %d, differs at %d", len(got), len(want), firstDiff(got, want))
	}
	if got := string(readFrame(t, c)); got != "after" {
		t.Fatalf("got %q", got)
	}
}

// A reader that takes its time still gets every byte in order, and the
// (single) event loop keeps serving another connection meanwhile: the slow
// response waits on the netpoller, not on the loop.
func TestSlowReaderGetsEveryByteWhileLoopServesOthers(t *testing.T) {
	f, data := tempFile(t, 32<<20)
	layout := func(f *os.File) Response {
		var r Response
		r.AppendBytes([]byte("hdr"))
		r.AppendFile(f, 0, int64(len(data)))
		return r
	}
	h := &regionHandler{f: f, layout: layout}
	s := startServer(t, Config{NumLoops: 1}, h)

	slow := dial(t, s)
	if _, err := slow.Write(frame([]byte("file"))); err != nil {
		t.Fatal(err)
	}
	want := append(binary.BigEndian.AppendUint32(nil, uint32(3+len(data))), "hdr"...)
	want = append(want, data...)
	got := make([]byte, 0, len(want))
	buf := make([]byte, 32<<10)
	read := func(limit int) {
		for len(got) < limit {
			n, err := slow.Read(buf[:min(len(buf), limit-len(got))])
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("slow read after %d bytes: %v", len(got), err)
			}
		}
	}
	read(64 << 10)

	// While the slow response is stuck behind a full socket, another
	// connection on the same loop gets answers.
	other := dial(t, s)
	_ = other.SetDeadline(time.Now().Add(5 * time.Second))
	for i := range 200 {
		p := []byte{byte(i), byte(i >> 8)}
		if _, err := other.Write(frame(p)); err != nil {
			t.Fatal(err)
		}
		if r := readFrame(t, other); !bytes.Equal(r, p) {
			t.Fatalf("other connection: got %v want %v", r, p)
		}
	}

	for len(got) < len(want) {
		read(min(len(want), len(got)+len(buf)))
		time.Sleep(time.Millisecond)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("slow reader: bytes differ at %d", firstDiff(got, want))
	}
	if s.parks.Load() == 0 {
		t.Error("the writer never waited for the socket: back-pressure untested")
	}
}

// A file truncated under a region must not be padded or mis-framed: the
// connection is closed after the bytes that exist.
func TestTruncatedFileClosesConnection(t *testing.T) {
	f, data := tempFile(t, 1<<20)
	rel := &releases{n: map[int]int{}}
	layout := func(f *os.File) Response {
		r := Response{Release: rel.fn(0)}
		r.AppendFile(f, 0, 2<<20)
		return r
	}
	h := &regionHandler{f: f, layout: layout}
	s := startServer(t, Config{}, h)
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("file"))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Logf("read ended with %v", err)
	}
	want := append(binary.BigEndian.AppendUint32(nil, 2<<20), data...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want the %d that exist; differ at %d", len(got), len(want), firstDiff(got, want))
	}
	waitFor(t, "release", func() bool { return rel.count(0) == 1 })
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
