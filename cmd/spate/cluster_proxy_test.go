//go:build linux

package main

// chaosNet: a TCP proxy, in the test process, in front of every listener of every node of a
// procCluster (its Kafka listener, which the node advertises, and its Raft listener, which
// the voters name), so that a test can cut a node off from the others or slow its links.
//
// A proxy knows the node behind it (the destination) and finds the node that opened each
// connection (the source) from /proc: the peer socket's inode in /proc/net/tcp, then the
// node process holding that inode among its file descriptors. The test process (clients)
// and anything not found are the source -1. What happens to the bytes of a connection is
// decided per chunk by the worse of the two nodes' links:
//
//	pass       bytes are forwarded
//	delay      each chunk is forwarded after the link's delay (latency, not a rate limit)
//	blackhole  connections stay open and every byte is swallowed, as when packets are dropped
//	reset      connections are closed, new ones closed as soon as they are accepted
//
// Cutting node i off (reset or blackhole on link i) therefore cuts i from the others in
// both directions, and clients from i. A link leaving blackhole closes the connections it
// swallowed bytes of (their streams are corrupt).

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

type linkMode int

const (
	linkPass linkMode = iota
	linkDelay
	linkBlackhole
	linkReset
)

func (m linkMode) String() string {
	return [...]string{"pass", "delay", "blackhole", "reset"}[m]
}

type nodeLink struct {
	mode  linkMode
	delay time.Duration
}

type chaosNet struct {
	pids func() []int // each node's process id, 0 when it is not running

	mu      sync.Mutex
	links   []nodeLink // per node
	conns   map[*proxyConn]struct{}
	proxies []*tcpProxy
	closed  bool
	// accepted counts connections by proxy kind and source (index 0: not a node).
	accepted map[string][]int
}

func newChaosNet(nodes int, pids func() []int) *chaosNet {
	return &chaosNet{pids: pids, links: make([]nodeLink, nodes), conns: map[*proxyConn]struct{}{}, accepted: map[string][]int{}}
}

// listen starts a proxy on a free loopback port for a listener of node (setTarget gives its
// address); kind names the listener in the statistics.
func (n *chaosNet) listen(kind string, node int) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{n: n, kind: kind, node: node, ln: ln}
	n.mu.Lock()
	n.proxies = append(n.proxies, p)
	n.mu.Unlock()
	go p.serve()
	return p, nil
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// setTarget sets the address the proxy forwards to.
func (p *tcpProxy) setTarget(addr string) {
	p.n.mu.Lock()
	p.target = addr
	p.n.mu.Unlock()
}

// set changes node's link. Connections of the node are closed when it becomes reset and when
// it leaves blackhole.
func (n *chaosNet) set(node int, mode linkMode, delay time.Duration) {
	n.mu.Lock()
	old := n.links[node]
	n.links[node] = nodeLink{mode: mode, delay: delay}
	var doomed []*proxyConn
	if mode == linkReset || (old.mode == linkBlackhole && mode != linkBlackhole) {
		for c := range n.conns {
			if c.src == node || c.dst == node {
				doomed = append(doomed, c)
			}
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		c.close()
	}
}

// stats describes the connections accepted, by listener kind and source.
func (n *chaosNet) stats() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var kinds []string
	for k := range n.accepted {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var out []string
	for _, k := range kinds {
		a := n.accepted[k]
		parts := []string{fmt.Sprintf("%d from clients", a[0])}
		for i, v := range a[1:] {
			parts = append(parts, fmt.Sprintf("%d from node %d", v, i+1))
		}
		out = append(out, k+": "+strings.Join(parts, ", "))
	}
	return strings.Join(out, "; ")
}

// untraced returns how many connections of a kind were not traced to a node, of how many.
func (n *chaosNet) untraced(kind string) (unknown, total int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, v := range n.accepted[kind] {
		total += v
	}
	if a := n.accepted[kind]; a != nil {
		unknown = a[0]
	}
	return unknown, total
}

// link is the effective link of a connection from src (-1: not a node) to dst.
func (n *chaosNet) link(src, dst int) nodeLink {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.links[dst]
	if src >= 0 {
		s := n.links[src]
		if s.mode > l.mode {
			l.mode = s.mode
		}
		l.delay = max(l.delay, s.delay)
	}
	return l
}

func (n *chaosNet) track(c *proxyConn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *chaosNet) untrack(c *proxyConn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
}

// close stops every proxy and closes every connection.
func (n *chaosNet) close() {
	n.mu.Lock()
	n.closed = true
	ps := n.proxies
	var cs []*proxyConn
	for c := range n.conns {
		cs = append(cs, c)
	}
	n.mu.Unlock()
	for _, p := range ps {
		p.ln.Close()
	}
	for _, c := range cs {
		c.close()
	}
}

type tcpProxy struct {
	n      *chaosNet
	kind   string
	node   int
	ln     net.Listener
	target string // guarded by n.mu
}

type proxyConn struct {
	n        *chaosNet
	src, dst int
	client   net.Conn
	server   net.Conn // nil for a connection accepted into a blackhole
	once     sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.client.Close()
		if c.server != nil {
			c.server.Close()
		}
		c.n.untrack(c)
	})
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) handle(client net.Conn) {
	pc := &proxyConn{n: p.n, src: socketOwner(client, p.n.pids()), dst: p.node, client: client}
	p.n.mu.Lock()
	if p.n.accepted[p.kind] == nil {
		p.n.accepted[p.kind] = make([]int, len(p.n.links)+1)
	}
	p.n.accepted[p.kind][pc.src+1]++
	p.n.mu.Unlock()
	switch p.n.link(pc.src, pc.dst).mode {
	case linkReset:
		if tc, ok := client.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as from a host that refuses
		}
		client.Close()
		return
	case linkBlackhole:
		if !p.n.track(pc) {
			client.Close()
			return
		}
		go pc.pipe(client, nil)
		return
	}
	p.n.mu.Lock()
	target := p.target
	p.n.mu.Unlock()
	server, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	pc.server = server
	if !p.n.track(pc) {
		pc.close()
		return
	}
	go pc.pipe(client, server)
	go pc.pipe(server, client)
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies from to to (nil: swallow everything) chunk by chunk, each per the link at the
// time it was read.
func (c *proxyConn) pipe(from, to net.Conn) {
	defer c.close()
	q := make(chan chunk, 256)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := to.Write(ch.b); err != nil {
				c.close()
				for range q { // let the reader finish
				}
				return
			}
		}
	}()
	defer func() { close(q); <-wdone }()
	buf := make([]byte, 64<<10)
	for {
		k, err := from.Read(buf)
		if k > 0 {
			l := c.n.link(c.src, c.dst)
			switch {
			case l.mode == linkReset:
				return
			case l.mode == linkBlackhole || to == nil:
				// swallowed
			default:
				due := time.Now()
				if l.mode == linkDelay {
					due = due.Add(l.delay)
				}
				q <- chunk{b: append([]byte(nil), buf[:k]...), due: due}
			}
		}
		if err != nil {
			return
		}
	}
}

// socketOwner returns the index in pids of the process that holds the other end of c, a
// connection accepted on loopback, or -1.
func socketOwner(c net.Conn, pids []int) int {
	ra, ok1 := c.RemoteAddr().(*net.TCPAddr)
	la, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || ra.IP.To4() == nil || la.IP.To4() == nil {
		return -1
	}
	hex := func(a *net.TCPAddr) string {
		ip := a.IP.To4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
	}
	local, remote := hex(ra), hex(la) // as the peer's socket sees them
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return -1
	}
	defer f.Close()
	inode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == local && fs[2] == remote {
			inode = fs[9]
			break
		}
	}
	if inode == "" || inode == "0" {
		return -1
	}
	want := "socket:[" + inode + "]"
	for i, pid := range pids {
		if pid <= 0 {
			continue
		}
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == want {
				return i
			}
		}
	}
	return -1
}
