package txn

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// markerCall is one WriteMarkers call as the host saw it.
type markerCall struct {
	producerID int64
	epoch      int16
	commit     bool
	coordEpoch int32
	parts      []TopicPartition
}

// testHost is a Host over real logs of __transaction_state in a folder. Data partitions are a
// set; WriteMarkers records its calls and answers what codes says (0 by default), after
// waiting on block when it is set.
type testHost struct {
	t   *testing.T
	dir string

	mu      sync.Mutex
	logs    []*logstore.Log
	parts   map[TopicPartition]bool
	markers []markerCall
	// codes answers a WriteMarkers call (n counts calls from 0); nil: all 0.
	codes   func(n int, parts []TopicPartition) []int16
	block   chan struct{} // WriteMarkers waits for a receive when set
	entered chan struct{} // WriteMarkers sends here (non-blocking) on entry when set

	nextPID atomic.Int64
}

func openTestHost(t *testing.T, dir string, firstPID int64) *testHost {
	h := &testHost{t: t, dir: dir, parts: map[TopicPartition]bool{}}
	h.nextPID.Store(firstPID)
	for _, tp := range []TopicPartition{{"a", 0}, {"a", 1}, {"b", 0}, {"__consumer_offsets", 7}} {
		h.parts[tp] = true
	}
	for p := 0; ; p++ {
		d := filepath.Join(dir, fmt.Sprintf("%s-%d", TopicName, p))
		if _, err := os.Stat(d); err != nil {
			break
		}
		h.open(d)
	}
	t.Cleanup(h.close)
	return h
}

func (h *testHost) open(d string) {
	l, err := logstore.Open(d, logstore.DefaultConfig(), logstore.OpenOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.logs = append(h.logs, l)
}

func (h *testHost) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		l.Close()
	}
	h.logs = nil
}

func (h *testHost) StateTopic(create bool, n int32) (int32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.logs) == 0 && create {
		for p := int32(0); p < n; p++ {
			h.open(filepath.Join(h.dir, fmt.Sprintf("%s-%d", TopicName, p)))
		}
	}
	return int32(len(h.logs)), nil
}

func (h *testHost) StateLog(p int32) *logstore.Log {
	h.mu.Lock()
	defer h.mu.Unlock()
	if int(p) >= len(h.logs) {
		return nil
	}
	return h.logs[p]
}

func (h *testHost) AppendState(p int32, batch []byte) error {
	l := h.StateLog(p)
	if l == nil {
		return &logstore.Error{Code: errUnknownTopicOrPartition, Msg: "no such partition"}
	}
	var info logstore.AppendInfo
	return l.AppendAsLeader(batch, 0, false, &info)
}

func (h *testHost) NewProducerID() (int64, error) { return h.nextPID.Add(1) - 1, nil }

func (h *testHost) WriteMarkers(pid int64, epoch int16, commit bool, coordEpoch int32, parts []TopicPartition) []int16 {
	h.mu.Lock()
	n := len(h.markers)
	h.markers = append(h.markers, markerCall{pid, epoch, commit, coordEpoch, append([]TopicPartition(nil), parts...)})
	codes, block, entered := h.codes, h.block, h.entered
	h.mu.Unlock()
	if entered != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
	}
	if block != nil {
		<-block
	}
	if codes != nil {
		return codes(n, parts)
	}
	return make([]int16, len(parts))
}

func (h *testHost) PartitionExists(topic string, partition int32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.parts[TopicPartition{topic, partition}]
}

func (h *testHost) OffsetsPartitionFor(group string) (TopicPartition, bool) {
	if group == "" {
		return TopicPartition{}, false
	}
	return TopicPartition{"__consumer_offsets", 7}, true
}

// markerCalls returns a copy of the WriteMarkers calls so far.
func (h *testHost) markerCalls() []markerCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]markerCall(nil), h.markers...)
}

// clock is a settable test clock in milliseconds.
type clock struct{ ms atomic.Int64 }

func (c *clock) now() int64            { return c.ms.Load() }
func (c *clock) advance(d int64) int64 { return c.ms.Add(d) }

const t0 = 1_700_000_000_000 // the tests' start time, ms

func testConfig() Config {
	c := DefaultConfig()
	c.StatePartitions = 3
	c.TransactionMaxTimeoutMs = 60000
	return c
}

// newTestCoordinator starts a coordinator on h with the clock, and closes it at the end.
func newTestCoordinator(t *testing.T, h *testHost, cfg Config, clk *clock) *Coordinator {
	t.Helper()
	c, err := newCoordinator(cfg, h, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), metrics.NewSet(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// setup returns a ready coordinator over a fresh folder.
func setup(t *testing.T) (*Coordinator, *testHost, *clock) {
	t.Helper()
	h := openTestHost(t, t.TempDir(), 1000)
	clk := &clock{}
	clk.ms.Store(t0)
	c := newTestCoordinator(t, h, testConfig(), clk)
	if code := c.Ensure(); code != 0 {
		t.Fatalf("Ensure: %d", code)
	}
	return c, h, clk
}

func initPID(t *testing.T, c *Coordinator, version int16, id string, timeoutMs int32, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version, req.TransactionalID, req.TransactionTimeoutMillis = version, kmsg.StringPtr(id), timeoutMs
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return c.InitProducerID(req)
}

// mustInit initializes id (InitProducerId v4, no KIP-360 fields) and checks the answer.
func mustInit(t *testing.T, c *Coordinator, id string, wantPID int64, wantEpoch int16) {
	t.Helper()
	r := initPID(t, c, 4, id, 10000, -1, -1)
	if r.ErrorCode != 0 || r.ProducerID != wantPID || r.ProducerEpoch != wantEpoch {
		t.Fatalf("InitProducerId(%s) = code %d pid %d epoch %d, want 0 %d %d", id, r.ErrorCode, r.ProducerID, r.ProducerEpoch, wantPID, wantEpoch)
	}
}

// addV3 sends a v0–v3 AddPartitionsToTxn and returns the code per partition, by "topic-p".
func addV3(t *testing.T, c *Coordinator, version int16, id string, pid int64, epoch int16, tps ...TopicPartition) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = version, id, pid, epoch
	for _, tp := range tps {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
		req.Topics = append(req.Topics, rt)
	}
	resp := c.AddPartitionsToTxn(req)
	out := map[string]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)] = rp.ErrorCode
		}
	}
	if len(resp.Transactions) != 0 {
		t.Fatalf("v%d answered with Transactions", version)
	}
	return out
}

// mustAdd adds partitions (v3) and requires 0 for each.
func mustAdd(t *testing.T, c *Coordinator, id string, pid int64, epoch int16, tps ...TopicPartition) {
	t.Helper()
	for k, code := range addV3(t, c, 3, id, pid, epoch, tps...) {
		if code != 0 {
			t.Fatalf("AddPartitionsToTxn(%s) %s: %d", id, k, code)
		}
	}
}

func endTxn(c *Coordinator, version int16, id string, pid int64, epoch int16, commit bool) int16 {
	req := kmsg.NewPtrEndTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = version, id, pid, epoch, commit
	return c.EndTxn(req).ErrorCode
}

func describe(t *testing.T, c *Coordinator, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp := c.DescribeTransactions(req)
	if len(resp.TransactionStates) != 1 {
		t.Fatalf("describe %s: %d states", id, len(resp.TransactionStates))
	}
	return resp.TransactionStates[0]
}

// wantState checks an id's state, producer id and epoch through DescribeTransactions.
func wantState(t *testing.T, c *Coordinator, id, state string, pid int64, epoch int16) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	d := describe(t, c, id)
	if d.ErrorCode != 0 || d.State != state || d.ProducerID != pid || d.ProducerEpoch != epoch {
		t.Fatalf("describe %s = code %d state %s pid %d epoch %d, want %s %d %d", id, d.ErrorCode, d.State, d.ProducerID, d.ProducerEpoch, state, pid, epoch)
	}
	return d
}

// waitState waits (up to 10s) until DescribeTransactions shows state.
func waitState(t *testing.T, c *Coordinator, id, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := describe(t, c, id)
		if d.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %s (code %d), want %s", id, d.State, d.ErrorCode, state)
		}
		time.Sleep(time.Millisecond)
	}
}

// storedRecord is one record of __transaction_state as read back from the logs.
type storedRecord struct {
	partition int32
	key       kmsg.TxnMetadataKey
	value     *kmsg.TxnMetadataValue // nil: tombstone
	rawValue  []byte
}

// readRecords returns every record of the state topic, partition by partition, in log order.
func readRecords(t *testing.T, h *testHost) []storedRecord {
	t.Helper()
	var out []storedRecord
	h.mu.Lock()
	logs := append([]*logstore.Log(nil), h.logs...)
	h.mu.Unlock()
	for p, l := range logs {
		var res logstore.ReadResult
		if err := l.Read(0, 1<<20, l.LogEndOffset(), true, &res); err != nil {
			if l.LogEndOffset() == 0 {
				continue
			}
			t.Fatal(err)
		}
		for _, reg := range res.Regions {
			var hdr logstore.BatchHeader
			for b := reg.Data; len(b) >= logstore.BatchHeaderSize; b = b[hdr.Size():] {
				logstore.ParseBatchHeader(b, &hdr)
				if hdr.ProducerID != -1 || hdr.Compression() != 0 || hdr.IsControl() || hdr.RecordCount != 1 {
					t.Fatalf("batch header %+v", hdr)
				}
				forEachKeyValue(b[logstore.BatchHeaderSize:hdr.Size()], hdr.RecordCount, func(key, value []byte) {
					r := storedRecord{partition: int32(p), rawValue: value}
					if err := r.key.ReadFrom(key); err != nil {
						t.Fatal(err)
					}
					if value != nil {
						r.value = new(kmsg.TxnMetadataValue)
						if err := r.value.ReadFrom(value); err != nil {
							t.Fatal(err)
						}
					}
					out = append(out, r)
				})
			}
		}
		res.Release()
	}
	return out
}

// recordsOf returns the records of one transactional id.
func recordsOf(t *testing.T, h *testHost, id string) []storedRecord {
	t.Helper()
	var out []storedRecord
	for _, r := range readRecords(t, h) {
		if r.key.TransactionalID == id {
			out = append(out, r)
		}
	}
	return out
}

func tp(topic string, p int32) TopicPartition { return TopicPartition{topic, p} }
