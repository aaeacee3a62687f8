package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/logstore"
)

// rawProduce sends one idempotent batch of n records and returns the partition's error code
// and base offset.
func rawProduce(t *testing.T, cl *kgo.Client, topic string, pid int64, epoch int16, seq int32, n int) (int16, int64) {
	t.Helper()
	recs := make([]logstore.Record, n)
	for i := range recs {
		recs[i] = logstore.Record{Value: []byte("v")}
	}
	batch := logstore.AppendBatch(nil, logstore.BatchSpec{BaseTimestamp: time.Now().UnixMilli(), ProducerID: pid,
		ProducerEpoch: epoch, BaseSequence: seq, PartitionLeaderEpoch: -1, Records: recs})
	return produceRaw(t, cl, topic, batch)
}

// produceRaw sends records (whole batches) to partition 0 of topic with acks=all and returns
// the partition's error code and base offset.
func produceRaw(t *testing.T, cl *kgo.Client, topic string, records []byte) (int16, int64) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

func initProducerID(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(context.Background(), cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %v", err, resp)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func endOffset(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].Offset
}

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	for k, v := range configs {
		v := v
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: &v})
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic %s: %v %+v", name, err, resp)
	}
}

// TestIdempotentProducerSequenceRules checks Kafka's rules for idempotent batches at the
// protocol level: retries answered with the original offset and not appended again, gaps
// refused with OUT_OF_ORDER_SEQUENCE_NUMBER, stale epochs with INVALID_PRODUCER_EPOCH, a new
// epoch starting at sequence 0, and the state surviving clean and unclean restarts.
func TestIdempotentProducerSequenceRules(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, dir, nil)
	cl := newClient(t, tb.addr)
	const topic = "idem"
	createTopic(t, cl, topic, 1, nil)
	pid, epoch := initProducerID(t, cl)
	if pid2, _ := initProducerID(t, cl); pid2 == pid {
		t.Fatalf("two producers got the same id %d", pid)
	}
	steps := []struct {
		name      string
		epoch     int16
		seq       int32
		n         int
		wantCode  int16
		wantBase  int64
		wantEnd   int64
		runBefore func()
	}{
		{name: "first batch", epoch: epoch, seq: 0, n: 3, wantBase: 0, wantEnd: 3},
		{name: "retry of the first batch", epoch: epoch, seq: 0, n: 3, wantBase: 0, wantEnd: 3},
		{name: "next batch", epoch: epoch, seq: 3, n: 2, wantBase: 3, wantEnd: 5},
		{name: "gap", epoch: epoch, seq: 9, n: 1, wantCode: errOutOfOrderSequenceNumber, wantBase: -1, wantEnd: 5},
		{name: "retry of an older batch", epoch: epoch, seq: 0, n: 3, wantBase: 0, wantEnd: 5},
		{name: "new epoch must start at 0", epoch: epoch + 1, seq: 5, n: 1, wantCode: errOutOfOrderSequenceNumber, wantBase: -1, wantEnd: 5},
		{name: "new epoch", epoch: epoch + 1, seq: 0, n: 1, wantBase: 5, wantEnd: 6},
		{name: "stale epoch", epoch: epoch, seq: 5, n: 1, wantCode: errInvalidProducerEpoch, wantBase: -1, wantEnd: 6},
	}
	for _, s := range steps {
		code, base := rawProduce(t, cl, topic, pid, s.epoch, s.seq, s.n)
		if code != s.wantCode || base != s.wantBase {
			t.Fatalf("%s: code %d base %d, want %d %d", s.name, code, base, s.wantCode, s.wantBase)
		}
		if end := endOffset(t, cl, topic); end != s.wantEnd {
			t.Fatalf("%s: log end %d, want %d", s.name, end, s.wantEnd)
		}
	}
	// Clean restart: the snapshot keeps the state; a retry is still a duplicate.
	cl.Close()
	tb.stop()
	tb = startBroker(t, dir, nil)
	cl = newClient(t, tb.addr)
	if code, base := rawProduce(t, cl, topic, pid, epoch+1, 0, 1); code != 0 || base != 5 {
		t.Fatalf("retry after clean restart: code %d base %d, want 0 5", code, base)
	}
	if code, _ := rawProduce(t, cl, topic, pid, epoch+1, 7, 1); code != errOutOfOrderSequenceNumber {
		t.Fatalf("gap after clean restart: code %d", code)
	}
	// Unclean restart (no snapshot): the state is rebuilt from the log.
	cl.Close()
	tb.stop()
	ents, _ := os.ReadDir(filepath.Join(dir, topic+"-0"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), snapshotSuffix) {
			os.Remove(filepath.Join(dir, topic+"-0", e.Name()))
		}
	}
	tb = startBroker(t, dir, nil)
	cl = newClient(t, tb.addr)
	if code, base := rawProduce(t, cl, topic, pid, epoch+1, 0, 1); code != 0 || base != 5 {
		t.Fatalf("retry after replay: code %d base %d, want 0 5", code, base)
	}
	if code, base := rawProduce(t, cl, topic, pid, epoch+1, 1, 1); code != 0 || base != 6 {
		t.Fatalf("next after replay: code %d base %d, want 0 6", code, base)
	}
	if code, _ := rawProduce(t, cl, topic, pid, epoch, 9, 1); code != errInvalidProducerEpoch {
		t.Fatalf("stale epoch after replay: code %d", code)
	}
}
