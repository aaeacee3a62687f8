package replication

// The fetcher's connection: run dials the leader and writes requests as partitions become
// eligible; a reader goroutine per connection reads the responses, matches them to their
// requests by correlation id and hands them to the handlers of fetcher_apply.go.

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// run keeps a connection to the leader until Close.
func (f *Fetcher) run() {
	defer f.wg.Done()
	for f.ctx.Err() == nil {
		conn, err := f.cfg.Dial(f.ctx, "tcp", f.cfg.Addr)
		if err == nil {
			err = f.serve(conn)
		}
		if f.ctx.Err() != nil {
			return
		}
		f.log.Warn("replication: connection to leader failed; retrying", "err", err, "backoff", f.cfg.Backoff)
		f.timer.Reset(f.cfg.Backoff)
		select {
		case <-f.timer.C:
		case <-f.ctx.Done():
			return
		}
	}
}

// serve runs one connection: it writes requests as partitions become eligible while a reader
// goroutine applies the responses. On return every in-flight partition is eligible again.
func (f *Fetcher) serve(conn net.Conn) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		conn.Close()
		return ErrFetcherClosed
	}
	f.conn = conn
	f.mu.Unlock()
	readErr := make(chan error, 1)
	go func() { readErr <- f.readLoop(conn) }()
	var err error
	readerDone := false
	for err == nil {
		var wait int64
		if wait, err = f.sendPending(conn); err != nil {
			break
		}
		if wait > 0 {
			f.timer.Reset(time.Duration(wait))
		} else {
			f.timer.Stop()
		}
		select {
		case <-f.wake:
		case <-f.timer.C:
		case err = <-readErr:
			readerDone = true
		case <-f.ctx.Done():
			err = f.ctx.Err()
		}
	}
	f.timer.Stop()
	conn.Close()
	if !readerDone {
		<-readErr
	}
	f.mu.Lock()
	f.conn = nil
	for i := range f.slots {
		s := &f.slots[i]
		if !s.used {
			continue
		}
		for j, ps := range s.parts {
			if !ps.removed.Load() {
				ps.inflight = false // its response never came: fetch it again
			}
			s.parts[j] = nil
		}
		s.parts, s.used = s.parts[:0], false
	}
	f.inflight, f.fetching = 0, 0
	f.mu.Unlock()
	return err
}

// sendPending writes requests while a slot is free and some partition is eligible. It returns
// how long until the earliest backed-off partition becomes eligible (0: none).
func (f *Fetcher) sendPending(conn net.Conn) (wait int64, err error) {
	for {
		now := f.now()
		f.mu.Lock()
		ok := f.buildLocked(now)
		if !ok {
			wait = f.earliestDelayLocked(now)
		}
		buf := f.wbuf
		f.mu.Unlock()
		if !ok {
			return wait, nil
		}
		if err := conn.SetWriteDeadline(time.Now().Add(f.cfg.RequestTimeout)); err != nil {
			return 0, err
		}
		if _, err := conn.Write(buf); err != nil {
			return 0, err
		}
	}
}

// buildLocked encodes the next request into wbuf and claims a slot for it.
func (f *Fetcher) buildLocked(now int64) bool {
	if f.inflight >= len(f.slots) {
		return false
	}
	var s *slot
	for i := range f.slots {
		if !f.slots[i].used {
			s = &f.slots[i]
			break
		}
	}
	return f.buildEpochsLocked(s, now) ||
		f.buildListLocked(s, now, PhaseListLatest) ||
		f.buildListLocked(s, now, PhaseListEarliest) ||
		f.buildFetchLocked(s, now)
}

func (f *Fetcher) eligibleLocked(ps *partState, phase Phase, now int64) bool {
	return ps.phase == phase && !ps.inflight && ps.delayUntil <= now
}

func (f *Fetcher) claimLocked(s *slot, ps *partState) {
	ps.inflight = true
	ps.out = outcome{}
	s.parts = append(s.parts, ps)
}

func (f *Fetcher) useSlotLocked(s *slot, kind reqKind) int32 {
	f.nextCorr++
	if f.nextCorr < 0 {
		f.nextCorr = 1
	}
	s.used, s.kind, s.corr = true, kind, f.nextCorr
	for _, ps := range s.parts {
		ps.corr = s.corr
	}
	f.inflight++
	if kind == kindFetch {
		f.fetching++
	}
	return s.corr
}

func (f *Fetcher) buildFetchLocked(s *slot, now int64) bool {
	if f.fetching > 0 && !f.anyHotLocked(now) {
		return false // it could park ahead of the fetches in flight: wait for them
	}
	f.reqParts = f.reqParts[:0]
	for ps := f.head; ps != nil; ps = ps.next {
		if !f.eligibleLocked(ps, PhaseFetching, now) {
			continue
		}
		epoch, ok := ps.r.Epochs.Latest()
		if !ok {
			epoch = UndefinedEpoch
		}
		ps.sentOffset = ps.r.Log.LogEndOffset()
		f.reqParts = append(f.reqParts, fetchPartition{
			topic:              ps.tp.Topic,
			partition:          ps.tp.Partition,
			currentLeaderEpoch: ps.r.LeaderEpoch,
			fetchOffset:        ps.sentOffset,
			lastFetchedEpoch:   epoch,
			logStartOffset:     ps.r.Log.LogStartOffset(),
			partitionMaxBytes:  f.cfg.PartitionMaxBytes,
		})
		f.claimLocked(s, ps)
	}
	if len(f.reqParts) == 0 {
		return false
	}
	f.params.correlationID = f.useSlotLocked(s, kindFetch)
	f.wbuf = appendFetchRequest(f.wbuf[:0], &f.params, f.reqParts)
	return true
}

func (f *Fetcher) anyHotLocked(now int64) bool {
	for ps := f.head; ps != nil; ps = ps.next {
		if ps.hot && f.eligibleLocked(ps, PhaseFetching, now) {
			return true
		}
	}
	return false
}

func (f *Fetcher) buildEpochsLocked(s *slot, now int64) bool {
	var req *kmsg.OffsetForLeaderEpochRequest
	for ps := f.head; ps != nil; ps = ps.next {
		if !f.eligibleLocked(ps, PhaseTruncating, now) {
			continue
		}
		if req == nil {
			req = kmsg.NewPtrOffsetForLeaderEpochRequest()
			req.SetVersion(offsetForLeaderEpochVersion)
			req.ReplicaID = f.cfg.LocalID
		}
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != ps.tp.Topic {
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = ps.tp.Topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		p.Partition = ps.tp.Partition
		p.CurrentLeaderEpoch = ps.r.LeaderEpoch
		p.LeaderEpoch, _ = ps.r.Epochs.Latest() // UNDEFINED when empty: the leader answers UNDEFINED
		t := &req.Topics[len(req.Topics)-1]
		t.Partitions = append(t.Partitions, p)
		f.claimLocked(s, ps)
	}
	if req == nil {
		return false
	}
	f.wbuf = f.formatter.AppendRequest(f.wbuf[:0], req, f.useSlotLocked(s, kindEpochs))
	return true
}

func (f *Fetcher) buildListLocked(s *slot, now int64, phase Phase) bool {
	var req *kmsg.ListOffsetsRequest
	for ps := f.head; ps != nil; ps = ps.next {
		if !f.eligibleLocked(ps, phase, now) {
			continue
		}
		if req == nil {
			req = kmsg.NewPtrListOffsetsRequest()
			req.SetVersion(listOffsetsVersion)
			req.ReplicaID = f.cfg.LocalID
		}
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != ps.tp.Topic {
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = ps.tp.Topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Partition = ps.tp.Partition
		p.CurrentLeaderEpoch = ps.r.LeaderEpoch
		p.Timestamp = -1 // latest
		if phase == PhaseListEarliest {
			p.Timestamp = -2
		}
		t := &req.Topics[len(req.Topics)-1]
		t.Partitions = append(t.Partitions, p)
		f.claimLocked(s, ps)
	}
	if req == nil {
		return false
	}
	kind := kindListLatest
	if phase == PhaseListEarliest {
		kind = kindListEarliest
	}
	f.wbuf = f.formatter.AppendRequest(f.wbuf[:0], req, f.useSlotLocked(s, kind))
	return true
}

// earliestDelayLocked returns the time until the first backed-off partition is due, 0 if none.
func (f *Fetcher) earliestDelayLocked(now int64) int64 {
	var wait int64
	for ps := f.head; ps != nil; ps = ps.next {
		if ps.inflight || ps.phase == PhasePaused || ps.delayUntil <= now {
			continue
		}
		if d := ps.delayUntil - now; wait == 0 || d < wait {
			wait = d
		}
	}
	return wait
}

var (
	errFrameTooLarge       = errors.New("replication: response frame too large")
	errUnknownCorrelation  = errors.New("replication: response to no request in flight")
	errLeaderTimedOut      = errors.New("replication: leader did not answer in time")
	errMalformedKmsgAnswer = errors.New("replication: malformed response")
)

// readLoop reads and applies responses until the connection fails.
func (f *Fetcher) readLoop(conn net.Conn) error {
	for {
		if err := conn.SetReadDeadline(time.Now().Add(f.cfg.MaxWait + f.cfg.RequestTimeout)); err != nil {
			return err
		}
		n, err := io.ReadFull(conn, f.hdr[:])
		if err != nil {
			if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				f.mu.Lock()
				idle := f.inflight == 0
				f.mu.Unlock()
				if idle {
					continue
				}
				return errLeaderTimedOut
			}
			return err
		}
		size := int(int32(uint32(f.hdr[0])<<24 | uint32(f.hdr[1])<<16 | uint32(f.hdr[2])<<8 | uint32(f.hdr[3])))
		if size < 4 || size > f.cfg.MaxResponseBytes {
			return errFrameTooLarge
		}
		if cap(f.rbuf) < size {
			f.rbuf = make([]byte, 1<<bitsFor(size))
		}
		frame := f.rbuf[:size]
		if _, err := io.ReadFull(conn, frame); err != nil {
			return err
		}
		if err := f.handle(frame); err != nil {
			return err
		}
	}
}

// bitsFor returns the smallest b with 1<<b >= n.
func bitsFor(n int) uint {
	b := uint(0)
	for 1<<b < n {
		b++
	}
	return b
}

func (f *Fetcher) handle(frame []byte) error {
	corr := int32(uint32(frame[0])<<24 | uint32(frame[1])<<16 | uint32(frame[2])<<8 | uint32(frame[3]))
	f.mu.Lock()
	var s *slot
	for i := range f.slots {
		if f.slots[i].used && f.slots[i].corr == corr {
			s = &f.slots[i]
		}
	}
	f.mu.Unlock()
	if s == nil {
		return errUnknownCorrelation
	}
	var err error
	switch s.kind {
	case kindFetch:
		err = f.handleFetch(s, frame)
	case kindEpochs:
		err = f.handleEpochs(s, frame)
	default:
		err = f.handleList(s, frame)
	}
	if err != nil {
		return err
	}
	f.release(s)
	for i, c := range f.cbs {
		c.fn(c.hw, c.lso)
		f.cbs[i] = fetched{}
	}
	f.cbs = f.cbs[:0]
	return nil
}

// release applies the outcomes of a response to its partitions and frees its slot.
func (f *Fetcher) release(s *slot) {
	now := f.now()
	f.mu.Lock()
	for i, ps := range s.parts {
		s.parts[i] = nil
		if ps.removed.Load() {
			continue
		}
		ps.inflight = false
		o := &ps.out
		if !o.seen {
			o.delay = true // left out of the response: do not ask again at once
		}
		if o.phase != 0 {
			ps.phase = o.phase
		}
		if o.delay {
			ps.delayUntil = now + int64(f.cfg.Backoff)
		}
		if o.errSet {
			ps.lastErr = o.errCode
		}
		if o.moveToBack {
			f.moveToBackLocked(ps)
		}
		if o.hot != 0 || o.phase != 0 {
			ps.hot = o.hot >= 0 // a new phase restarts hot: its first fetch is answered at once
		}
	}
	if s.kind == kindFetch {
		f.fetching--
	}
	s.parts, s.used = s.parts[:0], false
	f.inflight--
	f.mu.Unlock()
	f.signal()
}

// resolveLocked finds the partition of a response in the request it answers (nil if it was
// not in it, or was removed or replaced since).
func (f *Fetcher) resolveLocked(s *slot, topic []byte, partition int32) *partState {
	t := f.byName[string(topic)]
	if t == nil {
		return nil
	}
	ps := t.parts[partition]
	if ps == nil || !ps.inflight || ps.corr != s.corr {
		return nil
	}
	return ps
}
