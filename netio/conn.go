package netio

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// slotState is where a sequence number is in its life.
type slotState uint8

const (
	slotFree    slotState = iota
	slotWaiting           // dispatched, not answered yet
	slotReady             // Reply given, not yet retired
	slotNoReply           // NoReply given, not yet retired
)

// slot holds one outstanding sequence number, in a ring indexed by seq.
type slot struct {
	state slotState
	size  [4]byte // the response's size prefix, big-endian
	resp  Response
}

// Conn is one client connection. See the package doc for which methods may be
// called from which goroutine.
type Conn struct {
	srv    *Server
	gc     gnet.Conn
	remote net.Addr
	ctx    any // event loop only

	// wc is a duplicate of the socket on Go's netpoller; all writes go
	// through rc. Once closed is set, wc is closed by the write-token holder
	// as it gives up the token, or by onClose if no one holds it: never on
	// the event loop while a write step runs (Close would wait for it).
	wc net.Conn
	rc syscall.RawConn

	req        Request      // reused for each Serve; event loop only
	big        bigFrame     // a large frame being read (frame.go); event loop only
	lastActive atomic.Int64 // monotonic ns since srv.epoch of the last read or write
	closeReq   atomic.Bool  // Close was called
	dead       atomic.Bool  // closed is set: a write step in progress stops

	mu sync.Mutex
	// Invariant (mu): seqDone <= seqOut <= seqNext, seqNext-seqDone <= len(slots).
	// [seqDone, seqOut) are taken by the write-token holder, [seqOut, seqNext)
	// are waiting or answered and not yet taken.
	seqNext Seq
	seqOut  Seq
	seqDone Seq
	slots   []slot
	writing bool // the write token is held; counted in srv.writers
	// batching: OnTraffic is dispatching the frames of one read. A Reply that takes the
	// write token meanwhile sets deferred instead of writing, and OnTraffic writes once at
	// its end: the answers to pipelined requests leave in one writev, not one each.
	batching, deferred bool
	closed             bool // no more writes; answered slots were or will be released
	paused             bool // dispatch stopped at MaxInflight; resume wakes the loop
	// gone: gnet ran OnClose. gc.Close and gc.Wake are called only under mu
	// with gone false: after OnClose gnet may close the loop's poller, and a
	// late Trigger would write to a stale eventfd.
	gone bool

	// Owned by the write-token holder (see writer.go).
	w writer
}

func newConn(s *Server, gc gnet.Conn) (*Conn, error) {
	fd, err := gc.Dup()
	if err != nil {
		return nil, fmt.Errorf("dup socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "netio-conn")
	wc, err := net.FileConn(f) // dups again and registers with Go's netpoller
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("wrap socket: %w", err)
	}
	sc, ok := wc.(syscall.Conn)
	if !ok {
		_ = wc.Close()
		return nil, fmt.Errorf("wrap socket: %T is not a syscall.Conn", wc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		_ = wc.Close()
		return nil, fmt.Errorf("wrap socket: %w", err)
	}
	c := &Conn{
		srv:    s,
		gc:     gc,
		remote: gc.RemoteAddr(),
		wc:     wc,
		rc:     rc,
		slots:  make([]slot, s.cfg.MaxInflight),
	}
	c.w.init(c)
	c.touch()
	return c, nil
}

// Context returns the value set by SetContext. Event loop only.
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches a handler value to the connection. Event loop only.
func (c *Conn) SetContext(v any) { c.ctx = v }

// RemoteAddr returns the peer's address. Any goroutine.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Close closes the connection soon, dropping unwritten responses (their
// Release is called). Any goroutine.
func (c *Conn) Close() {
	c.closeReq.Store(true)
	c.mu.Lock()
	c.closeGnetLocked()
	c.mu.Unlock()
}

func (c *Conn) closeGnetLocked() {
	if !c.gone {
		_ = c.gc.Close()
	}
}

// wake makes the event loop look at the inbound buffer again.
func (c *Conn) wake() {
	c.mu.Lock()
	if !c.gone {
		_ = c.gc.Wake(nil)
	}
	c.mu.Unlock()
}

// Reply answers request seq with resp. Any goroutine, once per seq. After
// the connection closed, Reply only calls resp.Release.
func (c *Conn) Reply(seq Seq, resp Response) {
	size := resp.payloadSize()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		resp.release()
		return
	}
	s := c.waitingSlotLocked(seq)
	s.state = slotReady
	s.resp = resp
	binary.BigEndian.PutUint32(s.size[:], size)
	start := c.acquireDeferLocked(seq)
	c.mu.Unlock()
	if start {
		c.write()
	}
}

// NoReply marks request seq as having no response. Any goroutine, once per
// seq, instead of Reply.
func (c *Conn) NoReply(seq Seq) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.waitingSlotLocked(seq).state = slotNoReply
	start := c.acquireDeferLocked(seq)
	c.mu.Unlock()
	if start {
		c.write()
	}
}

func (c *Conn) waitingSlotLocked(seq Seq) *slot {
	if seq < c.seqDone || seq >= c.seqNext {
		panic(fmt.Sprintf("BUG: netio: answer to unknown request %d (outstanding %d..%d)", seq, c.seqDone, c.seqNext))
	}
	s := c.slotLocked(seq)
	if s.state != slotWaiting {
		panic(fmt.Sprintf("BUG: netio: request %d answered twice", seq))
	}
	return s
}

func (c *Conn) slotLocked(seq Seq) *slot {
	return &c.slots[uint64(seq)%uint64(len(c.slots))]
}

// acquireDeferLocked is acquireLocked, except that while OnTraffic batches the write is
// left to its end (it reports false then).
func (c *Conn) acquireDeferLocked(seq Seq) bool {
	start := c.acquireLocked(seq)
	if start && c.batching {
		c.deferred = true
		return false
	}
	return start
}

// beginBatch and endBatch bracket OnTraffic's dispatch (event loop only); endBatch
// writes what Reply deferred.
func (c *Conn) beginBatch() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

func (c *Conn) endBatch() {
	c.mu.Lock()
	start := c.deferred
	c.batching, c.deferred = false, false
	c.mu.Unlock()
	if start {
		c.write()
	}
}

// acquireLocked takes the write token if seq just made the head answered.
func (c *Conn) acquireLocked(seq Seq) bool {
	if c.writing || seq != c.seqOut {
		return false
	}
	c.writing = true
	c.srv.writers.Add(1)
	return true
}

type admitResult uint8

const (
	admitted admitResult = iota
	admitPaused
	admitClosed
)

// admit gives a wholly buffered frame its sequence number, or says why not.
// Event loop only.
func (c *Conn) admit() (Seq, admitResult) {
	if c.closeReq.Load() {
		return 0, admitClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, admitClosed
	}
	if c.srv.stopping.Load() || int(c.seqNext-c.seqDone) >= len(c.slots) {
		c.paused = true
		return 0, admitPaused
	}
	seq := c.seqNext
	c.slotLocked(seq).state = slotWaiting
	c.seqNext++
	return seq, admitted
}

// resumeLocked reports whether dispatch should resume after retiring.
func (c *Conn) resumeLocked() bool {
	if !c.paused || c.closed || c.srv.stopping.Load() {
		return false
	}
	if int(c.seqNext-c.seqDone) > len(c.slots)/2 {
		return false
	}
	c.paused = false
	return true
}

// drainedLocked reports whether the connection owes nothing more.
func (c *Conn) drainedLocked() bool {
	return c.closed || c.seqNext == c.seqDone
}

// failLocked stops all writing and collects the Release of every answered
// slot the write-token holder has not taken; the holder drops the ones it
// took. Waiting slots are forgotten: their late Reply only releases.
func (c *Conn) failLocked(rel []func()) []func() {
	if c.closed {
		return rel
	}
	c.closed = true
	c.dead.Store(true)
	for seq := c.seqOut; seq < c.seqNext; seq++ {
		s := c.slotLocked(seq)
		if s.state == slotReady && s.resp.Release != nil {
			rel = append(rel, s.resp.Release)
		}
		*s = slot{}
	}
	return rel
}

// fail closes the connection because a write failed. Write-token holder only.
func (c *Conn) fail() {
	c.mu.Lock()
	rel := c.failLocked(nil)
	c.closeGnetLocked()
	c.mu.Unlock()
	runAll(rel)
}

// onClose runs on the event loop when gnet closes the connection.
func (c *Conn) onClose() {
	c.mu.Lock()
	rel := c.failLocked(nil)
	c.gone = true
	writing := c.writing
	c.mu.Unlock()
	if writing {
		// Wake a writer parked on the netpoller without waiting for a
		// write step in progress; the writer closes wc on its way out.
		_ = c.wc.SetWriteDeadline(time.Unix(1, 0))
	} else {
		_ = c.wc.Close()
	}
	runAll(rel)
}

func (c *Conn) touch() {
	c.lastActive.Store(c.srv.now())
}

func runAll(fns []func()) {
	for _, f := range fns {
		f()
	}
}

// errShortFile: a file region reached past the end of its file.
var errShortFile = fmt.Errorf("netio: file shorter than its region: %w", unix.EIO)
