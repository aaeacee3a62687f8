package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Voter is a controller of the initial Raft configuration.
type Voter struct {
	ID   int32
	Addr string // Raft address, host:port
}

// Config configures a Controller. Zero values take the defaults noted.
type Config struct {
	// NodeID is this node's id; its Raft server id is the decimal NodeID.
	NodeID int32
	// Dir holds the Raft state: raft.db (log and stable store) and snapshots/. By Kafka's
	// layout, <data-dir>/__cluster_metadata-0.
	Dir string
	// RaftAddr is the address the Raft transport listens on (host:port).
	RaftAddr string
	// AdvertisedRaftAddr is the address peers dial; default RaftAddr, which then must not
	// be an unspecified address (0.0.0.0).
	AdvertisedRaftAddr string
	// BootstrapVoters is the initial set of controllers. The node whose id is first
	// bootstraps the cluster with them, once: only when it has no Raft state yet. Every
	// other node waits to be contacted by a leader (voters listed here, and non-voters
	// added with AddNonvoter).
	BootstrapVoters []Voter

	// SessionTimeout: a broker whose last heartbeat is older is fenced. Default 9s.
	SessionTimeout time.Duration
	// LeaderImbalanceCheckInterval is how often the leader moves leadership back to
	// preferred replicas. Default 300s; negative disables.
	LeaderImbalanceCheckInterval time.Duration
	// DefaultNumPartitions and DefaultReplicationFactor replace -1 in CreateTopics (Kafka's
	// num.partitions and default.replication.factor). Default 1 and 1.
	DefaultNumPartitions     int32
	DefaultReplicationFactor int16
	// UncleanLeaderElection is unclean.leader.election.enable for topics that do not set
	// it (nor the cluster-wide broker config).
	UncleanLeaderElection bool

	// Raft timing. Defaults: heartbeat and election 1s, leader lease 500ms, commit 50ms.
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	RaftCommitTimeout      time.Duration
	// Snapshots: taken every SnapshotInterval when SnapshotThreshold entries were logged
	// since the last one, keeping TrailingLogs entries. Defaults 120s, 8192, 10240.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// Logger receives the controller's and Raft's logs. Default slog.Default().
	Logger *slog.Logger

	// rand picks replica placements' random starts; tests fix it.
	rand intner
}

// intner is the part of *rand.Rand that placement uses.
type intner interface{ IntN(n int) int }

const (
	defaultSessionTimeout  = 9 * time.Second
	defaultImbalanceCheck  = 300 * time.Second
	producerIDBlockSize    = 1000
	maxPartitionsPerCreate = 10000 // partitions one CreateTopics/CreatePartitions may add
)

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.NodeID < 0 {
		return cfg, fmt.Errorf("controller: node id %d is negative", cfg.NodeID)
	}
	if cfg.Dir == "" || cfg.RaftAddr == "" {
		return cfg, errors.New("controller: Dir and RaftAddr are required")
	}
	if cfg.AdvertisedRaftAddr == "" {
		cfg.AdvertisedRaftAddr = cfg.RaftAddr
	}
	seen := map[int32]bool{}
	for _, v := range cfg.BootstrapVoters {
		if v.ID < 0 || v.Addr == "" || seen[v.ID] {
			return cfg, fmt.Errorf("controller: bad bootstrap voter %+v", v)
		}
		seen[v.ID] = true
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = defaultSessionTimeout
	}
	if cfg.LeaderImbalanceCheckInterval == 0 {
		cfg.LeaderImbalanceCheckInterval = defaultImbalanceCheck
	}
	if cfg.DefaultNumPartitions <= 0 {
		cfg.DefaultNumPartitions = 1
	}
	if cfg.DefaultReplicationFactor <= 0 {
		cfg.DefaultReplicationFactor = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.rand == nil {
		cfg.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return cfg, nil
}
