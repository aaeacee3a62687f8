package broker

// acks=all in cluster mode: a produce whose batches are appended on the leader is answered
// once the high watermark has passed every one of them (each partition's ISR has the batch),
// or with REQUEST_TIMED_OUT for the partitions that did not get there within the request's
// timeout_ms, or NOT_LEADER_OR_FOLLOWER for those whose leadership moved meanwhile. When the
// ISR shrank below min.insync.replicas by the time the batch was committed the partition
// answers NOT_ENOUGH_REPLICAS_AFTER_APPEND, as Kafka does.
//
// The produce state holds one ackWait per waiting partition; each partition holds pointers to
// the waits on it. A wait completes exactly once (under the state's ackMu); it is removed
// from the partition's list before it completes, so once every wait is done nothing refers to
// the (pooled) produce state any more.

import (
	"time"

	"github.com/spate-broker/spate/netio"
)

type ackWait struct {
	st       *produceState
	p        *partition
	pp       *prodPart
	required int64 // the high watermark that commits the batch: its last offset + 1
	minISR   int
	done     bool       // guarded by st.ackMu
	ch       chan int16 // set instead of st for a blocking wait (awaitCommitted); capacity 1
}

const errNotEnoughReplicasAfterAppend int16 = 20

// addAckWait records that pp's batch on p needs the high watermark to reach required.
func (st *produceState) addAckWait(p *partition, pp *prodPart, required int64) {
	st.waits = append(st.waits, ackWait{st: st, p: p, pp: pp, required: required, minISR: p.minISR})
}

// awaitAcks parks the produce until its waits complete, then answers it. The caller has
// made the topic names st's own (ownNames).
func (b *Broker) awaitAcks(c *netio.Conn, seq netio.Seq, h *reqHeader, st *produceState) {
	st.ackMu.Lock()
	st.ackLeft = len(st.waits)
	st.ackGen++
	gen := st.ackGen
	st.ackConn, st.ackSeq, st.ackHeader = c, seq, *h
	st.ackMu.Unlock()
	timeout := time.Duration(st.timeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Millisecond
	}
	// The timer exists before any wait is visible to a partition (ackDone stops it).
	st.ackTimer = time.AfterFunc(timeout, func() { b.ackTimeout(st, gen) })
	for i := range st.waits {
		w := &st.waits[i]
		w.p.repl.ackMu.Lock()
		w.p.repl.ackWaiters = append(w.p.repl.ackWaiters, w)
		w.p.repl.ackMu.Unlock()
	}
	// The high watermark may have passed already (a fast follower, or an ISR of one).
	for i := range st.waits {
		st.waits[i].p.completeAcks(false)
	}
}

// ackTimeout answers the waits still pending with REQUEST_TIMED_OUT.
func (b *Broker) ackTimeout(st *produceState, gen uint64) {
	st.ackMu.Lock()
	if st.ackGen != gen || st.ackLeft == 0 {
		st.ackMu.Unlock()
		return
	}
	var pending []*ackWait
	for i := range st.waits {
		if !st.waits[i].done {
			pending = append(pending, &st.waits[i])
		}
	}
	st.ackMu.Unlock()
	for _, w := range pending {
		if w.p.removeAck(w) {
			b.ackDone(w, errRequestTimedOut)
		}
	}
}

// removeAck takes w off the partition's list; false when it was gone already (completing).
func (p *partition) removeAck(w *ackWait) bool {
	p.repl.ackMu.Lock()
	defer p.repl.ackMu.Unlock()
	for i, x := range p.repl.ackWaiters {
		if x == w {
			last := len(p.repl.ackWaiters) - 1
			p.repl.ackWaiters[i] = p.repl.ackWaiters[last]
			p.repl.ackWaiters[last] = nil
			p.repl.ackWaiters = p.repl.ackWaiters[:last]
			return true
		}
	}
	return false
}

// completeAcks completes the waits on p that the high watermark has passed — or all of them
// with NOT_LEADER_OR_FOLLOWER when notLeader.
func (p *partition) completeAcks(notLeader bool) {
	p.repl.ackMu.Lock()
	if len(p.repl.ackWaiters) == 0 {
		p.repl.ackMu.Unlock()
		return
	}
	hw := p.highWatermark()
	isr := p.isrSize()
	var done []*ackWait
	keep := p.repl.ackWaiters[:0]
	for _, w := range p.repl.ackWaiters {
		if notLeader || hw >= w.required {
			done = append(done, w)
		} else {
			keep = append(keep, w)
		}
	}
	for i := len(keep); i < len(p.repl.ackWaiters); i++ {
		p.repl.ackWaiters[i] = nil
	}
	p.repl.ackWaiters = keep
	p.repl.ackMu.Unlock()
	for _, w := range done {
		code := int16(0)
		switch {
		case notLeader:
			code = errNotLeaderOrFollower
		case isr < w.minISR:
			code = errNotEnoughReplicasAfterAppend
		}
		p.b.ackDone(w, code)
	}
}

// ackDone completes one wait; the last one answers the produce.
func (b *Broker) ackDone(w *ackWait, code int16) {
	if w.ch != nil {
		w.ch <- code // taken off the partition's list first: exactly once
		return
	}
	st := w.st
	st.ackMu.Lock()
	if w.done {
		st.ackMu.Unlock()
		return
	}
	w.done = true
	if code != 0 {
		w.pp.errCode = code
		w.pp.base = -1
	}
	st.ackLeft--
	last := st.ackLeft == 0
	st.ackMu.Unlock()
	if !last {
		return
	}
	st.ackTimer.Stop()
	st.waits = st.waits[:0]
	h := st.ackHeader
	b.finishProduce(st.ackConn, st.ackSeq, &h, st)
}

// awaitCommitted blocks until the high watermark reaches required — the broker's own writes
// (coordinator records, transaction markers) are acks=all as in Kafka — for at most
// internalAckTimeout, waiting on the partition's ack list like a produce does. It returns 0,
// NOT_LEADER_OR_FOLLOWER when leadership moved, NOT_ENOUGH_REPLICAS_AFTER_APPEND, or
// REQUEST_TIMED_OUT. A single node returns at once.
func (p *partition) awaitCommitted(required int64) int16 {
	if p.b.cluster == nil {
		return 0
	}
	w := &ackWait{p: p, required: required, minISR: p.minISRLoad(), ch: make(chan int16, 1)}
	p.repl.ackMu.Lock()
	p.repl.ackWaiters = append(p.repl.ackWaiters, w)
	p.repl.ackMu.Unlock()
	if !p.isLeader() {
		p.completeAcks(true)
	}
	p.completeAcks(false) // it may be committed already
	t := time.NewTimer(internalAckTimeout)
	defer t.Stop()
	select {
	case code := <-w.ch:
		return code
	case <-t.C:
		if p.removeAck(w) {
			return errRequestTimedOut
		}
		return <-w.ch // being completed right now
	}
}

const internalAckTimeout = 30 * time.Second

// minISRLoad reads min.insync.replicas (guarded by p.mu).
func (p *partition) minISRLoad() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.minISR
}
