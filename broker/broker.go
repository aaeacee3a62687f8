// Package broker answers Kafka requests: it decodes request headers, dispatches by API key to
// one handler file per key (named by key, e.g. 00_produce.go), and owns the partition manager
// (topics, partitions, their logs and producer state) and the purgatory of parked fetches.
//
// It sits above logstore (storage) and netio (sockets); it knows nothing of gnet and never
// touches a socket: it answers through netio.Conn.Reply/NoReply, from the event loop for quick
// requests and from other goroutines for slow ones (admin requests that touch the disk, fetches
// that wait for data).
//
// Request header (all versions; v1 adds client_id, v2 — used by flexible request versions —
// adds tagged fields):
//
//	api_key int16 | api_version int16 | correlation_id int32 | client_id nullable_string | tags
//
// Response header: correlation_id int32, then tagged fields for flexible versions — except
// ApiVersions, whose response header never has tagged fields (compat-traps.md).
package broker

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/coordinator/txn"
	"github.com/spate-broker/spate/logstore"
	"github.com/spate-broker/spate/netio"
)

// Config is the broker's configuration (Kafka's broker settings where one exists).
type Config struct {
	NodeID         int32
	ClusterID      string
	AdvertisedHost string // host clients are told to connect to
	AdvertisedPort int32
	Rack           string
	// ReplicaSelector is replica.selector.class: "" (consumers read from leaders) or
	// ReplicaSelectorRack (KIP-392: a consumer that names its rack is sent to an in-sync
	// replica in that rack; fetch_follower.go).
	ReplicaSelector        string
	DataDir                string
	AutoCreateTopics       bool  // auto.create.topics.enable
	NumPartitions          int32 // num.partitions
	DefaultReplication     int16 // default.replication.factor
	Log                    logstore.Config
	Txn                    txn.Config // transaction.* settings
	TxnStateSegmentBytes   int64      // transaction.state.log.segment.bytes
	FlushCheckInterval     time.Duration
	RetentionCheckInterval time.Duration // log.retention.check.interval.ms
	CheckpointInterval     time.Duration
	Groups                 coordinator.Config // group.* and offsets.* settings
	Cluster                ClusterConfig      // cluster mode (Raft controller, replication); zero: single node
	// MaxDecompressedBatchBytes bounds what one batch may decompress to where the broker
	// materializes it (the log cleaner, loading the internal topics); larger batches are
	// kept as they are by the cleaner. Scans (key checks on compacted topics, ListOffsets by
	// time) stream and need no bound. It sets logstore.MaxDecompressedBatchBytes, which is
	// process-wide.
	MaxDecompressedBatchBytes int
	Logger                    *slog.Logger
}

// DefaultConfig returns a single node's defaults.
func DefaultConfig() Config {
	return Config{
		NodeID:                 1,
		AdvertisedHost:         "127.0.0.1",
		AdvertisedPort:         9092,
		DataDir:                "data",
		AutoCreateTopics:       true,
		NumPartitions:          1,
		DefaultReplication:     1,
		Log:                    logstore.DefaultConfig(),
		Txn:                    txn.DefaultConfig(),
		TxnStateSegmentBytes:   100 << 20,
		FlushCheckInterval:     time.Second,
		RetentionCheckInterval: 5 * time.Minute,
		CheckpointInterval:     time.Minute,
		Groups:                 coordinator.DefaultConfig(),

		MaxDecompressedBatchBytes: 64 << 20,
	}
}

// Broker serves the Kafka protocol for one node. It implements netio.Handler.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	store  *logstore.Store
	topics *topicManager
	pids   *producerIDs
	fetchq *purgatory
	groups *coordinator.Coordinator
	txn    *txn.Coordinator
	// cluster is set in cluster mode (Config.Cluster.Voters); nil for a single node.
	cluster *cluster
	// verifier runs produces that wait for a remote transaction coordinator's verification
	// (txn_verify.go).
	verifier verifier

	metrics *Metrics

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New opens the data folder (recovering every log) and returns a broker ready to serve.
func New(cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReplicaSelector != "" && cfg.ReplicaSelector != ReplicaSelectorRack {
		return nil, fmt.Errorf("replica selector %q: only %q is known", cfg.ReplicaSelector, ReplicaSelectorRack)
	}
	if cfg.MaxDecompressedBatchBytes > 0 {
		logstore.MaxDecompressedBatchBytes = cfg.MaxDecompressedBatchBytes
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), metrics: newMetrics()}
	if cfg.ClusterID == "" && cfg.Cluster.enabled() {
		cfg.ClusterID = cfg.Cluster.derivedClusterID() // every node of the quorum agrees
		_, statErr := os.Stat(filepath.Join(cfg.DataDir, metaPropertiesFile))
		if cfg.ClusterID == "" && statErr != nil {
			// A new broker-only node that could not learn the cluster's id would make up
			// one, and then never be let in.
			return nil, fmt.Errorf("cluster: no cluster id from the bootstrap servers %v; give -cluster-id or start the controllers first", cfg.Cluster.ControllerBootstrap)
		}
	}
	meta, err := loadMeta(cfg.DataDir, cfg.ClusterID, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	b.cfg.ClusterID = meta.ClusterID
	clusterMode := cfg.Cluster.enabled()
	if clusterMode {
		meta.Topics = nil // the controller's image is the metadata (cluster_apply.go)
	}
	b.topics = newTopicManager(b, meta)
	b.store, err = logstore.OpenStore(cfg.DataDir, b.topics.logConfigFor)
	if err != nil {
		return nil, err
	}
	if !clusterMode {
		if err := b.topics.attachLogs(); err != nil {
			b.store.Close()
			return nil, err
		}
	}
	b.pids, err = openProducerIDs(cfg.DataDir)
	if err != nil {
		b.store.Close()
		return nil, err
	}
	if clusterMode {
		// Coordinators serve the partitions of their topics that this node leads.
		b.cfg.Groups.PartitionOwnership = true
		b.cfg.Txn.PartitionOwnership = true
	}
	b.fetchq = newPurgatory()
	if err := b.startGroups(); err != nil {
		b.store.Close()
		return nil, err
	}
	if err := b.startTxn(); err != nil {
		b.closeGroups()
		b.store.Close()
		return nil, err
	}
	if clusterMode {
		if err := b.startCluster(); err != nil {
			b.txn.Close()
			b.closeGroups()
			b.store.Close()
			return nil, err
		}
		b.pids.remote = b.cluster.allocateProducerIDs
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := stopContext(b.stop)
		defer cancel()
		b.store.Maintain(ctx, cfg.FlushCheckInterval, cfg.RetentionCheckInterval, cfg.CheckpointInterval)
	}()
	if cfg.CheckpointInterval > 0 {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			t := time.NewTicker(cfg.CheckpointInterval)
			defer t.Stop()
			for {
				select {
				case <-b.stop:
					return
				case <-t.C:
					b.topics.saveProducerSnapshots(true)
				}
			}
		}()
	}
	return b, nil
}

// Drain answers every parked fetch now and makes later fetches answer without waiting, and
// answers parked JoinGroup/SyncGroup requests with NOT_COORDINATOR, so that the network
// server can stop without waiting out long polls or rebalances. Call it before stopping the
// server.
func (b *Broker) Drain() {
	if b.cluster != nil {
		b.cluster.controlledShutdown() // leadership moves away while this node still serves
	}
	b.fetchq.closeAll()
	b.drainGroups()
	if b.txn != nil {
		b.txn.Drain()
	}
}

// Close flushes and closes every log. Call it after the network server has stopped.
func (b *Broker) Close() error {
	var err error
	b.stopOnce.Do(func() {
		close(b.stop)
		if b.cluster != nil {
			b.cluster.close()
		}
		b.fetchq.closeAll()
		if b.txn != nil {
			b.txn.Close()
		}
		b.closeGroups()
		b.wg.Wait()
		b.topics.saveProducerSnapshots(false)
		err = b.store.Close()
	})
	return err
}

// ClusterID returns the cluster id from meta.properties.
func (b *Broker) ClusterID() string { return b.cfg.ClusterID }

// reqHeader is a decoded request header.
type reqHeader struct {
	key, version int16
	correlation  int32
	clientID     string
	flexible     bool      // response header carries tagged fields
	start        time.Time // when the request was dispatched (latency metric)
	// req is the request being served: valid only until serve returns (a copy of the header
	// kept for a later answer must not use it).
	req *netio.Request
}

// Serve implements netio.Handler. It runs on the event loop; frame is valid only during the
// call. Garbage framing closes the connection, as the Java broker does.
func (b *Broker) Serve(c *netio.Conn, req *netio.Request) {
	frame := req.Frame
	if len(frame) < 8 {
		c.Close()
		return
	}
	h := reqHeader{start: time.Now()}
	h.key = int16(binary.BigEndian.Uint16(frame))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(frame[4:]))
	body := frame[8:]
	// client_id: nullable string (int16 length) in header v1+; every request uses v1+.
	if len(body) < 2 {
		c.Close()
		return
	}
	n := int16(binary.BigEndian.Uint16(body))
	body = body[2:]
	if n > 0 {
		if int(n) > len(body) {
			c.Close()
			return
		}
		h.clientID = string(body[:n])
		body = body[n:]
	}
	api, ok := apis[h.key]
	if !ok || !b.serves(h.key) || h.version < api.min || h.version > api.max {
		if h.key == kmsg.ApiVersions.Int16() {
			b.apiVersionsUnsupported(c, req.Seq, &h)
			return
		}
		b.log.Debug("unsupported request", "key", h.key, "version", h.version, "client", h.clientID)
		b.metrics.unsupported.Inc()
		c.Close()
		return
	}
	h.flexible = api.flexible >= 0 && h.version >= api.flexible
	if h.flexible {
		var ok bool
		if body, ok = skipTags(body); !ok {
			c.Close()
			return
		}
	}
	if h.key == kmsg.ApiVersions.Int16() {
		h.flexible = false // ApiVersions responses always use header v0
	}
	b.metrics.request(h.key)
	h.req = req
	api.serve(b, c, req.Seq, &h, body)
}

// controllerAPIs are the requests a controller-only node serves (Kafka's controller
// listener: ApiMessageType's "controller" listener APIs that Spate implements).
var controllerAPIs = map[int16]bool{
	kmsg.ApiVersions.Int16():             true,
	kmsg.CreateTopics.Int16():            true,
	kmsg.DeleteTopics.Int16():            true,
	kmsg.DescribeConfigs.Int16():         true,
	kmsg.AlterConfigs.Int16():            true,
	kmsg.CreatePartitions.Int16():        true,
	kmsg.ElectLeaders.Int16():            true,
	kmsg.IncrementalAlterConfigs.Int16(): true,
	kmsg.DescribeQuorum.Int16():          true,
	kmsg.AlterPartition.Int16():          true,
	kmsg.DescribeCluster.Int16():         true,
	kmsg.BrokerRegistration.Int16():      true,
	kmsg.BrokerHeartbeat.Int16():         true,
	kmsg.AllocateProducerIDs.Int16():     true,
	kmsg.ControllerRegistration.Int16():  true,
	kmsg.AddRaftVoter.Int16():            true,
	kmsg.RemoveRaftVoter.Int16():         true,
}

// serves reports whether this node serves request key k: every registered API, except that
// a controller-only node serves only controllerAPIs.
func (b *Broker) serves(k int16) bool {
	return b.cluster == nil || !b.cluster.controllerOnly() || controllerAPIs[k]
}

// skipTags skips a tagged-field section, bounded by the bytes present.
func skipTags(b []byte) ([]byte, bool) {
	n, l := binary.Uvarint(b)
	if l <= 0 || n > uint64(len(b)) {
		return nil, false
	}
	b = b[l:]
	for i := uint64(0); i < n; i++ {
		_, l := binary.Uvarint(b)
		if l <= 0 {
			return nil, false
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || size > uint64(len(b)-l) {
			return nil, false
		}
		b = b[l+int(size):]
	}
	return b, true
}

// api describes one supported API key.
type api struct {
	min, max int16
	flexible int16 // first flexible version, -1 if none
	serve    func(b *Broker, c *netio.Conn, seq netio.Seq, h *reqHeader, body []byte)
}

// apis is the table of supported requests, filled by each handler file's init.
var apis = map[int16]api{}

// register adds a kmsg-decoded handler: the request is decoded (kmsg bounds every length by
// the bytes present), handled by fn — on a goroutine when slow is set (it may touch the disk),
// else on the event loop — and the response is encoded with the request's version.
//
// Order: a connection's requests handled here take effect in the order they were sent, as
// Kafka handles one request of a connection at a time. A slow request goes to the
// connection's queue (serialQueue), run by one goroutine in order; a fast one runs on the
// event loop unless the queue has work, in which case it waits its turn there too. So two
// OffsetCommits pipelined on one connection are applied in order, and an OffsetFetch sent
// after an OffsetCommit reads it. (Produce, Fetch and the group join requests keep their own
// paths.)
func register[Req kmsg.Request, Resp kmsg.Response](key kmsg.Key, min, max int16, slow bool, fn func(b *Broker, h *reqHeader, req Req) Resp) {
	k := key.Int16()
	apis[k] = api{min: min, max: max, flexible: firstFlexible(k), serve: func(b *Broker, c *netio.Conn, seq netio.Seq, h *reqHeader, body []byte) {
		q := queueOf(c)
		queued := slow || q.busy()
		if queued {
			// kmsg's []byte fields alias the body, which is the event loop's buffer and gone
			// once Serve returns: a handler running later decodes from its own copy.
			body = append([]byte(nil), body...)
		}
		req := kmsg.RequestForKey(k).(Req)
		req.SetVersion(h.version)
		if err := req.ReadFrom(body); err != nil {
			b.log.Debug("malformed request", "request", h.String(), "err", err)
			b.metrics.malformed.Inc()
			c.Close()
			return
		}
		run := func() {
			resp := fn(b, h, req)
			resp.SetVersion(h.version)
			b.reply(c, seq, h, resp)
		}
		if queued {
			q.push(run)
		} else {
			run()
		}
	}}
}

// serialQueue runs a connection's queued requests one at a time, in order, on a goroutine
// that exists while there is work. push is called on the connection's event loop, the
// goroutine drains; busy tells the event loop whether a request must queue behind others.
type serialQueue struct {
	mu      sync.Mutex
	q       []func() // guarded by mu
	running bool     // a goroutine is draining q; guarded by mu
}

// queueOf returns c's queue, made on first use (event loop only: netio.Conn.Context).
func queueOf(c *netio.Conn) *serialQueue {
	if q, ok := c.Context().(*serialQueue); ok {
		return q
	}
	q := &serialQueue{}
	c.SetContext(q)
	return q
}

func (q *serialQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

func (q *serialQueue) push(run func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.q = append(q.q, run)
	if !q.running {
		q.running = true
		go q.drain()
	}
}

func (q *serialQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.q) == 0 {
			q.running = false
			q.q = nil
			q.mu.Unlock()
			return
		}
		run := q.q[0]
		q.q[0] = nil
		q.q = q.q[1:]
		q.mu.Unlock()
		run()
	}
}

// firstFlexible returns the first flexible version of a request key, or -1.
func firstFlexible(key int16) int16 {
	r := kmsg.RequestForKey(key)
	for v := int16(0); v <= r.MaxVersion(); v++ {
		r.SetVersion(v)
		if r.IsFlexible() {
			return v
		}
	}
	return -1
}

// reply encodes a response (header and body) and hands it to netio.
func (b *Broker) reply(c *netio.Conn, seq netio.Seq, h *reqHeader, resp kmsg.Response) {
	buf := make([]byte, 0, 256)
	buf = binary.BigEndian.AppendUint32(buf, uint32(h.correlation))
	if h.flexible {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	var r netio.Response
	r.AppendBytes(buf)
	b.metrics.done(h)
	c.Reply(seq, r)
}

// errorf is for logging with the request's context.
func (h *reqHeader) String() string {
	return fmt.Sprintf("%s v%d corr %d client %q", kmsg.NameForKey(h.key), h.version, h.correlation, h.clientID)
}
