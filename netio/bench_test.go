package netio

import (
	"io"
	"os"
	"testing"
)

// BenchmarkFileRegionThroughput: each op is one request answered with an
// 8 MiB file region (sendfile), read in full by the client over loopback.
func BenchmarkFileRegionThroughput(b *testing.B) {
	const size = 8 << 20
	f, _ := tempFile(b, size)
	h := &regionHandler{f: f, layout: func(f *os.File) Response {
		var r Response
		r.AppendBytes([]byte("hdr"))
		r.AppendFile(f, 0, size)
		return r
	}}
	s := startServer(b, Config{}, h)
	c := dial(b, s)
	req := frame([]byte("file"))
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(c, 4+3+size), buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallRequests: one small request and response per op, answered
// synchronously from Serve (the inline writev path).
func BenchmarkSmallRequests(b *testing.B) {
	h := HandlerFunc(func(c *Conn, req *Request) {
		c.Reply(req.Seq, Response{Parts: []Part{{Bytes: pong}}})
	})
	s := startServer(b, Config{}, h)
	c := dial(b, s)
	req := frame([]byte("ping"))
	resp := make([]byte, 4+len(pong))
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
}

var pong = []byte("pong-pong-pong")
