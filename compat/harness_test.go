// Package compat runs real third-party Kafka clients — sarama, kafka-go and confluent-kafka-go
// (librdkafka) — against a spate broker on a loopback port, one test per client, each named
// after the client. It holds tests only.
//
// Every client talks to the broker through a tracing proxy (proxy_test.go): the broker
// advertises the proxy's port in Metadata, so every connection of every client passes through
// it. The proxy decodes each request and response with kmsg and keeps, per test, the API
// versions the client used, the last exchanges, and anything it could not decode or that the
// broker left unanswered. A test logs that on failure (and with -v). Environment:
//
//	SPATE_TEST_DEBUG=1   broker debug logs, every exchange printed as it happens, client logs
//	SPATE_TEST_DEBUG=2   the same, with each decoded request and response
package compat

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/spate-broker/spate/broker"
	"github.com/spate-broker/spate/netio"
)

// debugLevel is SPATE_TEST_DEBUG: 0 off, 1 logs and exchanges, 2 also decoded bodies.
func debugLevel() int {
	switch os.Getenv("SPATE_TEST_DEBUG") {
	case "", "0":
		return 0
	case "2":
		return 2
	default:
		return 1
	}
}

// testBroker is a broker serving one test on a loopback port, behind a tracing proxy.
type testBroker struct {
	addr  string // the proxy: what clients dial and what the broker advertises
	b     *broker.Broker
	srv   *netio.Server
	trace *tracer
}

// startBroker starts a broker on a new temp dir; mod adjusts its config.
func startBroker(t *testing.T, mod func(*broker.Config)) *testBroker {
	t.Helper()
	tr, err := newTracer(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdvertisedHost, cfg.AdvertisedPort = "127.0.0.1", int32(tr.port())
	level := slog.LevelWarn
	if debugLevel() > 0 {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
	if mod != nil {
		mod(&cfg)
	}
	b, err := broker.New(cfg)
	if err != nil {
		tr.close()
		t.Fatal(err)
	}
	srv, err := netio.Start(netio.Config{Addr: "127.0.0.1:0", NumLoops: 2}, b)
	if err != nil {
		b.Close()
		tr.close()
		t.Fatal(err)
	}
	tr.serve(srv.Addr().String())
	tb := &testBroker{addr: tr.addr(), b: b, srv: srv, trace: tr}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tr.close()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop server: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
		tr.report(t)
	})
	return tb
}

// testContext is a context bounded by the whole test's budget.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls check every 20 ms until it returns nil or 10 s pass, then fails with the
// last error.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
