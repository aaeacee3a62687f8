// Command perf-kfake runs franz-go's kfake as a one-broker cluster in its own process, the
// peer Spate is measured against in perf/. It persists to -data-dir (kfake.DataDir: segment
// files of raw record batches, no fsync per write, as Spate by default) and serves
// /debug/pprof/ on -admin, so both brokers are started, profiled and measured the same way.
//
//	perf-kfake -listen 127.0.0.1:9092 -data-dir /tmp/kfake -admin 127.0.0.1:9645 [-log-level warn]
//
// SIGTERM or SIGINT closes the cluster (which writes its state to the data dir) and exits.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "perf-kfake:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("perf-kfake", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9092", "address to accept Kafka clients on (kfake always binds 127.0.0.1)")
	dataDir := fs.String("data-dir", "", "persistence folder (empty: in memory)")
	admin := fs.String("admin", "", "HTTP address of /debug/pprof/ (empty: off)")
	logLevel := fs.String("log-level", "warn", "none, error, warn, info or debug")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", *listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("listen port %q: %w", portStr, err)
	}
	level, ok := map[string]kfake.LogLevel{"none": kfake.LogLevelNone, "error": kfake.LogLevelError,
		"warn": kfake.LogLevelWarn, "info": kfake.LogLevelInfo, "debug": kfake.LogLevelDebug}[*logLevel]
	if !ok {
		return fmt.Errorf("log level %q: want none, error, warn, info or debug", *logLevel)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	if *admin != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() {
			if err := http.ListenAndServe(*admin, mux); err != nil {
				fmt.Fprintln(os.Stderr, "perf-kfake: admin endpoint:", err)
			}
		}()
	}
	fmt.Fprintln(os.Stderr, "perf-kfake listening on", c.ListenAddrs())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
	return nil
}
