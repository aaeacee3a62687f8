package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// frame builds a request frame: size, api key, version, correlation id, client id, body.
func frame(key, version int16, corr int32, flexHeader bool, body []byte) []byte {
	b := make([]byte, 4, 64+len(body))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if flexHeader {
		b = append(b, 0)
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// readResponse reads one response frame; ok is false when the connection was closed.
func readResponse(t *testing.T, c net.Conn) ([]byte, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, false
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, false
	}
	return buf, true
}

func apiVersionsWorks(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frame(18, 0, 9, false, nil))
	resp, ok := readResponse(t, c)
	if !ok || binary.BigEndian.Uint32(resp) != 9 || binary.BigEndian.Uint16(resp[4:]) != 0 {
		t.Fatalf("ApiVersions on a fresh connection failed: %x", resp)
	}
}

// TestApiVersionsFallbackAndHeader: an unknown ApiVersions version gets the v0 answer with
// UNSUPPORTED_VERSION and the supported ranges; a v3 answer has no header tag byte.
func TestApiVersionsFallbackAndHeader(t *testing.T) {
	tb := startBroker(t, "", nil)
	c, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frame(18, 99, 1, true, nil))
	resp, ok := readResponse(t, c)
	if !ok {
		t.Fatal("connection closed")
	}
	v0 := kmsg.NewPtrApiVersionsResponse()
	v0.SetVersion(0)
	if err := v0.ReadFrom(resp[4:]); err != nil || v0.ErrorCode != errUnsupportedVersion || len(v0.ApiKeys) < 7 {
		t.Fatalf("fallback: %v %+v", err, v0)
	}
	body := kmsg.NewPtrApiVersionsRequest()
	body.SetVersion(3)
	body.ClientSoftwareName, body.ClientSoftwareVersion = "t", "1"
	c.Write(frame(18, 3, 2, true, body.AppendTo(nil)))
	resp, ok = readResponse(t, c)
	if !ok {
		t.Fatal("connection closed")
	}
	v3 := kmsg.NewPtrApiVersionsResponse()
	v3.SetVersion(3)
	if binary.BigEndian.Uint32(resp) != 2 || v3.ReadFrom(resp[4:]) != nil || v3.ErrorCode != 0 {
		t.Fatalf("v3 response (no header tags expected): %x", resp[:16])
	}
	var produce *kmsg.ApiVersionsResponseApiKey
	for i := range v3.ApiKeys {
		if v3.ApiKeys[i].ApiKey == 0 {
			produce = &v3.ApiKeys[i]
		}
	}
	if produce == nil || produce.MinVersion != 0 || produce.MaxVersion < 9 {
		t.Fatalf("produce versions advertised: %+v", produce)
	}
}

// TestBadInputClosesOnlyThatConnection: unknown keys, unsupported versions, truncated bodies
// and garbage close the offending connection; the broker keeps serving others.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	tb := startBroker(t, "", nil)
	// Records stored before the bad input must come back unchanged after it.
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "kept", 1, nil)
	pid, epoch := initProducerID(t, cl)
	for i := 0; i < 5; i++ {
		if code, _ := rawProduce(t, cl, "kept", pid, epoch, int32(i*2), 2); code != 0 {
			t.Fatalf("produce: %d", code)
		}
	}
	before := readAll(t, tb, "kept")
	cases := map[string][]byte{
		"unknown api key":     frame(999, 0, 1, false, nil),
		"unsupported version": frame(3, 99, 1, false, nil),
		"truncated metadata":  frame(3, 9, 1, true, []byte{5}),
		"short header":        {0, 0, 0, 3, 0, 3, 0},
		"negative client id":  {0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x80, 0x00},
		"produce garbage":     frame(0, 9, 1, true, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		"fetch huge arrays":   frame(1, 12, 1, true, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}),
	}
	for name, f := range cases {
		c, err := net.Dial("tcp", tb.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(f)
		if resp, ok := readResponse(t, c); ok {
			t.Errorf("%s: got a response %x, want the connection closed", name, resp)
		}
		c.Close()
		apiVersionsWorks(t, tb.addr)
	}
	if after := readAll(t, tb, "kept"); !bytes.Equal(before, after) || len(before) == 0 {
		t.Fatalf("stored data changed: %d bytes before, %d after", len(before), len(after))
	}
}

// readAll returns the bytes of every batch of partition 0 of topic, as stored.
func readAll(t *testing.T, tb *testBroker, topic string) []byte {
	t.Helper()
	p := tb.b.topics.partition(topic, 0)
	var res logstore.ReadResult
	defer res.Release()
	if err := p.log.Read(p.log.LogStartOffset(), 1<<30, p.log.LogEndOffset(), true, &res); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, r := range res.Regions {
		out = append(out, r.Data...)
	}
	return out
}

// TestClientThatNeverReads: a client that pipelines requests and never reads its responses
// does not hurt other clients, and the broker does not buffer without bound for it.
func TestClientThatNeverReads(t *testing.T) {
	tb := startBroker(t, "", nil)
	c, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(9)
	req := frame(3, 9, 1, true, md.AppendTo(nil))
	var wg sync.WaitGroup
	wg.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Write(req); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue // the broker stopped reading from us: back-pressure works
				}
				return
			}
		}
	}()
	time.Sleep(time.Second)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	time.Sleep(time.Second) // the client keeps writing; the broker must not keep buffering
	apiVersionsWorks(t, tb.addr)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 32<<20 {
		t.Fatalf("heap grew by %d bytes while a client ignored its responses", grown)
	}
	cancel()
	wg.Wait()
}

// FuzzRequestFrames sends arbitrary frames of any key and version to a live broker over a
// socket: the broker must answer or close the connection, never panic or hang.
func FuzzRequestFrames(f *testing.F) {
	f.Add(int16(3), int16(9), true, kmsg.NewPtrMetadataRequest().AppendTo(nil))
	f.Add(int16(0), int16(9), true, sampleProduceRequest(9).AppendTo(nil))
	f.Add(int16(1), int16(12), true, sampleFetchRequest(12).AppendTo(nil))
	f.Add(int16(2), int16(7), true, []byte{0xff, 0xff, 0xff, 0xff, 0, 2, 0, 0})
	f.Add(int16(19), int16(5), true, []byte{2, 2, 'a', 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0})
	f.Add(int16(22), int16(4), true, []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0})
	tb := startBroker(f, "", nil)
	f.Fuzz(func(t *testing.T, key, version int16, flex bool, body []byte) {
		c, err := net.Dial("tcp", tb.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(frame(key, version, 1, flex, body))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var size [4]byte
		io.ReadFull(c, size[:])
	})
}
