//go:build linux

package main

// Transactions across broker deaths: a franz-go transactional producer runs transactions while
// the broker process is killed with SIGKILL and restarted on the same data folder and port.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	txkTopic = "kill9-txn"
	txkParts = int32(3)
	txkN     = 100 // records per transaction
)

// txkBroker is the broker process of a test, restarted on the same folder and port.
type txkBroker struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

// startTxkBroker runs the binary with transaction timers for tests: timed-out transactions are
// looked for every 100 ms. The child gets SIGKILL if the test process dies.
func startTxkBroker(t *testing.T) *txkBroker {
	t.Helper()
	b := &txkBroker{t: t, bin: spateBinary(t), dir: t.TempDir(), addr: freeAddr(t)}
	b.start()
	t.Cleanup(func() {
		if b.cmd != nil {
			b.cmd.Process.Kill()
			b.cmd.Wait()
		}
	})
	return b
}

func (b *txkBroker) start() {
	b.t.Helper()
	level := "warn"
	if os.Getenv("SPATE_TEST_DEBUG") != "" {
		level = "info"
	}
	cmd := exec.Command(b.bin, "-data-dir", b.dir, "-listen", b.addr, "-admin", "", "-log-level", level,
		"-transaction-max-timeout", "60s", "-transaction-abort-timed-out-interval", "100ms",
		"-transaction-state-partitions", "5", "-transactional-id-expiration", "1h",
		"-offsets-topic-partitions", "5")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd = cmd
	waitListening(b.t, b.addr)
}

// kill9 kills the process with SIGKILL and waits for it.
func (b *txkBroker) kill9() {
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	b.cmd = nil
}

// txkRec is one record of the topic: where it is and its value.
type txkRec struct {
	P      int32
	Offset int64
	Value  string
}

func (r txkRec) String() string { return fmt.Sprintf("p%d@%d=%s", r.P, r.Offset, r.Value) }

// txkProducer is a transactional franz-go producer of the topic: records keyed by their value
// and spread over the partitions by the key's hash.
func txkProducer(t *testing.T, addr, txnID string, timeout time.Duration) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("kill9-txn-"+txnID), kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(timeout), kgo.DefaultProduceTopic(txkTopic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(0),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// txkProduce begins a transaction and produces prefix-0..prefix-99 in it with ProduceSync,
// returning where each record went. Within a partition, offsets follow the produce order.
func txkProduce(t *testing.T, cl *kgo.Client, prefix string) []txkRec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin %s: %v", prefix, err)
	}
	rs := make([]*kgo.Record, txkN)
	for i := range rs {
		v := fmt.Sprintf("%s-%d", prefix, i)
		rs[i] = &kgo.Record{Key: []byte(v), Value: []byte(v)}
	}
	res := cl.ProduceSync(ctx, rs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", prefix, err)
	}
	out := make([]txkRec, len(res))
	last := map[int32]int64{}
	for i, pr := range res {
		out[i] = txkRec{P: pr.Record.Partition, Offset: pr.Record.Offset, Value: string(pr.Record.Value)}
		if prev, ok := last[out[i].P]; ok && out[i].Offset <= prev {
			t.Fatalf("%s: %v produced after offset %d of its partition", prefix, out[i], prev)
		}
		last[out[i].P] = out[i].Offset
	}
	for p := int32(0); p < txkParts; p++ {
		if _, ok := last[p]; !ok {
			t.Fatalf("transaction %s put no record in partition %d: %v", prefix, p, out)
		}
	}
	return out
}

func txkEnd(t *testing.T, cl *kgo.Client, what string, commit kgo.TransactionEndTry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.EndTransaction(ctx, commit); err != nil {
		t.Fatalf("end transaction %s: %v", what, err)
	}
}

// txkSpan is the first and last offset of a transaction's records in each partition.
func txkSpan(recs []txkRec) (first, last map[int32]int64) {
	first, last = map[int32]int64{}, map[int32]int64{}
	for _, r := range recs {
		if f, ok := first[r.P]; !ok || r.Offset < f {
			first[r.P] = r.Offset
		}
		if r.Offset > last[r.P] {
			last[r.P] = r.Offset
		}
	}
	return first, last
}

// txkSorted is recs ordered by partition, then offset: what a consumer reading each partition
// in turn must see.
func txkSorted(recs ...[]txkRec) []txkRec {
	var out []txkRec
	for _, rs := range recs {
		out = append(out, rs...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].P != out[j].P {
			return out[i].P < out[j].P
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// txkRead reads every partition from the start with a new consumer of the isolation level until
// it holds want records, then 1 s more (anything else would arrive then); it returns what it
// read, partition by partition in the order read.
func txkRead(t *testing.T, addr string, committed bool, want int) []txkRec {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	parts := map[int32]kgo.Offset{}
	for p := int32(0); p < txkParts; p++ {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("kill9-txn-reader"), kgo.FetchIsolationLevel(iso),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{txkTopic: parts}), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[int32][]txkRec{}
	n := 0
	deadline := time.Now().Add(20 * time.Second)
	var quietUntil time.Time
	for {
		now := time.Now()
		if n >= want && quietUntil.IsZero() {
			quietUntil = now.Add(time.Second)
		}
		if !quietUntil.IsZero() && !now.Before(quietUntil) {
			break
		}
		if now.After(deadline) {
			t.Fatalf("read %d of %d records (committed=%v): %v", n, want, committed, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch partition %d: %v", p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], txkRec{P: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			n++
		})
	}
	var out []txkRec
	for p := int32(0); p < txkParts; p++ {
		out = append(out, got[p]...)
	}
	return out
}

// txkCheckRead asserts that a consumer of the isolation level reads exactly want.
func txkCheckRead(t *testing.T, addr, what string, committed bool, want []txkRec) {
	t.Helper()
	got := txkRead(t, addr, committed, len(want))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: read %d records\n%v\nwant %d\n%v", what, len(got), got, len(want), want)
	}
}

// txkRaw sends one request (not ApiVersions) on its own connection and decodes the
// response.
func txkRaw[Resp kmsg.Response](t *testing.T, addr string, req kmsg.Request) Resp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const corr = 11
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("kill9-txn-raw")).AppendRequest(nil, req, corr)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("%s: read response: %v", kmsg.NameForKey(req.Key()), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	if req.IsFlexible() {
		// A flexible response header ends with its tagged fields: Spate sends none.
		if len(body) == 0 || body[0] != 0 {
			t.Fatalf("%s: response header has tagged fields", kmsg.NameForKey(req.Key()))
		}
		body = body[1:]
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("%s: decode response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(Resp)
}

// txkStable is what a read_committed Fetch v11 from offset 0 says of a partition.
type txkStable struct {
	LSO, HW int64
	Aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction
}

func txkFetchStable(t *testing.T, addr string, p int32) txkStable {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.IsolationLevel, req.SessionEpoch = -1, 1<<20, 1, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = txkTopic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, 0, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := txkRaw[*kmsg.FetchResponse](t, addr, req)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch p%d: error %d, %d topics", p, resp.ErrorCode, len(resp.Topics))
	}
	fp := resp.Topics[0].Partitions[0]
	if fp.ErrorCode != 0 {
		t.Fatalf("fetch p%d: error %d", p, fp.ErrorCode)
	}
	return txkStable{LSO: fp.LastStableOffset, HW: fp.HighWatermark, Aborted: fp.AbortedTransactions}
}

func txkAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("kill9-txn-admin"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func txkCreateTopic(t *testing.T, adm *kadm.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := adm.CreateTopic(ctx, txkParts, 1, nil, txkTopic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
}

// txkDescribe describes a transactional id.
func txkDescribe(t *testing.T, adm *kadm.Client, txnID string) kadm.DescribedTransaction {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		t.Fatalf("describe transactions: %v", err)
	}
	d, ok := ds[txnID]
	if !ok || d.Err != nil {
		t.Fatalf("describe %s: %+v", txnID, ds)
	}
	return d
}

// txkPartitions lists a described transaction's partitions, "topic/p" sorted.
func txkPartitions(d kadm.DescribedTransaction) []string {
	var out []string
	for topic, ps := range d.Topics {
		for p := range ps {
			out = append(out, fmt.Sprintf("%s/%d", topic, p))
		}
	}
	sort.Strings(out)
	return out
}

// txkLSOIsHW checks with kadm that the last stable offset (ListOffsets read_committed) of every
// partition is its high watermark (ListOffsets read_uncommitted), and that both are want.
func txkLSOIsHW(t *testing.T, adm *kadm.Client, want map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, txkTopic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, txkTopic)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < txkParts; p++ {
		e, ok1 := ends.Lookup(txkTopic, p)
		s, ok2 := stable.Lookup(txkTopic, p)
		if !ok1 || !ok2 || e.Err != nil || s.Err != nil || e.Offset != want[p] || s.Offset != want[p] {
			t.Fatalf("p%d: ListOffsets end %+v, stable %+v; want both %d", p, e, s, want[p])
		}
	}
}

// TestKill9MidTransaction: transaction A (a-0..a-99 over three partitions) commits; transaction
// B (b-0..b-99, timeout 6 s) has every record acknowledged when the broker is killed with
// SIGKILL before EndTxn, and the broker restarts on the same folder.
//
//	(a) Right after the restart B is still Ongoing (DescribeTransactions: its producer, epoch and
//	    three partitions): the last stable offset of every partition is B's first offset there,
//	    the high watermark is past B's last record, and a read_committed consumer reads exactly
//	    A (each record at the offset its producer was told) and nothing more.
//	(b) The coordinator aborts B once its timeout (counted from before the kill) has passed, not
//	    earlier: the producer's epoch is bumped, the state is CompleteAbort, every partition has
//	    its abort marker (high watermark = B's last offset + 2), the last stable offset reaches
//	    the high watermark (raw read_committed Fetch and kadm ListCommittedOffsets =
//	    ListEndOffsets), the fetch lists B as aborted from its first offset, read_committed
//	    still reads exactly A, and read_uncommitted reads A and B.
//	(c) A new producer with the same transactional id initializes (epoch bumped again, same
//	    producer id), commits C (c-0..c-99): read_committed reads exactly A then C, and the old
//	    producer, fenced, cannot commit B (PRODUCER_FENCED).
func TestKill9MidTransaction(t *testing.T) {
	start := time.Now()
	b := startTxkBroker(t)
	adm := txkAdmin(t, b.addr)
	txkCreateTopic(t, adm)
	const txnID, timeout = "kill9-mid", 6 * time.Second

	old := txkProducer(t, b.addr, txnID, timeout)
	a := txkProduce(t, old, "a")
	txkEnd(t, old, "A", kgo.TryCommit)
	beforeA := txkDescribe(t, adm, txnID)
	if beforeA.State != "CompleteCommit" || beforeA.TimeoutMillis != int32(timeout/time.Millisecond) {
		t.Fatalf("after A: %+v, want CompleteCommit with timeout %d", beforeA, timeout/time.Millisecond)
	}

	begun := time.Now()
	bRecs := txkProduce(t, old, "b")
	b.kill9()
	killed := time.Now()
	b.start()
	t.Logf("B's records acknowledged, killed %v after it began, restarted in %v", killed.Sub(begun), time.Since(killed))

	// (a) B is open: the LSO is held at its first record of each partition.
	bFirst, bLast := txkSpan(bRecs)
	for p := int32(0); p < txkParts; p++ {
		s := txkFetchStable(t, b.addr, p)
		if s.LSO != bFirst[p] || s.HW != bLast[p]+1 || len(s.Aborted) != 0 {
			t.Fatalf("(a) p%d after restart, %v after B began: LSO %d HW %d aborted %+v; want LSO %d (B's first) HW %d, none aborted",
				p, time.Since(begun), s.LSO, s.HW, s.Aborted, bFirst[p], bLast[p]+1)
		}
	}
	open := txkDescribe(t, adm, txnID)
	wantParts := fmt.Sprint([]string{txkTopic + "/0", txkTopic + "/1", txkTopic + "/2"})
	if open.State != "Ongoing" || open.ProducerID != beforeA.ProducerID || open.ProducerEpoch != beforeA.ProducerEpoch ||
		fmt.Sprint(txkPartitions(open)) != wantParts {
		t.Fatalf("(a) B after restart: %+v partitions %v; want Ongoing, producer %d epoch %d, %s",
			open, txkPartitions(open), beforeA.ProducerID, beforeA.ProducerEpoch, wantParts)
	}
	if since := time.Since(begun); since >= timeout {
		t.Fatalf("(a) checked %v after B began, not within its %v timeout: the test is too slow to tell", since, timeout)
	}
	txkCheckRead(t, b.addr, "(a) read_committed after restart", true, txkSorted(a))

	// (b) The timeout aborts B.
	deadline := time.Now().Add(20 * time.Second)
	for p := int32(0); p < txkParts; p++ {
		for {
			s := txkFetchStable(t, b.addr, p)
			if s.LSO == s.HW {
				if since := time.Since(begun); since < timeout-time.Millisecond { // start_timestamp is in ms
					t.Fatalf("(b) p%d: B ended %v after it began, before its %v timeout", p, since, timeout)
				}
				if s.HW != bLast[p]+2 || len(s.Aborted) != 1 || s.Aborted[0].ProducerID != beforeA.ProducerID || s.Aborted[0].FirstOffset != bFirst[p] {
					t.Fatalf("(b) p%d after the abort: HW %d aborted %+v; want HW %d, [{producer %d first %d}]",
						p, s.HW, s.Aborted, bLast[p]+2, beforeA.ProducerID, bFirst[p])
				}
				break
			}
			if s.LSO != bFirst[p] {
				t.Fatalf("(b) p%d while B is open: LSO %d, want %d", p, s.LSO, bFirst[p])
			}
			if time.Now().After(deadline) {
				t.Fatalf("(b) p%d: B not aborted %v after it began: LSO %d HW %d", p, time.Since(begun), s.LSO, s.HW)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("B aborted by its timeout, seen %v after it began", time.Since(begun))
	aborted := txkDescribe(t, adm, txnID)
	if aborted.State != "CompleteAbort" || aborted.ProducerID != beforeA.ProducerID || aborted.ProducerEpoch != beforeA.ProducerEpoch+1 || len(aborted.Topics) != 0 {
		t.Fatalf("(b) after the timeout: %+v; want CompleteAbort, producer %d epoch %d, no partitions", aborted, beforeA.ProducerID, beforeA.ProducerEpoch+1)
	}
	hw := map[int32]int64{}
	for p := int32(0); p < txkParts; p++ {
		hw[p] = bLast[p] + 2
	}
	txkLSOIsHW(t, adm, hw)
	txkCheckRead(t, b.addr, "(b) read_committed after the abort", true, txkSorted(a))
	txkCheckRead(t, b.addr, "(b) read_uncommitted after the abort", false, txkSorted(a, bRecs))

	// (c) A new producer with the same id fences the old one and commits C.
	fresh := txkProducer(t, b.addr, txnID, timeout)
	c := txkProduce(t, fresh, "c")
	txkEnd(t, fresh, "C", kgo.TryCommit)
	cFirst, cLast := txkSpan(c)
	for p := int32(0); p < txkParts; p++ {
		if cFirst[p] != bLast[p]+2 {
			t.Fatalf("(c) p%d: C starts at %d, want %d (after B's abort marker)", p, cFirst[p], bLast[p]+2)
		}
		hw[p] = cLast[p] + 2
	}
	committed := txkDescribe(t, adm, txnID)
	if committed.State != "CompleteCommit" || committed.ProducerID != beforeA.ProducerID || committed.ProducerEpoch != beforeA.ProducerEpoch+2 {
		t.Fatalf("(c) after C: %+v; want CompleteCommit, producer %d epoch %d", committed, beforeA.ProducerID, beforeA.ProducerEpoch+2)
	}
	txkLSOIsHW(t, adm, hw)
	txkCheckRead(t, b.addr, "(c) read_committed after C", true, txkSorted(a, c))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := old.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("(c) the old producer's commit of B: %v, want PRODUCER_FENCED", err)
	}
	txkLSOIsHW(t, adm, hw)
	txkCheckRead(t, b.addr, "(c) read_committed after the old producer's commit", true, txkSorted(a, c))
	t.Logf("done in %v", time.Since(start))
}

// TestKill9AfterCommitKeepsTransaction: a transaction whose EndTxn(commit) was answered is
// never lost nor partial. Transaction A commits; then, three times, transaction B<i>
// (b<i>-0..b<i>-99 over three partitions) commits and the broker is killed with SIGKILL as soon
// as EndTransaction returns, and restarted on the same folder. After each restart the
// coordinator says CompleteCommit, the last stable offset of every partition is its high
// watermark, which is B<i>'s last offset + 2 (its commit marker: EndTxn is answered once the
// markers are written, so they are there as soon as the broker restarts), and a read_committed
// consumer reads exactly A and every B so far, each record at the offset its producer was told;
// the next transaction's producer (same id) initializes with the epoch bumped.
func TestKill9AfterCommitKeepsTransaction(t *testing.T) {
	start := time.Now()
	b := startTxkBroker(t)
	adm := txkAdmin(t, b.addr)
	txkCreateTopic(t, adm)
	const txnID = "kill9-committed"

	p := txkProducer(t, b.addr, txnID, 10*time.Second)
	want := txkProduce(t, p, "a")
	txkEnd(t, p, "A", kgo.TryCommit)
	d := txkDescribe(t, adm, txnID)
	pid, epoch := d.ProducerID, d.ProducerEpoch
	for round := 1; round <= 3; round++ {
		if round > 1 {
			p = txkProducer(t, b.addr, txnID, 10*time.Second)
			epoch++ // InitProducerId from CompleteCommit bumps the epoch
		}
		prefix := fmt.Sprintf("b%d", round)
		recs := txkProduce(t, p, prefix)
		txkEnd(t, p, prefix, kgo.TryCommit)
		b.kill9()
		b.start()
		want = txkSorted(want, recs)
		_, last := txkSpan(recs)
		hw := map[int32]int64{}
		for q := int32(0); q < txkParts; q++ {
			hw[q] = last[q] + 2
		}
		// EndTxn is answered once the markers are written: they are in the log at the restart.
		for q := int32(0); q < txkParts; q++ {
			s := txkFetchStable(t, b.addr, q)
			if s.LSO != hw[q] || s.HW != hw[q] || len(s.Aborted) != 0 {
				t.Fatalf("%s p%d right after restart: LSO %d HW %d aborted %+v; want LSO = HW = %d, none aborted",
					prefix, q, s.LSO, s.HW, s.Aborted, hw[q])
			}
		}
		d := txkDescribe(t, adm, txnID)
		if d.State != "CompleteCommit" || d.ProducerID != pid || d.ProducerEpoch != epoch || len(d.Topics) != 0 {
			t.Fatalf("%s after restart: %+v; want CompleteCommit, producer %d epoch %d, no partitions", prefix, d, pid, epoch)
		}
		txkLSOIsHW(t, adm, hw)
		txkCheckRead(t, b.addr, prefix+": read_committed after restart", true, want)
	}
	t.Logf("done in %v", time.Since(start))
}
