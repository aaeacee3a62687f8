package broker

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spate-broker/spate/netio"
)

// testBroker is a broker serving on a loopback port for one test.
type testBroker struct {
	t    testing.TB
	dir  string
	addr string
	b    *Broker
	srv  *netio.Server
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroker starts a broker on dir (a new temp dir when empty). mod adjusts the config.
func startBroker(t testing.TB, dir string, mod func(*Config)) *testBroker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	port := freePort(t)
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.AdvertisedHost, cfg.AdvertisedPort = "127.0.0.1", int32(port)
	level := slog.LevelWarn
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv, err := netio.Start(netio.Config{Addr: addr, NumLoops: 2}, b)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	tb := &testBroker{t: t, dir: dir, addr: addr, b: b, srv: srv}
	t.Cleanup(tb.stop)
	return tb
}

// stop shuts the broker down cleanly (idempotent).
func (tb *testBroker) stop() {
	if tb.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tb.b.Drain()
	tb.srv.Stop(ctx)
	tb.b.Close()
	tb.srv = nil
}
