package replication

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// cannedFetch is a Fetch v12 response frame (size prefix included) for one partition holding
// one batch, whose correlation id and batch base offset are patched in place per request.
type cannedFetch struct {
	frame   []byte
	records int // records in the batch
	corrAt  int
	baseAt  int
}

func newCannedFetch(topic string, partition int32, records, valueLen int, epoch int32) *cannedFetch {
	batch := testBatch(0, records, valueLen)
	binary.BigEndian.PutUint32(batch[12:], uint32(epoch)) // partition leader epoch: not under the CRC
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(12)
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.Partition, rp.HighWatermark, rp.LastStableOffset, rp.RecordBatches = partition, 0, 0, batch
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = append(frame, 0, 0, 0, 0, 0) // correlation id, header tags
	frame = resp.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return &cannedFetch{frame: frame, records: records, corrAt: 4, baseAt: bytes.Index(frame, batch)}
}

// set patches the correlation id and the batch's base offset.
func (c *cannedFetch) set(corr int32, base int64) {
	binary.BigEndian.PutUint32(c.frame[c.corrAt:], uint32(corr))
	binary.BigEndian.PutUint64(c.frame[c.baseAt:], uint64(base))
}

// fetchOffsetOf reads the first partition's fetch offset from a Fetch v12 request frame
// (after its size prefix).
func fetchOffsetOf(req []byte) (corr int32, offset int64, ok bool) {
	r := reader{b: req}
	key, _ := r.int16(), r.int16()
	corr = r.int32()
	r.take(int(r.int16())) // client id
	r.skipTags()
	r.take(4 + 4 + 4 + 4 + 1 + 4 + 4) // replica id … session epoch
	r.compactLen()
	r.compactBytes() // topic
	r.compactLen()
	r.take(4 + 4) // partition, current leader epoch
	offset = r.int64()
	return corr, offset, !r.bad && key == int16(kmsg.Fetch)
}

// stubLeader answers every fetch with its canned batch at the requested offset, from reused
// buffers: its steady state allocates nothing, so the process's allocations while it runs are
// the follower's.
type stubLeader struct {
	ln      net.Listener
	canned  *cannedFetch
	fetches atomic.Int64
	mu      sync.Mutex
	target  int64         // guarded by mu; fetches count to signal at
	reached chan struct{} // receives when target is reached
	wg      sync.WaitGroup
	conns   []net.Conn
}

func startStubLeader(tb testing.TB, canned *cannedFetch) *stubLeader {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &stubLeader{ln: ln, canned: canned, reached: make(chan struct{}, 1), target: -1}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *stubLeader) serve(c net.Conn) {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(buf))
		if n > len(buf) {
			return
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		corr, off, ok := fetchOffsetOf(buf[:n])
		if !ok {
			return // the stub speaks Fetch only
		}
		s.canned.set(corr, off)
		if _, err := c.Write(s.canned.frame); err != nil {
			return
		}
		n64 := s.fetches.Add(1)
		s.mu.Lock()
		hit := n64 == s.target
		s.mu.Unlock()
		if hit {
			s.reached <- struct{}{}
		}
	}
}

// waitFetches blocks until the stub has answered n fetches in all.
func (s *stubLeader) waitFetches(n int64) {
	s.mu.Lock()
	if s.fetches.Load() >= n {
		s.mu.Unlock()
		return
	}
	s.target = n
	s.mu.Unlock()
	<-s.reached
}
