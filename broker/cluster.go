package broker

// Cluster mode: the broker's metadata comes from the Raft controller (package controller)
// instead of the local topics file. It is on when ClusterConfig.Voters,
// ClusterConfig.ControllerBootstrap or ClusterConfig.Roles is set.
//
// # Roles
//
// Controllers are the Raft voters of the metadata log (3 or 5 in production); every broker
// holds the metadata as a local, read-only view that follows the log. A node is:
//   - combined (controller and broker; the single-node default is both): its NodeID is
//     among the voters. Every node listed in ClusterConfig.Voters is one; the first one
//     bootstraps the quorum with them once.
//   - broker-only: its NodeID is not among the voters. It runs a controller.Controller too,
//     as a Raft non-voter on its own Raft address (ClusterConfig.RaftAddr, required), with
//     no bootstrap: it follows the log and applies Images like any node but never votes or
//     leads. Before it has any metadata it reaches the active controller through
//     ClusterConfig.ControllerBootstrap (Kafka addresses of controller nodes; forward.go).
//     Its registration carries its Raft address (a listener named "RAFT"), and the active
//     controller adds a registering node that is not yet a Raft server as a non-voter
//     (62_broker_registration.go), so that the log starts flowing to it. Given no cluster id
//     and no voters, it asks the bootstrap servers for the cluster id (DescribeCluster).
//   - controller-only (ClusterConfig.Roles = RoleController; Kafka's
//     process.roles=controller): a Raft voter (or, when not among the voters, a non-voter
//     that the operator promotes with AddRaftVoter) that is not a broker. It never
//     registers as a broker, so it hosts no replicas and no coordinators and is absent from
//     Metadata; its Kafka listener answers only the controller APIs (controllerAPIs: the
//     forwarded metadata writes, broker registrations and heartbeats, AlterPartition,
//     producer id blocks, the quorum APIs, DescribeCluster for controllers) and closes the
//     connection on any other request, as a Kafka controller listener does.
//
// Every node with the controller role registers as a controller (KIP-919's
// ControllerRegistration, 70_controller_registration.go) with its Kafka endpoint, so that
// forwarders can reach a controller-only active controller, and DescribeCluster sent to a
// controller lists them; a registering node that is not yet a Raft server is added as a
// non-voter, as brokers are.
//
// Changing the voters is an explicit operator action, by Kafka's KIP-853 APIs on any node
// (forwarded to the active controller): AddRaftVoter promotes a node that already follows
// the log (a non-voter, an "observer") to voter; RemoveRaftVoter removes a voter, and a
// removed voter that is a registered broker stays as a non-voter, so its broker keeps
// following the log. DescribeQuorum shows the voters, the observers (non-voters) and the
// leader (80_add_raft_voter.go, 81_remove_raft_voter.go).
//
// What a node does in cluster mode:
//   - starts its controller (Raft state in <data>/__cluster_metadata-0) and registers itself
//     as a broker with the active controller, then heartbeats every SessionTimeout/3 (the
//     first heartbeat unfences it; a stale epoch registers again);
//   - applies every new controller Image (cluster_apply.go): topics, the partitions it hosts
//     and their roles (leader or follower of a leader epoch), configs, deletions;
//   - sends metadata writes (CreateTopics, DeleteTopics, CreatePartitions, configs, ISR
//     changes, producer id blocks) to its controller; when that one is not the active
//     controller (always so on a broker-only node), the request is forwarded over the Kafka
//     protocol to the node that is (forward.go), which handles it as its own.
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

// ProcessRoles is what a cluster-mode node runs (Kafka's process.roles): a set of Role bits.
type ProcessRoles uint8

// The roles.
const (
	RoleBroker     ProcessRoles = 1 << iota // hosts replicas and serves clients
	RoleController                          // a member of the metadata quorum
)

// String is the roles as process.roles spells them.
func (r ProcessRoles) String() string {
	switch r {
	case RoleBroker:
		return "broker"
	case RoleController:
		return "controller"
	case RoleBroker | RoleController:
		return "broker,controller"
	}
	return "none"
}

// ClusterConfig configures cluster mode. The zero value is single-node mode.
type ClusterConfig struct {
	// Roles are this node's roles; zero derives them: broker and controller for a node
	// among the Voters, broker for one that is not. A voter always has the controller role;
	// RoleController alone makes a controller-only node.
	Roles ProcessRoles
	// Voters are the initial controllers (Raft voters, every one also a broker): id and Raft
	// address. A node whose NodeID is not among them is broker-only.
	Voters []controller.Voter
	// ControllerBootstrap are Kafka addresses (host:port) of controller nodes. A node uses
	// them to reach the active controller while it does not know it or its endpoint (a
	// broker-only node before it follows the metadata log); required for broker-only nodes.
	ControllerBootstrap []string
	// RaftAddr is this node's Raft listen address (default: its entry in Voters; required
	// for a broker-only node).
	RaftAddr string
	// AdvertisedRaftAddr is the Raft address peers dial (default RaftAddr, which must then be
	// a specific address); a broker-only node registers with it.
	AdvertisedRaftAddr string
	// SessionTimeout fences a broker that stops heartbeating (broker.session.timeout.ms).
	SessionTimeout time.Duration
	// ReplicaLagTimeMax drops a follower from the ISR (replica.lag.time.max.ms).
	ReplicaLagTimeMax time.Duration
	// RaftTimeout is the Raft heartbeat/election timeout (tests shorten it).
	RaftTimeout time.Duration
	// ControllerOpTimeout bounds a metadata write (request.timeout.ms of the forwarding).
	ControllerOpTimeout time.Duration
}

func (c ClusterConfig) enabled() bool {
	return len(c.Voters) > 0 || len(c.ControllerBootstrap) > 0 || c.Roles != 0
}

// roles resolves Roles for node id (see Roles).
func (c ClusterConfig) roles(id int32) ProcessRoles {
	if c.Roles != 0 {
		return c.Roles
	}
	if c.isVoterID(id) {
		return RoleBroker | RoleController
	}
	return RoleBroker
}

// isVoterID reports whether id is among the configured voters.
func (c ClusterConfig) isVoterID(id int32) bool {
	return slices.ContainsFunc(c.Voters, func(v controller.Voter) bool { return v.ID == id })
}

// derivedClusterID is the cluster id of a quorum whose nodes were given none: a hash of the
// voters, so that every node started with the same voters has the same id (Kafka makes the
// operator format every node with one; a node with another id cannot register). A node
// given no voters (broker-only, with ControllerBootstrap) asks the bootstrap servers.
func (c ClusterConfig) derivedClusterID() string {
	if len(c.Voters) == 0 {
		return c.discoverClusterID()
	}
	h := sha256.New()
	for _, v := range c.Voters {
		fmt.Fprintf(h, "%d@%s,", v.ID, v.Addr)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// discoverClusterID asks the bootstrap servers for the cluster id (DescribeCluster v1),
// each in turn, until one answers or ControllerOpTimeout (default 30s) passes. It returns ""
// when none answered: the data folder's id is then kept (a restart), or a fresh folder gets
// a random one, which the controller refuses (INCONSISTENT_CLUSTER_ID, logged) — give such
// a node -cluster-id when its controllers may be unreachable at its first start.
func (c ClusterConfig) discoverClusterID() string {
	d := c.ControllerOpTimeout
	if d <= 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		for _, addr := range c.ControllerBootstrap {
			// A combined node answers for BROKER endpoints, a controller-only one for
			// CONTROLLER endpoints (60_describe_cluster.go): ask for both in turn.
			for _, typ := range []int8{1, 2} {
				req := kmsg.NewPtrDescribeClusterRequest()
				req.SetVersion(1)
				req.EndpointType = typ
				fc := &fwdConn{addr: addr}
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				r, err := fc.roundTrip(rctx, req, 1)
				rcancel()
				if fc.conn != nil {
					fc.conn.Close()
				}
				if err == nil {
					if resp := r.(*kmsg.DescribeClusterResponse); resp.ErrorCode == 0 && resp.ClusterID != "" {
						return resp.ClusterID
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cluster is a broker's cluster-mode state.
type cluster struct {
	b    *Broker
	ctl  *controller.Controller
	fwd  *forwarder
	self int32
	// roles are this node's roles (never zero).
	roles ProcessRoles
	// raftAddr is this node's advertised Raft address (sent with its registration).
	raftAddr string

	epoch   atomic.Int64 // broker epoch from registration; 0 before
	fenced  atomic.Bool
	applied atomic.Pointer[controller.Image] // last image applied
	fetch   fetchers                         // follower fetchers, by leader
	isrKick chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
	// base is cancelled by close: no controller call outlives the cluster.
	base       context.Context
	cancelBase context.CancelFunc
}

func (b *Broker) startCluster() error {
	cc := b.cfg.Cluster
	raftAddr := cc.RaftAddr
	for _, v := range cc.Voters {
		if v.ID == b.cfg.NodeID && raftAddr == "" {
			raftAddr = v.Addr
		}
	}
	roles := cc.roles(b.cfg.NodeID)
	switch {
	case roles == 0 || roles&^(RoleBroker|RoleController) != 0:
		return fmt.Errorf("cluster: node %d has no valid roles (%d)", b.cfg.NodeID, roles)
	case cc.isVoterID(b.cfg.NodeID) && roles&RoleController == 0:
		return fmt.Errorf("cluster: node %d is among the controller quorum voters, so it must have the controller role", b.cfg.NodeID)
	}
	if !cc.isVoterID(b.cfg.NodeID) {
		// A Raft non-voter that the active controller adds when it registers (as a broker, or
		// as a controller to be promoted with AddRaftVoter).
		if raftAddr == "" {
			return fmt.Errorf("cluster: node %d is not among the voters and needs its own raft address (-controller-listen)", b.cfg.NodeID)
		}
		if len(cc.ControllerBootstrap) == 0 {
			return fmt.Errorf("cluster: node %d is not among the voters and needs controller bootstrap servers (-controller-bootstrap-servers)", b.cfg.NodeID)
		}
	}
	if raftAddr == "" {
		return fmt.Errorf("cluster: node %d has no raft address", b.cfg.NodeID)
	}
	rt := cc.RaftTimeout
	ctl, err := controller.New(controller.Config{
		NodeID:                   b.cfg.NodeID,
		Dir:                      filepath.Join(b.cfg.DataDir, "__cluster_metadata-0"),
		RaftAddr:                 raftAddr,
		AdvertisedRaftAddr:       cc.AdvertisedRaftAddr,
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
	if cc.AdvertisedRaftAddr != "" {
		raftAddr = cc.AdvertisedRaftAddr
	}
	c := &cluster{b: b, ctl: ctl, self: b.cfg.NodeID, roles: roles, raftAddr: raftAddr, stop: make(chan struct{}), isrKick: make(chan struct{}, 1)}
	c.base, c.cancelBase = context.WithCancel(context.Background())
	c.fwd = newForwarder(c)
	b.cluster = c
	c.wg.Add(1)
	go c.applyLoop()
	if roles&RoleBroker != 0 {
		c.wg.Add(2)
		go c.heartbeatLoop()
		go c.isrLoop()
	}
	if roles&RoleController != 0 {
		c.wg.Add(1)
		go c.controllerRegistrationLoop()
	}
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
	c.cancelBase()
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
				if controller.ErrorCode(err) == errInconsistentClusterID {
					c.b.log.Error("the controller refuses this node's cluster id", "cluster_id", c.b.cfg.ClusterID)
				}
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
	ctx, cancel := context.WithTimeout(c.base, c.opTimeout())
	defer cancel()
	epoch, err := c.ctl.RegisterBroker(ctx, reg)
	var nl *controller.NotLeaderError
	if errors.As(err, &nl) {
		return c.fwd.registerBroker(ctx, nl.LeaderID, reg)
	}
	return epoch, err
}

func (c *cluster) heartbeat(epoch int64, wantShutdown bool) (controller.HeartbeatResult, error) {
	ctx, cancel := context.WithTimeout(c.base, c.opTimeout())
	defer cancel()
	return c.heartbeatCtx(ctx, epoch, wantShutdown)
}

func (c *cluster) heartbeatCtx(ctx context.Context, epoch int64, wantShutdown bool) (controller.HeartbeatResult, error) {
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
	ctx, cancel := context.WithTimeout(c.base, min(c.opTimeout(), c.sessionTimeout()))
	defer cancel()
	for ctx.Err() == nil {
		res, err := c.heartbeatCtx(ctx, epoch, true)
		if err == nil && res.ShouldShutDown {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.b.log.Warn("controlled shutdown did not finish in time")
}

// isVoter reports whether this node is a Raft voter in the latest configuration it knows.
func (c *cluster) isVoter() bool {
	servers, err := c.ctl.Servers()
	if err != nil {
		return c.b.cfg.Cluster.isVoterID(c.self)
	}
	for _, s := range servers {
		if s.ID == c.self {
			return s.Voter
		}
	}
	return false
}

// ensureRaftMember makes a registering broker follow the metadata log: a node that is not
// a Raft server yet (or a non-voter at another address) is added as a non-voter. Voters are
// left alone. Active controller only (AddNonvoter answers NotLeaderError elsewhere).
func (c *cluster) ensureRaftMember(ctx context.Context, id int32, raftAddr string) error {
	servers, err := c.ctl.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id && (s.Voter || s.Addr == raftAddr) {
			return nil
		}
	}
	c.b.log.Info("adding a broker to the metadata quorum as a non-voter", "broker", id, "raft_addr", raftAddr)
	return c.ctl.AddNonvoter(ctx, id, raftAddr)
}

// leaderEndpoint returns the Kafka address of a node, from the image: its broker endpoint,
// else (a controller-only node) its controller endpoint.
func (c *cluster) leaderEndpoint(id int32) (string, bool) {
	img := c.ctl.Image()
	var eps []controller.Endpoint
	if bi := img.Broker(id); bi != nil && len(bi.Endpoints) > 0 {
		eps = bi.Endpoints
	} else if ci := img.Controller(id); ci != nil {
		eps = ci.Endpoints
	}
	if len(eps) == 0 {
		return "", false
	}
	return net.JoinHostPort(eps[0].Host, strconv.Itoa(int(eps[0].Port))), true
}

// controllerOnly reports whether this node is a controller and not a broker.
func (c *cluster) controllerOnly() bool { return c.roles == RoleController }

// clientControllerID is the controller id Metadata and DescribeCluster give clients: the
// active controller when it is a broker they can reach, else this node (which forwards
// their admin requests), as Kafka's KRaft brokers answer with an alive broker.
func (c *cluster) clientControllerID() int32 {
	id, _ := c.ctl.Leader()
	if bi := c.ctl.Image().Broker(id); bi != nil && !bi.Fenced {
		return id
	}
	return c.self
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
