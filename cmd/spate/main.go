// Command spate runs a Spate broker: by default a single node on 127.0.0.1:9092 with its data
// in ./data and nothing else to start. Flags override environment variables (SPATE_<FLAG>,
// upper case, dashes as underscores), which override the defaults.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spate-broker/spate/broker"
	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/netio"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "spate:", err)
		os.Exit(1)
	}
}

// readProperties reads name=value lines; '#' and '!' start comments.
func readProperties(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want name=value", path, i+1)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("spate", flag.ContinueOnError)
	def := broker.DefaultConfig()
	listen := fs.String("listen", "127.0.0.1:9092", "address to accept Kafka clients on")
	advertised := fs.String("advertised", "", "host:port clients are told to connect to (default: the listen address)")
	dataDir := fs.String("data-dir", def.DataDir, "data folder")
	nodeID := fs.Int("node-id", int(def.NodeID), "node id")
	admin := fs.String("admin", "127.0.0.1:9644", "HTTP address of /metrics (empty: off)")
	partitions := fs.Int("num-partitions", int(def.NumPartitions), "num.partitions for auto-created topics")
	autoCreate := fs.Bool("auto-create-topics", def.AutoCreateTopics, "auto.create.topics.enable")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	maxConns := fs.Int("max-connections", 10000, "connection cap")
	maxRequest := fs.Int("socket-request-max-bytes", 100<<20, "socket.request.max.bytes: larger requests close the connection")
	idleMs := fs.Int64("connections-max-idle-ms", 600000, "connections.max.idle.ms")
	segBytes := fs.Int64("log-segment-bytes", def.Log.SegmentBytes, "log.segment.bytes: default segment.bytes of topics")
	segMs := fs.Int64("log-roll-ms", def.Log.SegmentMs, "log.roll.ms: default segment.ms of topics")
	retMs := fs.Int64("log-retention-ms", def.Log.RetentionMs, "log.retention.ms: default retention.ms of topics (-1: forever)")
	retBytes := fs.Int64("log-retention-bytes", def.Log.RetentionBytes, "log.retention.bytes: default retention.bytes of topics (-1: unbounded)")
	flushMsgs := fs.Int64("log-flush-interval-messages", def.Log.FlushMessages, "log.flush.interval.messages: default flush.messages of topics")
	flushMs := fs.Int64("log-flush-interval-ms", def.Log.FlushMs, "log.flush.interval.ms: default flush.ms of topics")
	maxMsg := fs.Int64("message-max-bytes", def.Log.MaxMessageBytes, "message.max.bytes: default max.message.bytes of topics")
	maxDecompressed := fs.Int("max-decompressed-batch-bytes", def.MaxDecompressedBatchBytes, "most bytes one batch may decompress to where the broker materializes it (log cleaner, internal topics); larger batches are not compacted")
	retCheckMs := fs.Int64("log-retention-check-interval-ms", def.RetentionCheckInterval.Milliseconds(), "log.retention.check.interval.ms")
	configPath := fs.String("config", "", "a properties file (name=value per line, names as the flags)")
	rebalanceDelay := fs.Duration("group-initial-rebalance-delay", def.Groups.InitialRebalanceDelay, "group.initial.rebalance.delay.ms")
	groupMinSession := fs.Duration("group-min-session-timeout", def.Groups.MinSessionTimeout, "group.min.session.timeout.ms: classic members asking for less get INVALID_SESSION_TIMEOUT")
	groupMaxSession := fs.Duration("group-max-session-timeout", def.Groups.MaxSessionTimeout, "group.max.session.timeout.ms: classic members asking for more get INVALID_SESSION_TIMEOUT")
	groupMaxSize := fs.Int("group-max-size", def.Groups.MaxSize, "group.max.size: most members of a classic group")
	consumerHeartbeat := fs.Duration("group-consumer-heartbeat-interval", def.Groups.ConsumerHeartbeatInterval, "group.consumer.heartbeat.interval.ms: the heartbeat interval given to consumer-protocol (KIP-848) members")
	consumerSession := fs.Duration("group-consumer-session-timeout", def.Groups.ConsumerSessionTimeout, "group.consumer.session.timeout.ms: a consumer-protocol member silent this long is fenced")
	consumerMaxSize := fs.Int("group-consumer-max-size", def.Groups.ConsumerMaxSize, "group.consumer.max.size: most members of a consumer group")
	migrationPolicy := def.Groups.MigrationPolicy
	fs.Var(&migrationPolicy, "group-consumer-migration-policy", "group.consumer.migration.policy: bidirectional, upgrade, downgrade or disabled (KIP-848 online migration between the classic and consumer group protocols)")
	offsetsPartitions := fs.Int("offsets-topic-partitions", int(def.Groups.OffsetsTopicPartitions), "offsets.topic.num.partitions (used when __consumer_offsets is created)")
	offsetsRetention := fs.Duration("offsets-retention", def.Groups.OffsetsRetention, "offsets.retention.minutes")
	txnMaxTimeout := fs.Duration("transaction-max-timeout", time.Duration(def.Txn.TransactionMaxTimeoutMs)*time.Millisecond, "transaction.max.timeout.ms: InitProducerId asking for more is INVALID_TRANSACTION_TIMEOUT")
	txnAbortInterval := fs.Duration("transaction-abort-timed-out-interval", time.Duration(def.Txn.AbortTimedOutTransactionsIntervalMs)*time.Millisecond, "transaction.abort.timed.out.transaction.cleanup.interval.ms")
	txnPartitions := fs.Int("transaction-state-partitions", int(def.Txn.StatePartitions), "transaction.state.log.num.partitions (used when __transaction_state is created)")
	txnIDExpiration := fs.Duration("transactional-id-expiration", time.Duration(def.Txn.TransactionalIDExpirationMs)*time.Millisecond, "transactional.id.expiration.ms")
	voters := fs.String("controller-quorum-voters", "", "cluster mode: the initial controllers (Raft voters) as id@host:port (Raft addresses), comma-separated; by default every one is also a broker, and a node not listed is broker-only. Empty, and no -controller-bootstrap-servers: a single node")
	roles := fs.String("process-roles", "", "cluster mode: process.roles, this node's roles: broker, controller, or broker,controller (default: broker,controller for a node among -controller-quorum-voters, else broker). A controller-only node hosts no data and answers only the controller APIs")
	bootstrap := fs.String("controller-bootstrap-servers", "", "cluster mode: Kafka addresses (host:port, comma-separated) of controller nodes, to reach the active controller before this node has the metadata; required for a broker-only node, which may be given just this (no -controller-quorum-voters)")
	raftListen := fs.String("controller-listen", "", "cluster mode: this node's Raft address (default: its entry in -controller-quorum-voters; required for a broker-only node)")
	raftAdvertised := fs.String("controller-advertised", "", "cluster mode: this node's Raft address as peers dial it (default: -controller-listen, which must then be a specific address); a broker-only node registers with it")
	sessionTimeout := fs.Duration("broker-session-timeout", 9*time.Second, "broker.session.timeout.ms: a broker that stops heartbeating is fenced after this")
	replicaLag := fs.Duration("replica-lag-time-max", 30*time.Second, "replica.lag.time.max.ms: a follower this far behind leaves the ISR")
	replication := fs.Int("default-replication-factor", int(def.DefaultReplication), "default.replication.factor for topics created without one")
	rack := fs.String("broker-rack", "", "broker.rack: replicas of a partition are spread over racks")
	selector := fs.String("replica-selector", "", "replica.selector.class: empty (consumers read from leaders) or rack (KIP-392: a consumer that sets client.rack reads from an in-sync replica in its rack; Kafka's class name org.apache.kafka.common.replica.RackAwareReplicaSelector is taken too)")
	clusterID := fs.String("cluster-id", "", "cluster id for a new data folder (default: random for a single node; derived from the voters in cluster mode; asked of the -controller-bootstrap-servers by a node given no voters)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Precedence: flags, then environment, then the config file, then defaults.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *configPath != "" {
		props, err := readProperties(*configPath)
		if err != nil {
			return err
		}
		for k, v := range props {
			f := fs.Lookup(k)
			if f == nil {
				return fmt.Errorf("%s: unknown setting %q", *configPath, k)
			}
			if !set[k] {
				if err := f.Value.Set(v); err != nil {
					return fmt.Errorf("%s: %s: %w", *configPath, k, err)
				}
			}
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv("SPATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))); ok && !set[f.Name] {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("environment %s: %w", f.Name, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := def
	cfg.Logger = logger
	cfg.DataDir = *dataDir
	cfg.NodeID = int32(*nodeID)
	cfg.NumPartitions = int32(*partitions)
	cfg.AutoCreateTopics = *autoCreate
	if *voters != "" || *bootstrap != "" || *roles != "" {
		r, err := parseRoles(*roles)
		if err != nil {
			return err
		}
		cfg.Cluster.Roles = r
		if *voters != "" {
			vs, err := parseVoters(*voters)
			if err != nil {
				return err
			}
			cfg.Cluster.Voters = vs
		}
		if *bootstrap != "" {
			bs, err := parseBootstrap(*bootstrap)
			if err != nil {
				return err
			}
			cfg.Cluster.ControllerBootstrap = bs
		}
		cfg.Cluster.RaftAddr, cfg.Cluster.AdvertisedRaftAddr = *raftListen, *raftAdvertised
		cfg.Cluster.SessionTimeout, cfg.Cluster.ReplicaLagTimeMax = *sessionTimeout, *replicaLag
	}
	cfg.DefaultReplication = int16(*replication)
	cfg.ClusterID = *clusterID
	cfg.Rack = *rack
	cfg.ReplicaSelector = *selector
	if cfg.ReplicaSelector == "org.apache.kafka.common.replica.RackAwareReplicaSelector" {
		cfg.ReplicaSelector = broker.ReplicaSelectorRack
	}
	cfg.Groups.InitialRebalanceDelay = *rebalanceDelay
	cfg.Groups.MinSessionTimeout, cfg.Groups.MaxSessionTimeout, cfg.Groups.MaxSize = *groupMinSession, *groupMaxSession, *groupMaxSize
	cfg.Groups.ConsumerHeartbeatInterval, cfg.Groups.ConsumerSessionTimeout = *consumerHeartbeat, *consumerSession
	cfg.Groups.ConsumerMaxSize = *consumerMaxSize
	cfg.Groups.MigrationPolicy = migrationPolicy
	cfg.Groups.OffsetsTopicPartitions = int32(*offsetsPartitions)
	cfg.Groups.OffsetsRetention = *offsetsRetention
	cfg.Txn.TransactionMaxTimeoutMs = txnMaxTimeout.Milliseconds()
	cfg.Txn.AbortTimedOutTransactionsIntervalMs = txnAbortInterval.Milliseconds()
	cfg.Txn.StatePartitions = int32(*txnPartitions)
	cfg.Txn.TransactionalIDExpirationMs = txnIDExpiration.Milliseconds()
	cfg.Log.SegmentBytes, cfg.Log.SegmentMs = *segBytes, *segMs
	cfg.Log.RetentionMs, cfg.Log.RetentionBytes = *retMs, *retBytes
	cfg.Log.FlushMessages, cfg.Log.FlushMs = *flushMsgs, *flushMs
	cfg.Log.MaxMessageBytes = *maxMsg
	cfg.MaxDecompressedBatchBytes = *maxDecompressed
	cfg.RetentionCheckInterval = time.Duration(max(*retCheckMs, 1)) * time.Millisecond
	adv := *advertised
	if adv == "" {
		adv = *listen
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return fmt.Errorf("advertised address %q: %w", adv, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("advertised port %q: %w", port, err)
	}
	cfg.AdvertisedHost, cfg.AdvertisedPort = host, int32(p)

	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	srv, err := netio.Start(netio.Config{Addr: *listen, Multicore: true, MaxConnections: *maxConns,
		MaxRequestBytes: int32(min(*maxRequest, 1<<31-1)), IdleTimeout: time.Duration(*idleMs) * time.Millisecond}, b)
	if err != nil {
		b.Close()
		return err
	}
	logger.Info("spate started", "listen", srv.Addr().String(), "advertised", adv, "data_dir", cfg.DataDir, "cluster_id", b.ClusterID())
	b.Metrics().NewGauge("spate_connections", func() float64 { return float64(srv.Connections()) })
	if *admin != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			b.Metrics().WritePrometheus(w)
		})
		// Profiles for perf/ and operators: CPU (/debug/pprof/profile?seconds=N), heap, etc.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go func() {
			if err := http.ListenAndServe(*admin, mux); err != nil {
				logger.Warn("admin endpoint", "err", err)
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	logger.Info("stopping", "signal", s.String())
	b.Drain() // in a cluster, a controlled shutdown first (bounded by the session timeout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		logger.Warn("network stop", "err", err)
	}
	if err := b.Close(); err != nil {
		return err
	}
	logger.Info("stopped cleanly")
	return nil
}

// parseVoters reads "1@host:port,2@host:port".
func parseVoters(s string) ([]controller.Voter, error) {
	var out []controller.Voter
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "@")
		n, err := strconv.Atoi(id)
		if !ok || err != nil || n < 0 || addr == "" {
			return nil, fmt.Errorf("controller-quorum-voters: %q is not id@host:port", part)
		}
		out = append(out, controller.Voter{ID: int32(n), Addr: addr})
	}
	return out, nil
}

// parseBootstrap reads "host:port,host:port".
func parseBootstrap(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		addr := strings.TrimSpace(part)
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return nil, fmt.Errorf("controller-bootstrap-servers: %q is not host:port", part)
		}
		out = append(out, addr)
	}
	return out, nil
}

// parseRoles parses -process-roles ("" is zero: derived from the voters).
func parseRoles(s string) (broker.ProcessRoles, error) {
	var r broker.ProcessRoles
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "broker":
			r |= broker.RoleBroker
		case "controller":
			r |= broker.RoleController
		default:
			return 0, fmt.Errorf("process-roles: %q is not broker or controller", part)
		}
	}
	return r, nil
}
