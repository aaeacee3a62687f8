package netio

import (
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Large frames. gnet keeps the bytes of a frame that has not fully arrived in a ring buffer
// per connection, which grows (copying) to hold the whole frame and hands a frame that wraps
// around its end out as one more copy. A frame of bigFrameMin bytes or more is instead read
// into a buffer of its exact size as it arrives — what gnet already read is copied over, the
// rest is read from the socket into it directly (fillBig) — and dispatched from there.
//
// The buffers' capacity over all connections is bounded by bigBudget; a frame that would
// pass it is left to gnet's ring buffer, as any smaller frame. A connection keeps its buffer
// for the next large frame when it is at most bigKeep bytes, and drops it otherwise.
//
// Event loop only (the connection's): big is touched by OnTraffic and onClose, which gnet
// runs on the connection's loop.

const (
	bigFrameMin = 256 << 10 // frames from this size (size prefix included) get their own buffer
	bigKeep     = 16 << 20  // a connection keeps a buffer up to this capacity between frames
	bigBudget   = 512 << 20 // the most capacity held in large-frame buffers, all connections
)

// bigFrame is a connection's large frame in progress.
type bigFrame struct {
	buf   []byte   // nil when no frame is in progress; the size prefix first
	total int      // the frame's length, size prefix included
	spare []byte   // a kept buffer (capacity ≤ bigKeep) for the next frame
	crcs  []uint32 // CRC-32C of each whole crcChunk of the payload read so far (crc.go)
}

// startBig starts reading a frame of total bytes (size prefix included) into its own
// buffer; false when the budget would be passed.
func (c *Conn) startBig(total int) bool {
	b := &c.big
	if n := total/crcChunk + 1; cap(b.crcs) < n {
		b.crcs = make([]uint32, 0, n)
	}
	b.crcs = b.crcs[:0]
	if cap(b.spare) >= total {
		b.buf, b.spare, b.total = b.spare[:0], nil, total
		return true
	}
	if c.srv.bigBytes.Add(int64(total)) > c.srv.bigBudget {
		c.srv.bigBytes.Add(-int64(total))
		return false
	}
	c.releaseSpare()
	b.buf, b.total = make([]byte, 0, total), total
	return true
}

// fillBig moves what gnet has buffered into the frame, then reads the rest of the frame
// straight from the socket into it until the socket has no more (EAGAIN): those bytes skip
// gnet's read buffer and its copy, in reads of up to maxHotRead rather than gnet's 64 KiB.
// After each read the chunks it completed are checksummed (crc.go). gnet polls level-triggered, so whatever remains unread (the next frame) is reported
// again. It returns the frame's payload once it is whole; a socket at its end or failing
// closes the connection (the frame can never complete).
func (c *Conn) fillBig(gc gnet.Conn) (frame []byte, act gnet.Action, ready bool) {
	b := &c.big
	if len(b.buf) < b.total {
		n, _ := gc.Read(b.buf[len(b.buf):b.total])
		b.buf = b.buf[:len(b.buf)+n]
		b.sumChunks()
	}
	for len(b.buf) < b.total && gc.InboundBuffered() == 0 {
		n, err := unix.Read(gc.Fd(), b.buf[len(b.buf):min(b.total, len(b.buf)+maxHotRead)])
		switch {
		case n > 0:
			b.buf = b.buf[:len(b.buf)+n]
			b.sumChunks()
		case err == unix.EAGAIN:
			return nil, gnet.None, false
		case err == unix.EINTR:
		default: // n == 0: the peer closed
			return nil, gnet.Close, false
		}
	}
	if len(b.buf) < b.total {
		return nil, gnet.None, false
	}
	return b.buf[4:b.total:b.total], gnet.None, true
}

// doneBig ends the frame that was dispatched: its buffer is kept for the next one or dropped.
func (c *Conn) doneBig() {
	b := &c.big
	buf := b.buf
	b.buf, b.total = nil, 0
	if cap(buf) <= bigKeep {
		b.spare = buf[:0]
		return
	}
	c.srv.bigBytes.Add(-int64(cap(buf)))
}

// releaseSpare drops the kept buffer.
func (c *Conn) releaseSpare() {
	if b := &c.big; b.spare != nil {
		c.srv.bigBytes.Add(-int64(cap(b.spare)))
		b.spare = nil
	}
}

// closeBig drops the connection's large-frame buffers (it closed).
func (c *Conn) closeBig() {
	if b := &c.big; b.buf != nil {
		c.srv.bigBytes.Add(-int64(cap(b.buf)))
		b.buf = nil
	}
	c.releaseSpare()
}
