// Package spatetest starts a Spate broker in-process for the load generator's tests, as
// broker/harness_test.go does: broker.New plus netio.Start on a loopback port, data in the
// test's temp dir. Only tests import it, so the bench binary does not contain a broker.
package spatetest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spate-broker/spate/broker"
	"github.com/spate-broker/spate/netio"
)

// Start starts a broker for the test and returns its address; it stops when the test ends.
// SPATE_TEST_DEBUG=1 turns on its debug log.
func Start(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdvertisedHost, cfg.AdvertisedPort = "127.0.0.1", int32(port)
	level := slog.LevelWarn
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv, err := netio.Start(netio.Config{Addr: addr, NumLoops: 2}, b)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Drain()
		srv.Stop(ctx)
		b.Close()
	})
	return addr
}
