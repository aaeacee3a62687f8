package netio

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Defaults, as Kafka names and sets them.
const (
	// DefaultMaxRequestBytes is socket.request.max.bytes.
	DefaultMaxRequestBytes int32 = 100 << 20
	// DefaultIdleTimeout is connections.max.idle.ms.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxInflight bounds outstanding requests per connection.
	DefaultMaxInflight = 64
)

// Config configures a Server. The zero value of each field means its default.
type Config struct {
	// Addr is "tcp://host:port", "tcp4://…", "tcp6://…", "unix://path" or a
	// bare "host:port" (tcp). Port 0 picks a free port; see Server.Addr.
	Addr string
	// MaxRequestBytes is the largest accepted frame payload
	// (socket.request.max.bytes); 0 means DefaultMaxRequestBytes.
	MaxRequestBytes int32
	// MaxConnections caps open connections; a connection beyond it is closed
	// as soon as it is accepted. 0 means no cap.
	MaxConnections int
	// IdleTimeout closes a connection that has neither read nor written a
	// byte for this long and has no outstanding request
	// (connections.max.idle.ms). 0 means DefaultIdleTimeout; < 0 disables it.
	IdleTimeout time.Duration
	// MaxInflight bounds requests per connection that are dispatched but not
	// yet answered and written; at the bound the connection's frames wait.
	// 0 means DefaultMaxInflight.
	MaxInflight int
	// Multicore runs several event loops: one per P (GOMAXPROCS) but one, at least one;
	// NumLoops > 0 overrides it. One P is left to goroutines because an event loop's thread
	// blocked in epoll_wait keeps its P (in a system call) until the runtime's sysmon takes
	// it back — up to 10 ms on a quiet process — so with a loop on every P a goroutine made
	// runnable by a loop (a parked fetch woken by another connection's append, a writer) could
	// wait that long for a P. Measured on 2 CPUs (make perf S3): two loops gave end-to-end p99
	// 13.6 / 4.9 / 14.6 ms in three runs, one loop 4.9 / 4.0 / 3.9 ms, with S1 unchanged.
	Multicore bool
	NumLoops  int
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("netio: empty Addr")
	}
	if !strings.Contains(cfg.Addr, "://") {
		cfg.Addr = "tcp://" + cfg.Addr
	}
	if strings.HasPrefix(cfg.Addr, "udp") {
		return cfg, fmt.Errorf("netio: %q: only stream sockets are supported", cfg.Addr)
	}
	if cfg.MaxRequestBytes < 0 || cfg.MaxConnections < 0 || cfg.MaxInflight < 0 || cfg.NumLoops < 0 {
		return cfg, errors.New("netio: negative limit in Config")
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	return cfg, nil
}

// eventLoops is the number of event loops Start runs for cfg (0: gnet's default, one).
func eventLoops(cfg Config) int {
	switch {
	case cfg.NumLoops > 0:
		return cfg.NumLoops
	case cfg.Multicore:
		return max(1, runtime.GOMAXPROCS(0)-1)
	}
	return 0
}
