package broker

// Cluster mode: the broker's metadata comes from the Raft controller (package controller)
// instead of the local topics file. It is on when ClusterConfig.Voters is set. Every node
// given here is both a controller (a Raft voter) and a broker ("combined" nodes, the
// single-process default of KRaft); broker-only nodes are not wired yet.
//
// What a node does in cluster mode:
//   - starts its controller (Raft state in <data>/__cluster_metadata-0) and registers itself
//     as a broker with the active controller, then heartbeats every SessionTimeout/3 (the
//     first heartbeat unfences it; a stale epoch registers again);
//   - applies every new controller Image (cluster_apply.go): topics, the partitions it hosts
//     and their roles (leader or follower of a leader epoch), configs, deletions;
//   - sends metadata writes (CreateTopics, DeleteTopics, CreatePartitions, configs, ISR
//     changes, producer id blocks) to its controller; when that one is not the active
//     controller, the request is forwarded over the Kafka protocol to the node that is
//     (forward.go), which handles it as its own.
//
// Invariant: in cluster mode the topic views (topics.go) are written only by the image
// applier, which holds topicManager.mu; admin handlers wait for the local Image to show
// their change before answering, so a client's next Metadata request sees it.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/controller"
	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/coordinator/txn"
)

// ClusterConfig configures cluster mode. The zero value is single-node mode.
type ClusterConfig struct {
	// Voters are the controllers (every one also a broker here): id and Raft address.
	Voters []controller.Voter
	// RaftAddr is this node's Raft listen address (its entry in Voters when empty).
	RaftAddr string
	// SessionTimeout fences a broker that stops heartbeating (broker.session.timeout.ms).
	SessionTimeout time.Duration
	// ReplicaLagTimeMax drops a follower from the ISR (replica.lag.time.max.ms).
	ReplicaLagTimeMax time.Duration
	// RaftTimeout is the Raft heartbeat/election timeout (tests shorten it).
	RaftTimeout time.Duration
	// ControllerOpTimeout bounds a metadata write (request.timeout.ms of the forwarding).
	ControllerOpTimeout time.Duration
}

func (c ClusterConfig) enabled() bool { return len(c.Voters) > 0 }

// derivedClusterID is the cluster id of a quorum whose nodes were given none: a hash of the
// voters, so that every node started with the same voters has the same id (Kafka makes the
// operator format every node with one; a node with another id cannot register).
func (c ClusterConfig) derivedClusterID() string {
	h := sha256.New()
	for _, v := range c.Voters {
		fmt.Fprintf(h, "%d@%s,", v.ID, v.Addr)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// cluster is a broker's cluster-mode state.
type cluster struct {
	b    *Broker
	ctl  *controller.Controller
	fwd  *forwarder
	self int32

	epoch   atomic.Int64 // broker epoch from registration; 0 before
	fenced  atomic.Bool
	applied atomic.Pointer[controller.Image] // last image applied
	fetch   fetchers                         // follower fetchers, by leader
	isrKick chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

func (b *Broker) startCluster() error {
	cc := b.cfg.Cluster
	raftAddr := cc.RaftAddr
	for _, v := range cc.Voters {
		if v.ID == b.cfg.NodeID && raftAddr == "" {
			raftAddr = v.Addr
		}
	}
	if raftAddr == "" {
		return fmt.Errorf("cluster: node %d is not among the voters and has no raft address", b.cfg.NodeID)
	}
	rt := cc.RaftTimeout
	ctl, err := controller.New(controller.Config{
		NodeID:                   b.cfg.NodeID,
		Dir:                      filepath.Join(b.cfg.DataDir, "__cluster_metadata-0"),
		RaftAddr:                 raftAddr,
		BootstrapVoters:          cc.Voters,
		SessionTimeout:           cc.SessionTimeout,
		DefaultNumPartitions:     b.cfg.NumPartitions,
		DefaultReplicationFactor: b.cfg.DefaultReplication,
		RaftHeartbeatTimeout:     rt,
		RaftElectionTimeout:      rt,
		RaftLeaderLeaseTimeout:   rt / 2,
		Logger:                   b.log.With("component", "controller"),
	})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c := &cluster{b: b, ctl: ctl, self: b.cfg.NodeID, stop: make(chan struct{}), isrKick: make(chan struct{}, 1)}
	c.fwd = newForwarder(c)
	b.cluster = c
	c.wg.Add(3)
	go c.heartbeatLoop()
	go c.applyLoop()
	go c.isrLoop()
	return nil
}

// opTimeout is the deadline of one metadata write.
func (c *cluster) opTimeout() time.Duration {
	if d := c.b.cfg.Cluster.ControllerOpTimeout; d > 0 {
		return d
	}
	return 30 * time.Second
}

func (c *cluster) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
	c.fwd.close()
	c.stopReplication()
	if err := c.ctl.Close(); err != nil {
		c.b.log.Warn("controller close", "err", err)
	}
}

func (c *cluster) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until the cluster stops; it reports whether to go on.
func (c *cluster) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.stop:
		return false
	case <-t.C:
		return true
	}
}

func (c *cluster) sessionTimeout() time.Duration {
	if d := c.b.cfg.Cluster.SessionTimeout; d > 0 {
		return d
	}
	return 9 * time.Second
}

// registration is this broker's registration: its Kafka endpoint and rack.
func (c *cluster) registration(incarnation [16]byte) controller.BrokerRegistration {
	var rack *string
	if c.b.cfg.Rack != "" {
		r := c.b.cfg.Rack
		rack = &r
	}
	return controller.BrokerRegistration{
		ID: c.self, IncarnationID: incarnation, Rack: rack,
		Endpoints: []controller.Endpoint{{Name: "PLAINTEXT", Host: c.b.cfg.AdvertisedHost, Port: c.b.cfg.AdvertisedPort, Protocol: "PLAINTEXT"}},
	}
}

// heartbeatLoop registers the broker and heartbeats until the cluster stops.
func (c *cluster) heartbeatLoop() {
	defer c.wg.Done()
	var inc [16]byte
	rand.Read(inc[:])
	reg := c.registration(inc)
	interval := c.sessionTimeout() / 3
	for !c.stopped() {
		if c.epoch.Load() == 0 {
			epoch, err := c.register(reg)
			if err != nil {
				c.b.log.Debug("broker registration", "err", err)
				if !c.sleep(200 * time.Millisecond) {
					return
				}
				continue
			}
			c.epoch.Store(epoch)
			c.b.log.Info("registered with the controller", "broker_epoch", epoch)
		}
		res, err := c.heartbeat(c.epoch.Load(), false)
		switch {
		case err == nil:
			c.fenced.Store(res.Fenced)
		case isRegistrationLost(err):
			c.b.log.Warn("registration lost; registering again", "err", err)
			c.epoch.Store(0)
			continue
		default:
			c.b.log.Debug("broker heartbeat", "err", err)
		}
		if !c.sleep(interval) {
			return
		}
	}
}

func isRegistrationLost(err error) bool {
	code := controller.ErrorCode(err)
	return code == controller.CodeStaleBrokerEpoch || code == controller.CodeBrokerIDNotRegistered
}

// register registers with the active controller, here or forwarded.
func (c *cluster) register(reg controller.BrokerRegistration) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
	defer cancel()
	epoch, err := c.ctl.RegisterBroker(ctx, reg)
	var nl *controller.NotLeaderError
	if errors.As(err, &nl) {
		return c.fwd.registerBroker(ctx, nl.LeaderID, reg)
	}
	return epoch, err
}

func (c *cluster) heartbeat(epoch int64, wantShutdown bool) (controller.HeartbeatResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout())
	defer cancel()
	res, err := c.ctl.Heartbeat(ctx, c.self, epoch, wantShutdown)
	var nl *controller.NotLeaderError
	if errors.As(err, &nl) {
		return c.fwd.brokerHeartbeat(ctx, nl.LeaderID, c.self, epoch, wantShutdown)
	}
	return res, err
}

// controlledShutdown moves leadership away from this broker before it stops (best effort,
// bounded by the op timeout).
func (c *cluster) controlledShutdown() {
	epoch := c.epoch.Load()
	if epoch == 0 {
		return
	}
	deadline := time.Now().Add(min(c.opTimeout(), c.sessionTimeout()))
	for time.Now().Before(deadline) {
		res, err := c.heartbeat(epoch, true)
		if err == nil && res.ShouldShutDown {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.b.log.Warn("controlled shutdown did not finish in time")
}

// leaderEndpoint returns the Kafka address of a node, from the image.
func (c *cluster) leaderEndpoint(id int32) (string, bool) {
	img := c.ctl.Image()
	bi := img.Broker(id)
	if bi == nil || len(bi.Endpoints) == 0 {
		return "", false
	}
	ep := bi.Endpoints[0]
	return net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))), true
}

// waitImage waits until the local image satisfies pred (a write's effect is visible here).
func (c *cluster) waitImage(ctx context.Context, pred func(*controller.Image) bool) error {
	_, err := c.ctl.WaitForImage(ctx, pred)
	if err != nil {
		return err
	}
	// The applier runs after the image is published: wait for it too.
	for {
		if img := c.applied.Load(); img != nil && pred(img) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// brokerList is Metadata's brokers: the registered, unfenced brokers, by id.
func (c *cluster) brokerList() []kmsg.MetadataResponseBroker {
	var out []kmsg.MetadataResponseBroker
	for _, bi := range c.ctl.Image().Brokers() {
		if bi.Fenced || len(bi.Endpoints) == 0 {
			continue
		}
		ep := bi.Endpoints[0]
		out = append(out, kmsg.MetadataResponseBroker{NodeID: bi.ID, Host: ep.Host, Port: ep.Port, Rack: bi.Rack})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// partitionsMetadata fills a topic's partitions from the controller's view: leader (or
// LEADER_NOT_AVAILABLE), leader epoch, replicas, ISR, and the replicas that are offline
// (fenced or unregistered brokers).
func (c *cluster) partitionsMetadata(ti *controller.TopicInfo, mt *kmsg.MetadataResponseTopic) {
	img := c.ctl.Image()
	for i, ps := range ti.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Leader, mp.LeaderEpoch = ps.Leader, ps.LeaderEpoch
		if ps.Leader == controller.NoLeader {
			mp.ErrorCode = errLeaderNotAvailable
		}
		mp.Replicas = slices.Clone(ps.Replicas)
		mp.ISR = slices.Clone(ps.ISR)
		mp.OfflineReplicas = []int32{}
		for _, r := range ps.Replicas {
			if bi := img.Broker(r); bi == nil || bi.Fenced {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
}

// coordinatorFor finds the node leading the internal partition of a group (key type 0) or
// transactional id (1): COORDINATOR_NOT_AVAILABLE while it has no leader.
func (c *cluster) coordinatorFor(keyType int8, key string) (int32, string, int32, int16) {
	topic, p := coordinator.OffsetsTopic, int32(0)
	if keyType == 1 {
		topic, p = txn.TopicName, c.b.txn.PartitionFor(key)
	} else {
		p = c.b.groups.PartitionFor(key)
	}
	img := c.ctl.Image()
	ps, ok := img.Partition(topic, p)
	if !ok || ps.Leader == controller.NoLeader {
		return -1, "", -1, errCoordinatorNotAvailable
	}
	bi := img.Broker(ps.Leader)
	if bi == nil || bi.Fenced || len(bi.Endpoints) == 0 {
		return -1, "", -1, errCoordinatorNotAvailable
	}
	return bi.ID, bi.Endpoints[0].Host, bi.Endpoints[0].Port, 0
}
