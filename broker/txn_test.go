package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// txnProduce runs one transaction of n records with values prefix-i (keys k-i) and ends it.
func txnProduce(t *testing.T, cl *kgo.Client, topic, prefix string, n int, commit kgo.TransactionEndTry) {
	t.Helper()
	ctx := admCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k-%d", i), Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", prefix, err)
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		t.Fatalf("end %s: %v", prefix, err)
	}
}

// consumeAll reads topic from the start with the isolation level until no record came for
// 1.5 s, and returns the values sorted. (Stopping early can only fail a test: callers compare
// the exact set.)
func consumeAll(t *testing.T, addr, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch: %v", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, string(r.Value))
			n++
		})
		if n == 0 {
			break
		}
	}
	sort.Strings(out)
	return out
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestTxnCommitAbortReadCommitted: committed transactions are visible to read_committed
// consumers and aborted ones are not; read_uncommitted consumers see both. The fetch response
// lists the aborted transaction (producer id, first offset), the last stable offset reaches the
// high watermark once every transaction ended, and DescribeProducers shows no open transaction.
func TestTxnCommitAbortReadCommitted(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "txn-basic"
	admCreate(t, adm, topic, 3, nil)
	// Uncompressed, so that the test can read the values of the fetched batches.
	cl := newClient(t, tb.addr, kgo.TransactionalID("tx-basic"), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	txnProduce(t, cl, topic, "c1", 30, kgo.TryCommit)
	txnProduce(t, cl, topic, "ab", 30, kgo.TryAbort)
	txnProduce(t, cl, topic, "c2", 30, kgo.TryCommit)

	want := append(values("c1", 30), values("c2", 30)...)
	sort.Strings(want)
	if got := consumeAll(t, tb.addr, topic, true); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read_committed got %d records %v\nwant %d %v", len(got), got, len(want), want)
	}
	all := append(append(values("c1", 30), values("ab", 30)...), values("c2", 30)...)
	sort.Strings(all)
	if got := consumeAll(t, tb.addr, topic, false); strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("read_uncommitted got %d records, want %d", len(got), len(all))
	}

	// Protocol level: each partition that got records of the aborted transaction lists it once,
	// with the offset of its first batch there.
	for p := int32(0); p < 3; p++ {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.ReplicaID, req.MaxBytes, req.IsolationLevel, req.SessionEpoch = -1, 1<<20, 1, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, 0, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := admRaw[*kmsg.FetchResponse](t, tb.addr, req)
		fp := resp.Topics[0].Partitions[0]
		if fp.ErrorCode != 0 || fp.LastStableOffset != fp.HighWatermark {
			t.Fatalf("partition %d: error %d, LSO %d, HW %d", p, fp.ErrorCode, fp.LastStableOffset, fp.HighWatermark)
		}
		batches := decodeBatches(t, fp.RecordBatches)
		var abortedFirst int64 = -1
		var pid int64 = -1
		var markers []string
		for _, b := range batches {
			if b.h.IsControl() {
				commit, ok := logstore.ControlMarker(b.raw)
				if !ok {
					t.Fatalf("partition %d: malformed marker at %d", p, b.h.BaseOffset)
				}
				markers = append(markers, map[bool]string{true: "commit", false: "abort"}[commit])
				continue
			}
			if abortedFirst < 0 && strings.HasPrefix(b.firstValue, "ab-") {
				abortedFirst, pid = b.h.BaseOffset, b.h.ProducerID
			}
		}
		if abortedFirst < 0 {
			if len(fp.AbortedTransactions) != 0 {
				t.Fatalf("partition %d: no aborted records but aborted list %+v", p, fp.AbortedTransactions)
			}
			continue
		}
		if len(fp.AbortedTransactions) != 1 || fp.AbortedTransactions[0].ProducerID != pid || fp.AbortedTransactions[0].FirstOffset != abortedFirst {
			t.Fatalf("partition %d: aborted transactions %+v, want [{%d %d}]", p, fp.AbortedTransactions, pid, abortedFirst)
		}
		if strings.Join(markers, ",") != "commit,abort,commit" {
			t.Fatalf("partition %d: markers %v", p, markers)
		}
	}

	// DescribeProducers: the producer is known on every partition, with no open transaction.
	dp := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = topic, []int32{0, 1, 2}
	dp.Topics = append(dp.Topics, dt)
	dresp := admRaw[*kmsg.DescribeProducersResponse](t, tb.addr, dp)
	for _, p := range dresp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("describe producers p%d: %d", p.Partition, p.ErrorCode)
		}
		for _, ap := range p.ActiveProducers {
			if ap.CurrentTxnStartOffset != -1 {
				t.Fatalf("p%d: producer %d still has a transaction from %d", p.Partition, ap.ProducerID, ap.CurrentTxnStartOffset)
			}
		}
	}
}

type rawBatch struct {
	h          logstore.BatchHeader
	raw        []byte
	firstValue string
}

// decodeBatches splits a fetched record set into batches; an uncompressed data batch gets its
// first record's value decoded.
func decodeBatches(t *testing.T, b []byte) []rawBatch {
	t.Helper()
	var out []rawBatch
	for len(b) >= logstore.BatchHeaderSize {
		var rb rawBatch
		logstore.ParseBatchHeader(b, &rb.h)
		if rb.h.Size() > len(b) {
			break
		}
		rb.raw = b[:rb.h.Size()]
		if !rb.h.IsControl() && rb.h.Compression() == 0 && rb.h.RecordCount > 0 {
			recs := rb.raw[logstore.BatchHeaderSize:]
			var r kmsg.Record
			if r.ReadFrom(recs) != nil {
				t.Fatalf("batch at %d: bad first record", rb.h.BaseOffset)
			}
			rb.firstValue = string(r.Value)
		}
		out = append(out, rb)
		b = b[rb.h.Size():]
	}
	return out
}

// TestTxnZombieFenced: a second producer with the same transactional id fences the first: the
// first's open transaction is aborted, its later produce and commit fail as fenced, and
// read_committed consumers never see its records.
func TestTxnZombieFenced(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "txn-zombie"
	admCreate(t, adm, topic, 2, nil)
	ctx := admCtx(t)
	zombie := newClient(t, tb.addr, kgo.TransactionalID("tx-zombie"), kgo.DefaultProduceTopic(topic))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := newClient(t, tb.addr, kgo.TransactionalID("tx-zombie"), kgo.DefaultProduceTopic(topic))
	txnProduce(t, fresh, topic, "fresh", 5, kgo.TryCommit) // its InitProducerId fenced the zombie

	err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-1")}).FirstErr()
	if err == nil {
		err = zombie.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie: got %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if got := consumeAll(t, tb.addr, topic, true); strings.Join(got, ",") != strings.Join(values("fresh", 5), ",") {
		t.Fatalf("read_committed: %v", got)
	}
	// The zombie's one written record is in the log, aborted by the fencing (read_uncommitted
	// shows it; the fenced "zombie-1" was never appended).
	got := consumeAll(t, tb.addr, topic, false)
	slices.Sort(got)
	want := append(values("fresh", 5), "zombie-0")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted: %v, want %v", got, want)
	}
}

// rawTxn drives a transactional producer by hand: InitProducerId, AddPartitionsToTxn and one
// transactional batch — and then stops, as a producer that died mid-transaction.
func rawTxn(t *testing.T, addr, txnID, topic string, partition int32, timeoutMs int32, vals ...string) (pid int64, epoch int16) {
	t.Helper()
	pid, epoch = rawTxnInit(t, addr, txnID, timeoutMs)
	if c := rawTxnAddPartition(t, addr, txnID, pid, epoch, topic, partition); c != 0 {
		t.Fatalf("add partitions: %d", c)
	}
	if c := rawTxnProduce(t, addr, txnID, pid, epoch, topic, partition, 0, vals...); c != 0 {
		t.Fatalf("produce: %d", c)
	}
	return pid, epoch
}

// rawTxnInit finds the transaction coordinator and sends InitProducerId for txnID.
func rawTxnInit(t *testing.T, addr, txnID string, timeoutMs int32) (pid int64, epoch int16) {
	t.Helper()
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorType, fc.CoordinatorKey = 1, txnID
	if r := admRaw[*kmsg.FindCoordinatorResponse](t, addr, fc); r.ErrorCode != 0 {
		t.Fatalf("find coordinator: %d", r.ErrorCode)
	}
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.SetVersion(4)
	ip.TransactionalID, ip.TransactionTimeoutMillis = &txnID, timeoutMs
	ir := admRaw[*kmsg.InitProducerIDResponse](t, addr, ip)
	if ir.ErrorCode != 0 {
		t.Fatalf("init producer id: %d", ir.ErrorCode)
	}
	return ir.ProducerID, ir.ProducerEpoch
}

// rawTxnAddPartition sends AddPartitionsToTxn v3 for one partition and returns its code.
func rawTxnAddPartition(t *testing.T, addr, txnID string, pid int64, epoch int16, topic string, partition int32) int16 {
	t.Helper()
	ap := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap.SetVersion(3)
	ap.TransactionalID, ap.ProducerID, ap.ProducerEpoch = txnID, pid, epoch
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = topic, []int32{partition}
	ap.Topics = append(ap.Topics, at)
	return admRaw[*kmsg.AddPartitionsToTxnResponse](t, addr, ap).Topics[0].Partitions[0].ErrorCode
}

// rawTxnProduce sends one transactional batch of vals at sequence seq (Produce v9) and
// returns the partition's code.
func rawTxnProduce(t *testing.T, addr, txnID string, pid int64, epoch int16, topic string, partition, seq int32, vals ...string) int16 {
	t.Helper()
	recs := make([]logstore.Record, len(vals))
	for i, v := range vals {
		recs[i] = logstore.Record{Value: []byte(v)}
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{
		Attributes: logstore.AttrTransactional, BaseTimestamp: time.Now().UnixMilli(),
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Records: recs,
	})
	pr := kmsg.NewPtrProduceRequest()
	pr.SetVersion(9)
	pr.TransactionID, pr.Acks, pr.TimeoutMillis = &txnID, -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition, pp.Records = partition, batch
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	return admRaw[*kmsg.ProduceResponse](t, addr, pr).Topics[0].Partitions[0].ErrorCode
}

// TestTxnProduceToPartitionNotAddedRefused: on one node, a transactional batch for a
// partition its transaction has not added is refused with INVALID_TXN_STATE (KIP-890's
// server-side verification) and not appended; once AddPartitionsToTxn added the partition the
// same batch is accepted.
func TestTxnProduceToPartitionNotAddedRefused(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "txn-not-added"
	admCreate(t, adm, topic, 2, nil)
	pid, epoch := rawTxnInit(t, tb.addr, "tx-not-added", 60000)
	if c := rawTxnAddPartition(t, tb.addr, "tx-not-added", pid, epoch, topic, 0); c != 0 {
		t.Fatalf("add partition 0: %d", c)
	}
	if c := rawTxnProduce(t, tb.addr, "tx-not-added", pid, epoch, topic, 1, 0, "stray"); c != errInvalidTxnState {
		t.Fatalf("batch to partition 1, not added: code %d, want INVALID_TXN_STATE (%d)", c, errInvalidTxnState)
	}
	ends, err := adm.ListEndOffsets(admCtx(t), topic)
	if o, ok := ends.Lookup(topic, 1); err != nil || !ok || o.Err != nil || o.Offset != 0 {
		t.Fatalf("partition 1 end after the refused batch: %+v %v, want 0", o, err)
	}
	if c := rawTxnAddPartition(t, tb.addr, "tx-not-added", pid, epoch, topic, 1); c != 0 {
		t.Fatalf("add partition 1: %d", c)
	}
	if c := rawTxnProduce(t, tb.addr, "tx-not-added", pid, epoch, topic, 1, 0, "added"); c != 0 {
		t.Fatalf("batch to partition 1 after adding it: code %d", c)
	}
}

// lso fetches a partition's last stable offset and high watermark with a read_committed fetch.
func lso(t *testing.T, addr, topic string, partition int32) (lso, hw int64, aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction) {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.IsolationLevel, req.SessionEpoch = -1, 1<<20, 1, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, 0, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	fp := admRaw[*kmsg.FetchResponse](t, addr, req).Topics[0].Partitions[0]
	if fp.ErrorCode != 0 {
		t.Fatalf("fetch: %d", fp.ErrorCode)
	}
	return fp.LastStableOffset, fp.HighWatermark, fp.AbortedTransactions
}

// TestTxnTimeoutAbortsAndLSOAdvances: a producer that dies mid-transaction holds the last
// stable offset at its first record until transaction.timeout.ms passes; then the coordinator
// aborts it (an abort marker, the transaction in the fetch's aborted list) and the LSO reaches
// the high watermark. A later producer on the partition is read normally.
func TestTxnTimeoutAbortsAndLSOAdvances(t *testing.T) {
	tb := startBroker(t, "", func(c *Config) { c.Txn.AbortTimedOutTransactionsIntervalMs = 50 })
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "txn-timeout"
	admCreate(t, adm, topic, 1, nil)
	admProduce(t, newClient(t, tb.addr), topic, 0, []byte("before"))
	pid, _ := rawTxn(t, tb.addr, "tx-dead", topic, 0, 1000, "dead-0", "dead-1", "dead-2")
	l, hw, _ := lso(t, tb.addr, topic, 0)
	if l != 1 || hw != 4 {
		t.Fatalf("open transaction: LSO %d HW %d, want 1 and 4", l, hw)
	}
	start := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, hw, aborted := lso(t, tb.addr, topic, 0)
		if l == hw && hw == 5 {
			if len(aborted) != 1 || aborted[0].ProducerID != pid || aborted[0].FirstOffset != 1 {
				t.Fatalf("aborted list %+v, want [{%d 1}]", aborted, pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction not aborted after %v: LSO %d HW %d", time.Since(start), l, hw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("aborted after %v, before its 1 s timeout", el)
	}
	admProduce(t, newClient(t, tb.addr), topic, 0, []byte("after"))
	if got := consumeAll(t, tb.addr, topic, true); strings.Join(got, ",") != "after,before" {
		t.Fatalf("read_committed: %v", got)
	}
}

// TestTxnOpenAcrossRestart: a transaction open when the broker restarts keeps holding the LSO
// (producer state snapshot), and commits afterwards; one aborted before the restart stays in
// the aborted list.
func TestTxnOpenAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, dir, nil)
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "txn-restart"
	admCreate(t, adm, topic, 1, nil)
	cl := newClient(t, tb.addr, kgo.TransactionalID("tx-restart"), kgo.DefaultProduceTopic(topic))
	txnProduce(t, cl, topic, "ab", 3, kgo.TryAbort)
	pid, epoch := rawTxn(t, tb.addr, "tx-open", topic, 0, 60000, "open-0", "open-1")
	cl.Close()
	tb.stop()

	tb = startBroker(t, dir, nil)
	l, hw, aborted := lso(t, tb.addr, topic, 0)
	if l != 4 || hw != 6 || len(aborted) != 1 || aborted[0].FirstOffset != 0 {
		t.Fatalf("after restart: LSO %d HW %d aborted %+v; want 4, 6, one from 0", l, hw, aborted)
	}
	er := kmsg.NewPtrEndTxnRequest()
	er.SetVersion(3)
	er.TransactionalID, er.ProducerID, er.ProducerEpoch, er.Commit = "tx-open", pid, epoch, true
	if r := admRaw[*kmsg.EndTxnResponse](t, tb.addr, er); r.ErrorCode != 0 {
		t.Fatalf("end txn after restart: %d", r.ErrorCode)
	}
	if l, hw, _ := lso(t, tb.addr, topic, 0); l != 7 || hw != 7 {
		t.Fatalf("after commit: LSO %d HW %d, want 7", l, hw)
	}
	if got := consumeAll(t, tb.addr, topic, true); strings.Join(got, ",") != "open-0,open-1" {
		t.Fatalf("read_committed: %v", got)
	}
}

// TestProducerSnapshotsWrittenPeriodically: producer state (with an open transaction) is
// snapshotted at the checkpoint interval once a log grows, named by the log end offset, so an
// unclean restart replays only the tail.
func TestProducerSnapshotsWrittenPeriodically(t *testing.T) {
	tb := startBroker(t, "", func(c *Config) { c.CheckpointInterval = 100 * time.Millisecond })
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "snap-periodic"
	admCreate(t, adm, topic, 1, nil)
	pid, _ := rawTxn(t, tb.addr, "tx-snap", topic, 0, 60000, "s-0", "s-1", "s-2")
	p := tb.b.topics.partition(topic, 0)
	path := filepath.Join(p.log.Dir(), fmt.Sprintf("%020d%s", 3, snapshotSuffix))
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := os.ReadFile(path)
		if err == nil {
			var snap producerSnapshot
			if err := json.Unmarshal(raw, &snap); err != nil {
				t.Fatal(err)
			}
			st := snap.Producers[strconv.FormatInt(pid, 10)]
			if st == nil || !st.InTxn || st.TxnFirst != 0 || len(st.Batches) != 1 || st.Batches[0].LastSeq != 2 {
				t.Fatalf("snapshot %s: %+v", raw, st)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot %s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWriteTxnMarkersAndTxnAdmin: WriteTxnMarkers (as a coordinator on another broker would
// send it) ends a transaction on the partitions named — per-partition codes for an unknown
// partition and for an epoch older than the producer's — and the admin APIs describe the
// transactional ids: ListTransactions with a state filter, DescribeTransactions with the
// partitions of an ongoing transaction, DescribeProducers with its first offset.
func TestWriteTxnMarkersAndTxnAdmin(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(newClient(t, tb.addr))
	const topic = "txn-admin"
	admCreate(t, adm, topic, 2, nil)
	pid, epoch := rawTxn(t, tb.addr, "tx-admin", topic, 1, 60000, "m-0", "m-1")

	lt := kmsg.NewPtrListTransactionsRequest()
	lt.StateFilters = []string{"Ongoing"}
	lresp := admRaw[*kmsg.ListTransactionsResponse](t, tb.addr, lt)
	if lresp.ErrorCode != 0 || len(lresp.TransactionStates) != 1 || lresp.TransactionStates[0].TransactionalID != "tx-admin" ||
		lresp.TransactionStates[0].ProducerID != pid || lresp.TransactionStates[0].TransactionState != "Ongoing" {
		t.Fatalf("list transactions: %+v", lresp)
	}
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"tx-admin", "tx-unknown"}
	dresp := admRaw[*kmsg.DescribeTransactionsResponse](t, tb.addr, dt)
	if len(dresp.TransactionStates) != 2 {
		t.Fatalf("describe transactions: %+v", dresp)
	}
	d := dresp.TransactionStates[0]
	if d.ErrorCode != 0 || d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != epoch || d.TimeoutMillis != 60000 ||
		len(d.Topics) != 1 || d.Topics[0].Topic != topic || len(d.Topics[0].Partitions) != 1 || d.Topics[0].Partitions[0] != 1 {
		t.Fatalf("describe tx-admin: %+v", d)
	}
	if c := dresp.TransactionStates[1].ErrorCode; c != 105 {
		t.Fatalf("describe unknown id: code %d, want TRANSACTIONAL_ID_NOT_FOUND (105)", c)
	}
	dp := kmsg.NewPtrDescribeProducersRequest()
	dpt := kmsg.NewDescribeProducersRequestTopic()
	dpt.Topic, dpt.Partitions = topic, []int32{1}
	dp.Topics = append(dp.Topics, dpt)
	ap := admRaw[*kmsg.DescribeProducersResponse](t, tb.addr, dp).Topics[0].Partitions[0].ActiveProducers
	if len(ap) != 1 || ap[0].ProducerID != pid || ap[0].ProducerEpoch != int32(epoch) || ap[0].LastSequence != 1 || ap[0].CurrentTxnStartOffset != 0 {
		t.Fatalf("describe producers: %+v", ap)
	}

	marker := func(e int16, parts ...int32) []int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = pid, e, true
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = topic, parts
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		resp := admRaw[*kmsg.WriteTxnMarkersResponse](t, tb.addr, req)
		var codes []int16
		for _, p := range resp.Markers[0].Topics[0].Partitions {
			codes = append(codes, p.ErrorCode)
		}
		return codes
	}
	if codes := marker(epoch, 1, 7); len(codes) != 2 || codes[0] != 0 || codes[1] != errUnknownTopicOrPartition {
		t.Fatalf("markers: codes %v, want [0 3]", codes)
	}
	if l, hw, aborted := lso(t, tb.addr, topic, 1); l != 3 || hw != 3 || len(aborted) != 0 {
		t.Fatalf("after commit marker: LSO %d HW %d aborted %v", l, hw, aborted)
	}
	// A marker at a newer epoch is taken (and raises the producer's epoch); one at the old
	// epoch is then refused.
	if codes := marker(epoch+1, 1); codes[0] != 0 {
		t.Fatalf("newer-epoch marker: %v", codes)
	}
	if codes := marker(epoch, 1); codes[0] != errInvalidProducerEpoch {
		t.Fatalf("stale marker: %v, want INVALID_PRODUCER_EPOCH", codes)
	}
	if got := consumeAll(t, tb.addr, topic, true); strings.Join(got, ",") != "m-0,m-1" {
		t.Fatalf("read_committed: %v", got)
	}
}
