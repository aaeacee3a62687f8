package netio

import (
	"net"

	"golang.org/x/sys/unix"
)

const (
	maxIov          = 1024    // IOV_MAX on Linux
	maxSendfileSpan = 1 << 30 // bytes per sendfile call
)

// writer is a connection's write cursor and scratch space. Only the holder
// of the connection's write token (Conn.writing) touches it, and the slots in
// [Conn.seqDone, w.end) it has taken are stable while it holds the token.
//
// The cursor (seq, part, off) is the next byte to write: part 0 is the size
// prefix, part i+1 is resp.Parts[i], off is bytes of that part already
// written. Between steps the cursor is normalized: it points at a byte still
// to write, or seq == end.
type writer struct {
	c    *Conn
	seq  Seq
	part int
	off  int64
	end  Seq // seqOut when last taken

	block   bool  // may wait for writability and may sendfile
	handoff bool  // inline step stopped: a goroutine must go on
	err     error // write error of the last step

	iov  []unix.Iovec
	rel  []func()
	step func(fd uintptr) bool // w.ioStep, bound once
}

func (w *writer) init(c *Conn) {
	w.c = c
	w.iov = make([]unix.Iovec, 0, 16)
	w.step = w.ioStep
}

// write runs with the write token just acquired: inline first, then on a
// goroutine if the socket pushed back or a file region is next.
func (c *Conn) write() {
	if c.w.run(false) {
		go c.w.run(true)
	}
}

// run writes answered responses in order until none is ready, then gives up
// the token. With block false it returns true (keeping the token) when it
// would have to wait or sendfile.
func (w *writer) run(block bool) (handoff bool) {
	c := w.c
	for {
		c.mu.Lock()
		if c.closed {
			w.dropLocked()
		} else {
			w.takeLocked()
			w.normalize()
		}
		wake := w.retireLocked()
		if len(w.rel) == 0 && w.seq == c.seqOut {
			c.writing = false
			closed := c.closed
			c.mu.Unlock()
			if closed {
				_ = c.wc.Close()
			}
			if wake {
				c.wake()
			}
			c.srv.writers.Done()
			return false
		}
		c.mu.Unlock()
		runAll(w.rel)
		clear(w.rel)
		w.rel = w.rel[:0]
		if wake {
			c.wake()
		}
		if w.seq == w.end {
			continue
		}
		w.block, w.handoff, w.err = block, false, nil
		err := c.rc.Write(w.step)
		if err == nil {
			err = w.err
		}
		if err != nil {
			c.fail()
			continue
		}
		if w.handoff {
			c.srv.handoffs.Add(1)
			return true
		}
	}
}

// takeLocked extends the taken range over answered slots.
func (w *writer) takeLocked() {
	c := w.c
	for c.seqOut < c.seqNext {
		st := c.slotLocked(c.seqOut).state
		if st != slotReady && st != slotNoReply {
			break
		}
		c.seqOut++
	}
	w.end = c.seqOut
}

// retireLocked frees the slots the cursor has passed and queues their
// Release. It reports whether dispatch should resume.
func (w *writer) retireLocked() (wake bool) {
	c := w.c
	if w.seq == c.seqDone {
		return false
	}
	for seq := c.seqDone; seq < w.seq; seq++ {
		s := c.slotLocked(seq)
		if s.resp.Release != nil {
			w.rel = append(w.rel, s.resp.Release)
		}
		*s = slot{}
	}
	c.seqDone = w.seq
	c.touch()
	return c.resumeLocked()
}

// dropLocked gives up the taken slots after the connection closed: those
// written but not retired and those not (fully) written alike.
func (w *writer) dropLocked() {
	c := w.c
	for seq := c.seqDone; seq < c.seqOut; seq++ {
		s := c.slotLocked(seq)
		if s.resp.Release != nil {
			w.rel = append(w.rel, s.resp.Release)
		}
		*s = slot{}
	}
	w.seq, w.part, w.off, w.end = c.seqOut, 0, 0, c.seqOut
	c.seqDone = c.seqOut
}

func (w *writer) slot(seq Seq) *slot {
	return &w.c.slots[uint64(seq)%uint64(len(w.c.slots))]
}

// cursorLen is the length of the part at (seq, part), or -1 past the end
// of the response.
func cursorLen(s *slot, part int) int64 {
	if s.state == slotNoReply || part > len(s.resp.Parts) {
		return -1
	}
	if part == 0 {
		return int64(len(s.size))
	}
	return partLen(&s.resp.Parts[part-1])
}

// normalize moves the cursor past finished parts, empty parts, finished
// responses and NoReply slots.
func (w *writer) normalize() {
	for w.seq < w.end {
		n := cursorLen(w.slot(w.seq), w.part)
		switch {
		case n < 0:
			w.seq, w.part, w.off = w.seq+1, 0, 0
		case w.off < n:
			return
		default:
			w.part, w.off = w.part+1, 0
		}
	}
}

// advance moves the cursor n written bytes forward.
func (w *writer) advance(n int64) {
	for n > 0 {
		w.normalize()
		if w.seq == w.end {
			panic("BUG: netio: wrote past the taken responses")
		}
		rest := cursorLen(w.slot(w.seq), w.part) - w.off
		if n < rest {
			w.off += n
			return
		}
		n -= rest
		w.part, w.off = w.part+1, 0
	}
	w.normalize()
}

// filePart returns the file region under the cursor, or nil for bytes.
func (w *writer) filePart() *FileRegion {
	if w.part == 0 {
		return nil
	}
	p := &w.slot(w.seq).resp.Parts[w.part-1]
	if p.Region.File == nil {
		return nil
	}
	return &p.Region
}

// gather collects byte parts from the cursor up to the next file region.
func (w *writer) gather() []unix.Iovec {
	iov := w.iov[:0]
	seq, part, off := w.seq, w.part, w.off
	for seq < w.end && len(iov) < maxIov {
		s := w.slot(seq)
		var b []byte
		switch {
		case cursorLen(s, part) < 0:
			seq, part, off = seq+1, 0, 0
			continue
		case part == 0:
			b = s.size[off:]
		default:
			p := &s.resp.Parts[part-1]
			if p.Region.File != nil {
				w.iov = iov
				return iov
			}
			b = p.Bytes[off:]
		}
		if len(b) > 0 {
			var v unix.Iovec
			v.Base = &b[0]
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		part, off = part+1, 0
	}
	w.iov = iov
	return iov
}

// ioStep is the syscall.RawConn.Write callback: it writes from the cursor
// until a response completes (so run can retire it), the taken responses
// are all written, an error, or EAGAIN. Returning false parks the goroutine
// on the netpoller until the socket is writable.
func (w *writer) ioStep(fd uintptr) bool {
	start := w.seq
	for w.seq == start && w.seq != w.end {
		if w.c.dead.Load() {
			w.err = net.ErrClosed
			return true
		}
		var n int
		var err error
		if r := w.filePart(); r != nil {
			if !w.block {
				w.handoff = true
				return true
			}
			n, err = w.sendfile(int(fd), r)
		} else {
			iov := w.gather()
			n, err = writev(int(fd), iov)
			w.c.srv.writevs.Add(1)
			clear(iov)
		}
		if n > 0 {
			w.advance(int64(n))
		}
		if !w.block && err == nil && w.seq == start {
			// One inline writev per step: a response longer than the
			// socket takes at once goes on on a goroutine, off the loop.
			w.handoff = true
			return true
		}
		switch {
		case err == unix.EAGAIN:
			if w.seq != start {
				return true
			}
			if !w.block {
				w.handoff = true
				return true
			}
			w.c.srv.parks.Add(1)
			return false
		case err != nil:
			w.err = err
			return true
		}
	}
	return true
}

func (w *writer) sendfile(out int, r *FileRegion) (int, error) {
	span := r.Length - w.off
	if span > maxSendfileSpan {
		span = maxSendfileSpan
	}
	off := r.Offset + w.off
	n, err := sendfile(out, int(r.File.Fd()), &off, int(span))
	if err == nil && n == 0 {
		err = errShortFile
	}
	return n, err
}
