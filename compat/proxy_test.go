package compat

// The tracing proxy. Each client connection is relayed to the broker frame by frame:
//
//	request:  size i32 | api_key i16 | api_version i16 | correlation_id i32 |
//	          client_id nullable_string | [tags, flexible versions] | body
//	response: size i32 | correlation_id i32 | [tags, flexible versions but ApiVersions] | body
//
// Requests are remembered by correlation id (per connection) until their response, which is
// decoded with the request's key and version. Produce with acks=0 has no response.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const traceKeep = 64 // exchanges kept for a failure report

type tracer struct {
	name    string
	ln      net.Listener
	backend string
	closing atomic.Bool
	nconn   atomic.Int32
	wg      sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{} // both ends of every relayed connection; guarded by mu
	used     map[string]int        // "Fetch v12 [client id]" → requests; guarded by mu
	recent   []string              // last traceKeep exchanges; guarded by mu
	problems []string              // undecodable frames, unanswered requests; guarded by mu
	batches  map[batchKind]int     // record batches in Produce requests; guarded by mu

	// onResponse, when set, is called with every decoded request and its response (by the
	// client id of the request) before the response is relayed to the client: when a client
	// call that sent the request returns, the hook has seen the answer.
	onResponse atomic.Pointer[func(client string, req kmsg.Request, resp kmsg.Response)]
}

// batchKind is what the proxy saw of a produced record batch.
type batchKind struct {
	Topic      string
	Acks       int16
	Codec      int8 // attributes & 7: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
	Idempotent bool // producer id >= 0
}

// producedBatches returns how many record batches of each kind the clients sent.
func (tr *tracer) producedBatches() map[batchKind]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[batchKind]int, len(tr.batches))
	for k, n := range tr.batches {
		out[k] = n
	}
	return out
}

// noteBatches records the kind of every batch of a Produce request (v2 batch header:
// base_offset i64 | length i32 | leader_epoch i32 | magic i8 | crc u32 | attributes i16 |
// last_offset_delta i32 | base_timestamp i64 | max_timestamp i64 | producer_id i64 | ...).
func (tr *tracer) noteBatches(pr *kmsg.ProduceRequest) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, t := range pr.Topics {
		for _, p := range t.Partitions {
			for b := p.Records; len(b) >= 61; {
				size := 12 + int(int32(binary.BigEndian.Uint32(b[8:])))
				if size < 61 || size > len(b) {
					break
				}
				k := batchKind{Topic: t.Topic, Acks: pr.Acks, Codec: int8(b[22] & 7), Idempotent: int64(binary.BigEndian.Uint64(b[43:])) >= 0}
				tr.batches[k]++
				b = b[size:]
			}
		}
	}
}

func newTracer(name string) (*tracer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &tracer{name: name, ln: ln, conns: map[net.Conn]struct{}{}, used: map[string]int{}, batches: map[batchKind]int{}}, nil
}

func (tr *tracer) port() int    { return tr.ln.Addr().(*net.TCPAddr).Port }
func (tr *tracer) addr() string { return tr.ln.Addr().String() }

// serve starts relaying accepted connections to backend.
func (tr *tracer) serve(backend string) {
	tr.backend = backend
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		for {
			c, err := tr.ln.Accept()
			if err != nil {
				return
			}
			tr.wg.Add(1)
			go func() {
				defer tr.wg.Done()
				tr.relay(c, int(tr.nconn.Add(1)))
			}()
		}
	}()
}

// close stops the listener and closes every relayed connection.
func (tr *tracer) close() {
	tr.closing.Store(true)
	tr.ln.Close()
	tr.mu.Lock()
	for c := range tr.conns {
		c.Close()
	}
	tr.mu.Unlock()
	tr.wg.Wait()
}

func (tr *tracer) track(c net.Conn) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.closing.Load() {
		c.Close()
		return false
	}
	tr.conns[c] = struct{}{}
	return true
}

func (tr *tracer) untrack(c net.Conn) {
	tr.mu.Lock()
	delete(tr.conns, c)
	tr.mu.Unlock()
	c.Close()
}

func (tr *tracer) problem(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	tr.mu.Lock()
	tr.problems = append(tr.problems, s)
	tr.mu.Unlock()
	if debugLevel() > 0 {
		fmt.Fprintf(os.Stderr, "[%s proxy] PROBLEM %s\n", tr.name, s)
	}
}

func (tr *tracer) exchange(line string) {
	tr.mu.Lock()
	tr.recent = append(tr.recent, line)
	if len(tr.recent) > traceKeep {
		tr.recent = tr.recent[len(tr.recent)-traceKeep:]
	}
	tr.mu.Unlock()
	if debugLevel() > 0 {
		fmt.Fprintf(os.Stderr, "[%s proxy] %s\n", tr.name, line)
	}
}

// report logs the API versions used and any problems; the last exchanges too on failure.
func (tr *tracer) report(t *testing.T) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	keys := make([]string, 0, len(tr.used))
	for k := range tr.used {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s ×%d", k, tr.used[k])
	}
	t.Logf("requests seen by the proxy (api version [client id] ×count):%s", b.String())
	for _, p := range tr.problems {
		t.Logf("proxy: %s", p)
	}
	if t.Failed() {
		t.Logf("last %d exchanges:\n%s", len(tr.recent), strings.Join(tr.recent, "\n"))
	}
}

// pendingReq is a request waiting for its response.
type pendingReq struct {
	req      kmsg.Request // nil when the proxy could not decode it
	client   string
	key, ver int16
	size     int
	summary  string
}

type relayConn struct {
	id           int
	mu           sync.Mutex
	pending      map[int32]pendingReq // by correlation id; guarded by mu
	clientClosed atomic.Bool
}

func (tr *tracer) relay(client net.Conn, id int) {
	if !tr.track(client) {
		return
	}
	defer tr.untrack(client)
	srv, err := net.Dial("tcp", tr.backend)
	if err != nil {
		tr.problem("c%d: dial broker: %v", id, err)
		return
	}
	if !tr.track(srv) {
		return
	}
	defer tr.untrack(srv)
	rc := &relayConn{id: id, pending: map[int32]pendingReq{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.pipeRequests(rc, client, srv)
		rc.clientClosed.Store(true)
		srv.Close()
	}()
	tr.pipeResponses(rc, srv, client)
	client.Close()
	<-done
}

// readFrame reads one size-prefixed frame (the size included in the returned bytes).
func readFrame(r *bufio.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 256<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	frame := make([]byte, 4+n)
	copy(frame, size[:])
	_, err := io.ReadFull(r, frame[4:])
	return frame, err
}

func (tr *tracer) pipeRequests(rc *relayConn, from, to net.Conn) {
	r := bufio.NewReaderSize(from, 64<<10)
	for {
		frame, err := readFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !tr.closing.Load() && !isClosed(err) {
				tr.problem("c%d: reading request: %v", rc.id, err)
			}
			return
		}
		tr.noteRequest(rc, frame[4:])
		if _, err := to.Write(frame); err != nil {
			return
		}
	}
}

func (tr *tracer) pipeResponses(rc *relayConn, from, to net.Conn) {
	r := bufio.NewReaderSize(from, 64<<10)
	for {
		frame, err := readFrame(r)
		if err != nil {
			if !rc.clientClosed.Load() && !tr.closing.Load() {
				rc.mu.Lock()
				var pend []string
				for corr, p := range rc.pending {
					pend = append(pend, fmt.Sprintf("%s corr=%d", p.summary, corr))
				}
				rc.mu.Unlock()
				if len(pend) > 0 {
					sort.Strings(pend)
					tr.problem("c%d: broker closed the connection (%v) leaving unanswered: %s", rc.id, err, strings.Join(pend, "; "))
				}
			}
			return
		}
		tr.noteResponse(rc, frame[4:])
		if _, err := to.Write(frame); err != nil {
			return
		}
	}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

func (tr *tracer) noteRequest(rc *relayConn, body []byte) {
	if len(body) < 10 {
		tr.problem("c%d: request frame of %d bytes", rc.id, len(body))
		return
	}
	key := int16(binary.BigEndian.Uint16(body))
	ver := int16(binary.BigEndian.Uint16(body[2:]))
	corr := int32(binary.BigEndian.Uint32(body[4:]))
	n := int(int16(binary.BigEndian.Uint16(body[8:])))
	rest := body[10:]
	client := ""
	if n > 0 && n <= len(rest) {
		client, rest = string(rest[:n]), rest[n:]
	}
	p := pendingReq{key: key, ver: ver, size: len(body), client: client}
	p.summary = fmt.Sprintf("%s v%d", kmsg.NameForKey(key), ver)
	tr.mu.Lock()
	tr.used[fmt.Sprintf("%s [%s]", p.summary, client)]++
	tr.mu.Unlock()
	req := kmsg.RequestForKey(key)
	switch {
	case req == nil:
		tr.problem("c%d: client %q sent unknown api key %d v%d", rc.id, client, key, ver)
	case ver > req.MaxVersion():
		tr.problem("c%d: client %q sent %s above kmsg's max v%d", rc.id, client, p.summary, req.MaxVersion())
	default:
		req.SetVersion(ver)
		var ok bool
		if req.IsFlexible() {
			rest, ok = skipTags(rest)
		} else {
			ok = true
		}
		if err := req.ReadFrom(rest); !ok || err != nil {
			tr.problem("c%d: client %q sent undecodable %s corr=%d: %v", rc.id, client, p.summary, corr, err)
			req = nil
		}
		p.req = req
	}
	line := fmt.Sprintf("c%d → %s corr=%d client=%q %dB", rc.id, p.summary, corr, client, len(body))
	if pr, ok := req.(*kmsg.ProduceRequest); ok {
		tr.noteBatches(pr)
		line += fmt.Sprintf(" acks=%d", pr.Acks)
		if pr.Acks == 0 {
			tr.exchange(line + " (no response expected)")
			return
		}
	}
	if debugLevel() > 1 && req != nil {
		line += "\n    " + dump(req)
	}
	rc.mu.Lock()
	rc.pending[corr] = p
	rc.mu.Unlock()
	if debugLevel() > 0 {
		fmt.Fprintf(os.Stderr, "[%s proxy] %s\n", tr.name, line)
	}
}

func (tr *tracer) noteResponse(rc *relayConn, body []byte) {
	if len(body) < 4 {
		tr.problem("c%d: response frame of %d bytes", rc.id, len(body))
		return
	}
	corr := int32(binary.BigEndian.Uint32(body))
	rc.mu.Lock()
	p, ok := rc.pending[corr]
	delete(rc.pending, corr)
	rc.mu.Unlock()
	if !ok {
		tr.problem("c%d: response with unknown correlation id %d", rc.id, corr)
		return
	}
	line := fmt.Sprintf("c%d ← %s corr=%d %dB", rc.id, p.summary, corr, len(body))
	if p.req == nil {
		tr.exchange(line)
		return
	}
	resp := p.req.ResponseKind()
	resp.SetVersion(p.ver)
	rest := body[4:]
	var okTags = true
	if resp.IsFlexible() && p.key != kmsg.ApiVersions.Int16() {
		rest, okTags = skipTags(rest)
	}
	if p.key == kmsg.ApiVersions.Int16() && len(rest) >= 2 && int16(binary.BigEndian.Uint16(rest)) == kerr.UnsupportedVersion.Code {
		// An unsupported ApiVersions version is answered in v0 format (KIP-511).
		resp.SetVersion(0)
		line += " (answered as v0)"
	}
	err := resp.ReadFrom(rest)
	if !okTags || err != nil {
		head := body[4:]
		if len(head) > 48 {
			head = head[:48]
		}
		tr.problem("c%d: broker sent undecodable %s response corr=%d (%dB): tags ok %v, %v; first bytes % x", rc.id, p.summary, corr, len(body), okTags, err, head)
		tr.exchange(line + " UNDECODABLE")
		return
	}
	if errs := errorCodes(reflect.ValueOf(resp), ""); len(errs) > 0 {
		line += " errors: " + strings.Join(errs, ", ")
	}
	if debugLevel() > 1 {
		line += "\n    " + dump(resp)
	}
	tr.exchange(line)
	if hook := tr.onResponse.Load(); hook != nil {
		(*hook)(p.client, p.req, resp)
	}
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, bool) {
	n, l := binary.Uvarint(b)
	if l <= 0 || n > uint64(len(b)) {
		return nil, false
	}
	b = b[l:]
	for i := uint64(0); i < n; i++ {
		if _, l = binary.Uvarint(b); l <= 0 {
			return nil, false
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || size > uint64(len(b)-l) {
			return nil, false
		}
		b = b[l+int(size):]
	}
	return b, true
}

// errorCodes lists every non-zero ErrorCode field in v, with its path and Kafka name.
func errorCodes(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return errorCodes(v.Elem(), path)
	case reflect.Slice:
		if k := v.Type().Elem().Kind(); k != reflect.Struct && k != reflect.Pointer {
			return nil // bytes, ids, strings: no error codes inside
		}
		var out []string
		for i := 0; i < v.Len(); i++ {
			out = append(out, errorCodes(v.Index(i), path+"["+strconv.Itoa(i)+"]")...)
		}
		return out
	case reflect.Struct:
		var out []string
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			fv := v.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Name == "ErrorCode" && fv.Kind() == reflect.Int16 && fv.Int() != 0 {
				name := "unknown"
				if e := kerr.ErrorForCode(int16(fv.Int())); e != nil {
					name = e.Error()
				}
				out = append(out, fmt.Sprintf("%s.ErrorCode=%d (%s)", path, fv.Int(), name))
				continue
			}
			out = append(out, errorCodes(fv, path+"."+f.Name)...)
		}
		return out
	}
	return nil
}

// dump prints a decoded message, long byte fields (record batches) shortened.
func dump(m any) string {
	s := fmt.Sprintf("%+v", m)
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return s
}
