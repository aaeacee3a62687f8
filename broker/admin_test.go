package broker

// Tests of the admin APIs (DeleteTopics, DeleteRecords, OffsetForLeaderEpoch,
// DescribeConfigs, AlterConfigs, DescribeLogDirs, CreatePartitions, IncrementalAlterConfigs,
// DescribeCluster) with real franz-go clients (kadm) and, for exact versions and error codes,
// raw kmsg requests on a socket.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func admClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func admCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// admRaw sends req at the version set on it, on a fresh connection, and decodes the answer.
func admRaw[Resp kmsg.Response](t *testing.T, addr string, req kmsg.Request) Resp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	const corr = 7
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("admin-test")).AppendRequest(nil, req, corr)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("%s v%d: read response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		var ok bool
		if body, ok = skipTags(body); !ok {
			t.Fatal("bad response header tags")
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("%s v%d: decode response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp.(Resp)
}

func admCreate(t *testing.T, adm *kadm.Client, name string, partitions int32, configs map[string]*string) [16]byte {
	t.Helper()
	resp, err := adm.CreateTopic(admCtx(t), partitions, 1, configs, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", name, err, resp.Err)
	}
	return resp.ID
}

// admProduce produces one record per value to a partition, each in its own batch, and
// returns the offset of the first.
func admProduce(t *testing.T, cl *kgo.Client, topic string, partition int32, values ...[]byte) int64 {
	t.Helper()
	first := int64(-1)
	for _, v := range values {
		r, err := cl.ProduceSync(admCtx(t), &kgo.Record{Topic: topic, Partition: partition, Value: v}).First()
		if err != nil {
			t.Fatalf("produce to %s-%d: %v", topic, partition, err)
		}
		if first < 0 {
			first = r.Offset
		}
	}
	return first
}

func admProducer(t *testing.T, addr string) *kgo.Client {
	return admClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
}

// admConsume reads n records of a partition from its earliest offset.
func admConsume(t *testing.T, addr, topic string, partition int32, n int) []*kgo.Record {
	t.Helper()
	cl := admClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	defer cl.Close() // no fetch left parked on the broker
	ctx := admCtx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("consume %s-%d: %v", topic, partition, err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// admTopicCodes asks metadata for topics without auto-creation and returns each one's code.
func admTopicCodes(t *testing.T, cl *kgo.Client, topics ...string) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	for _, n := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(admCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int16{}
	for _, mt := range resp.Topics {
		out[*mt.Topic] = mt.ErrorCode
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func strp(s string) *string { return &s }

func TestDeleteTopicsRemovesMetadataAndFolders(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := admClient(t, tb.addr)
	adm := kadm.NewClient(cl)
	prod := admProducer(t, tb.addr)
	admCreate(t, adm, "doomed", 2, nil)
	admCreate(t, adm, "kept", 1, nil)
	admProduce(t, prod, "doomed", 1, []byte("gone soon"))

	resps, err := adm.DeleteTopics(admCtx(t), "doomed")
	if err != nil {
		t.Fatal(err)
	}
	if r := resps["doomed"]; r.Err != nil {
		t.Fatalf("delete: %v", r.Err)
	}
	codes := admTopicCodes(t, cl, "doomed", "kept")
	if codes["doomed"] != errUnknownTopicOrPartition || codes["kept"] != 0 {
		t.Fatalf("metadata codes after delete: %v", codes)
	}
	for _, d := range []string{"doomed-0", "doomed-1"} {
		if exists(filepath.Join(tb.dir, d)) {
			t.Fatalf("%s still on disk", d)
		}
	}
	if !exists(filepath.Join(tb.dir, "kept-0")) {
		t.Fatal("kept-0 deleted")
	}
	// The name is free again: a new topic starts at offset 0.
	admCreate(t, adm, "doomed", 1, nil)
	if off := admProduce(t, prod, "doomed", 0, []byte("again")); off != 0 {
		t.Fatalf("recreated topic's first offset %d, want 0", off)
	}
	// Deleting again after a restart finds the deletion persisted.
	tb.stop()
	tb = startBroker(t, tb.dir, nil)
	cl = admClient(t, tb.addr)
	if codes := admTopicCodes(t, cl, "doomed", "kept"); codes["doomed"] != 0 || codes["kept"] != 0 {
		t.Fatalf("metadata codes after restart: %v", codes)
	}
}

func TestDeleteTopicsV6ByIDAndErrorCodes(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(admClient(t, tb.addr))
	idA := admCreate(t, adm, "by-id", 1, nil)
	idC := admCreate(t, adm, "named-and-id", 1, nil)
	unknownID := [16]byte{1, 2, 3}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	add := func(name *string, id [16]byte) {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic, rt.TopicID = name, id
		req.Topics = append(req.Topics, rt)
	}
	add(nil, idA)                         // deleted by id
	add(nil, unknownID)                   // UNKNOWN_TOPIC_ID
	add(strp("nope"), [16]byte{})         // UNKNOWN_TOPIC_OR_PARTITION
	add(strp("by-id"), idA)               // both: INVALID_REQUEST
	add(nil, [16]byte{})                  // neither: INVALID_REQUEST
	add(strp("twice"), [16]byte{})        // duplicate name: one INVALID_REQUEST
	add(strp("twice"), [16]byte{})        //
	add(nil, idC)                         // an id also reached by name: no result
	add(strp("named-and-id"), [16]byte{}) // INVALID_REQUEST
	resp := admRaw[*kmsg.DeleteTopicsResponse](t, tb.addr, req)
	type res struct {
		name string
		id   [16]byte
		code int16
		msg  string
	}
	var got []res
	for _, r := range resp.Topics {
		x := res{id: r.TopicID, code: r.ErrorCode}
		if r.Topic != nil {
			x.name = *r.Topic
		}
		if r.ErrorMessage != nil {
			x.msg = *r.ErrorMessage
		}
		got = append(got, x)
	}
	want := []res{
		{"by-id", idA, 0, ""},
		{"", unknownID, errUnknownTopicID, "This server does not host this topic ID."},
		{"nope", [16]byte{}, errUnknownTopicOrPartition, "This server does not host this topic-partition."},
		{"by-id", idA, errInvalidRequest, "You may not specify both topic name and topic id."},
		{"", [16]byte{}, errInvalidRequest, "Neither topic name nor id were specified."},
		{"twice", [16]byte{}, errInvalidRequest, "Duplicate topic name."},
		{"named-and-id", idC, errInvalidRequest, "The provided topic name maps to an ID that was already supplied."},
	}
	if len(got) != len(want) {
		t.Fatalf("results %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("result %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if exists(filepath.Join(tb.dir, "by-id-0")) || !exists(filepath.Join(tb.dir, "named-and-id-0")) {
		t.Fatal("by-id should be deleted, named-and-id kept")
	}

	// v5 (names only) answers an unknown name with a message; v0 without.
	for _, v := range []int16{0, 5} {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version = v
		req.TopicNames = []string{"nope", "named-and-id"}
		resp := admRaw[*kmsg.DeleteTopicsResponse](t, tb.addr, req)
		if len(resp.Topics) != 2 || resp.Topics[0].ErrorCode != errUnknownTopicOrPartition || resp.Topics[1].ErrorCode != 0 {
			t.Fatalf("v%d: %+v", v, resp.Topics)
		}
		if (resp.Topics[0].ErrorMessage != nil) != (v >= 5) {
			t.Fatalf("v%d: message %v", v, resp.Topics[0].ErrorMessage)
		}
		if v == 0 {
			admCreate(t, adm, "named-and-id", 1, nil)
		}
	}
}

func TestCreatePartitionsGrowsTopicAndServesNewPartitions(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := admClient(t, tb.addr)
	adm := kadm.NewClient(cl)
	admCreate(t, adm, "grow", 1, map[string]*string{"retention.ms": strp("3600000")})
	resps, err := adm.UpdatePartitions(admCtx(t), 3, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if err := resps.Error(); err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(admCtx(t), "grow")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics["grow"].Partitions); n != 3 {
		t.Fatalf("%d partitions after growing to 3", n)
	}
	prod := admProducer(t, tb.addr)
	for p := int32(0); p < 3; p++ {
		if off := admProduce(t, prod, "grow", p, []byte("p"+strconv.Itoa(int(p)))); off != 0 {
			t.Fatalf("first offset of partition %d: %d", p, off)
		}
		rs := admConsume(t, tb.addr, "grow", p, 1)
		if string(rs[0].Value) != "p"+strconv.Itoa(int(p)) {
			t.Fatalf("partition %d read %q", p, rs[0].Value)
		}
	}
	// New partitions carry the topic's configs.
	if got := tb.b.topics.partition("grow", 2).log.Config().RetentionMs; got != 3600000 {
		t.Fatalf("new partition's retention.ms %d", got)
	}
	// kadm's "add" form, and validate-only, which creates nothing.
	if resps, err := adm.ValidateCreatePartitions(admCtx(t), 2, "grow"); err != nil || resps.Error() != nil {
		t.Fatalf("validate: %v %v", err, resps.Error())
	}
	if exists(filepath.Join(tb.dir, "grow-3")) {
		t.Fatal("validate_only created a partition")
	}
	if resps, err := adm.CreatePartitions(admCtx(t), 1, "grow"); err != nil || resps.Error() != nil {
		t.Fatalf("add: %v %v", err, resps.Error())
	}
	if !exists(filepath.Join(tb.dir, "grow-3")) {
		t.Fatal("grow-3 missing")
	}
	// The count survives a restart.
	tb.stop()
	tb = startBroker(t, tb.dir, nil)
	if p := tb.b.topics.partition("grow", 3); p == nil {
		t.Fatal("grow-3 lost on restart")
	}
}

func TestCreatePartitionsErrorCodes(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(admClient(t, tb.addr))
	admCreate(t, adm, "two", 2, nil)
	admCreate(t, adm, "other", 1, nil)
	type topicReq struct {
		name    string
		count   int32
		assign  [][]int32
		hasList bool
	}
	cases := []struct {
		name     string
		validate bool
		topics   []topicReq
		want     []int16 // per result, in order
		msgs     []string
	}{
		{"unknown topic", false, []topicReq{{name: "nope", count: 3}}, []int16{errUnknownTopicOrPartition}, []string{""}},
		{"same count", false, []topicReq{{name: "two", count: 2}}, []int16{errInvalidPartitions}, []string{"Topic already has 2 partition(s)."}},
		{"fewer", false, []topicReq{{name: "two", count: 1}}, []int16{errInvalidPartitions}, []string{"The topic two currently has 2 partition(s); 1 would not be an increase."}},
		{"duplicate topic", false, []topicReq{{name: "two", count: 3}, {name: "other", count: 2}, {name: "two", count: 4}},
			[]int16{errInvalidRequest, 0}, []string{"Duplicate topic name.", ""}},
		{"assignment count", false, []topicReq{{name: "two", count: 4, assign: [][]int32{{1}}, hasList: true}},
			[]int16{errInvalidReplicaAssignment}, []string{"Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."}},
		{"empty assignment list", false, []topicReq{{name: "two", count: 3, assign: [][]int32{}, hasList: true}},
			[]int16{errInvalidReplicaAssignment}, []string{"Attempted to add 1 additional partition(s), but only 0 assignment(s) were specified."}},
		{"unknown broker", false, []topicReq{{name: "two", count: 3, assign: [][]int32{{7}}, hasList: true}},
			[]int16{errInvalidReplicaAssignment}, []string{"The manual partition assignment includes broker 7, but no such broker is registered."}},
		{"broker twice", false, []topicReq{{name: "two", count: 3, assign: [][]int32{{1, 1}}, hasList: true}},
			[]int16{errInvalidReplicaAssignment}, []string{"The manual partition assignment includes the broker 1 more than once."}},
		{"no replicas", false, []topicReq{{name: "two", count: 3, assign: [][]int32{{}}, hasList: true}},
			[]int16{errInvalidReplicaAssignment}, []string{"The manual partition assignment includes an empty replica list."}},
		{"too many", false, []topicReq{{name: "two", count: 2 + maxNewPartitionsPerRequest + 1}},
			[]int16{errPolicyViolation}, []string{"Unable to perform excessively large batch operation."}},
		{"validate only with a good assignment", true, []topicReq{{name: "two", count: 3, assign: [][]int32{{1}}, hasList: true}}, []int16{0}, []string{""}},
		{"good assignment", false, []topicReq{{name: "two", count: 3, assign: [][]int32{{1}}, hasList: true}}, []int16{0}, []string{""}},
	}
	for _, c := range cases {
		for _, v := range []int16{0, 3} {
			req := kmsg.NewPtrCreatePartitionsRequest()
			req.Version = v
			req.ValidateOnly = c.validate
			for _, tr := range c.topics {
				rt := kmsg.NewCreatePartitionsRequestTopic()
				rt.Topic, rt.Count = tr.name, tr.count
				if tr.hasList {
					rt.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{}
					for _, rs := range tr.assign {
						a := kmsg.NewCreatePartitionsRequestTopicAssignment()
						a.Replicas = rs
						rt.Assignment = append(rt.Assignment, a)
					}
				}
				req.Topics = append(req.Topics, rt)
			}
			if c.name == "good assignment" && v == 3 {
				continue // done at v0
			}
			resp := admRaw[*kmsg.CreatePartitionsResponse](t, tb.addr, req)
			if len(resp.Topics) != len(c.want) {
				t.Fatalf("%s v%d: %d results, want %d", c.name, v, len(resp.Topics), len(c.want))
			}
			for i, w := range c.want {
				r := resp.Topics[i]
				msg := ""
				if r.ErrorMessage != nil {
					msg = *r.ErrorMessage
				}
				if r.ErrorCode != w || msg != c.msgs[i] {
					t.Fatalf("%s v%d result %d (%s): code %d %q, want %d %q", c.name, v, i, r.Topic, r.ErrorCode, msg, w, c.msgs[i])
				}
			}
			if c.name == "duplicate topic" {
				// "other" grew to 2; put the case back for the next version.
				if v == 0 {
					n := len(tb.b.topics.get("other").partitions)
					if n != 2 {
						t.Fatalf("other has %d partitions", n)
					}
					if _, err := adm.DeleteTopics(admCtx(t), "other"); err != nil {
						t.Fatal(err)
					}
					admCreate(t, adm, "other", 1, nil)
				}
			}
		}
		if c.name == "validate only with a good assignment" && exists(filepath.Join(tb.dir, "two-2")) {
			t.Fatal("validate_only created two-2")
		}
		if c.name == "too many" && exists(filepath.Join(tb.dir, "two-2")) {
			t.Fatal("refused request created two-2")
		}
	}
	if !exists(filepath.Join(tb.dir, "two-2")) {
		t.Fatal("good assignment did not create two-2")
	}
}

func TestDeleteRecordsMovesLogStartOffset(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := admClient(t, tb.addr)
	adm := kadm.NewClient(cl)
	admCreate(t, adm, "trim", 2, nil)
	admCreate(t, adm, "compacted", 1, map[string]*string{"cleanup.policy": strp("compact")})
	prod := admProducer(t, tb.addr)
	var vals [][]byte
	for i := 0; i < 10; i++ {
		vals = append(vals, []byte("v"+strconv.Itoa(i)))
	}
	admProduce(t, prod, "trim", 0, vals...)
	admProduce(t, prod, "trim", 1, vals[:4]...)

	var offs kadm.Offsets
	offs.AddOffset("trim", 0, 6, -1)
	offs.AddOffset("trim", 1, -1, -1) // the high watermark
	resps, err := adm.DeleteRecords(admCtx(t), offs)
	if err != nil {
		t.Fatal(err)
	}
	if r := resps["trim"][0]; r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("p0: %+v", r)
	}
	if r := resps["trim"][1]; r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("p1: %+v", r)
	}
	starts, err := adm.ListStartOffsets(admCtx(t), "trim")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("trim", 0); o.Offset != 6 {
		t.Fatalf("ListOffsets earliest of p0: %d", o.Offset)
	}
	if o, _ := starts.Lookup("trim", 1); o.Offset != 4 {
		t.Fatalf("ListOffsets earliest of p1: %d", o.Offset)
	}
	rs := admConsume(t, tb.addr, "trim", 0, 4)
	if rs[0].Offset != 6 || string(rs[0].Value) != "v6" || rs[3].Offset != 9 {
		t.Fatalf("consumption from the start began at %d %q", rs[0].Offset, rs[0].Value)
	}

	// Raw, at each version: an offset below the start changes nothing; past the high
	// watermark or negative is OFFSET_OUT_OF_RANGE; unknown partitions, compacted and
	// internal topics are refused.
	for _, v := range []int16{0, 2} {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.Version = v
		add := func(topic string, ps ...[2]int64) {
			rt := kmsg.NewDeleteRecordsRequestTopic()
			rt.Topic = topic
			for _, p := range ps {
				rp := kmsg.NewDeleteRecordsRequestTopicPartition()
				rp.Partition, rp.Offset = int32(p[0]), p[1]
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		add("trim", [2]int64{0, 3}, [2]int64{0, 11}, [2]int64{1, -2}, [2]int64{5, 0})
		add("compacted", [2]int64{0, 0})
		add("nope", [2]int64{0, 0})
		resp := admRaw[*kmsg.DeleteRecordsResponse](t, tb.addr, req)
		want := [][][2]int64{ // per topic: {low watermark, code}
			{{6, 0}, {-1, int64(errOffsetOutOfRange)}, {-1, int64(errOffsetOutOfRange)}, {-1, int64(errUnknownTopicOrPartition)}},
			{{-1, int64(errPolicyViolation)}},
			{{-1, int64(errUnknownTopicOrPartition)}},
		}
		for i, rt := range resp.Topics {
			for j, rp := range rt.Partitions {
				if w := want[i][j]; rp.LowWatermark != w[0] || int64(rp.ErrorCode) != w[1] {
					t.Fatalf("v%d %s-%d: low %d code %d, want %v", v, rt.Topic, rp.Partition, rp.LowWatermark, rp.ErrorCode, w)
				}
			}
		}
	}
	// Deleting up to the high watermark empties the partition; new records continue there.
	offs = nil
	offs.AddOffset("trim", 0, 10, -1)
	if resps, err := adm.DeleteRecords(admCtx(t), offs); err != nil || resps["trim"][0].LowWatermark != 10 {
		t.Fatalf("delete to the end: %v %+v", err, resps)
	}
	if off := admProduce(t, prod, "trim", 0, []byte("v10")); off != 10 {
		t.Fatalf("next offset %d", off)
	}
	if rs := admConsume(t, tb.addr, "trim", 0, 1); rs[0].Offset != 10 {
		t.Fatalf("read %d", rs[0].Offset)
	}
	// The log start offset survives a clean restart.
	tb.stop()
	tb = startBroker(t, tb.dir, nil)
	if got := tb.b.topics.partition("trim", 1).log.LogStartOffset(); got != 4 {
		t.Fatalf("log start offset after restart %d", got)
	}
}

func TestDeleteRecordsInternalTopicRefused(t *testing.T) {
	tb := startBroker(t, "", nil)
	if _, code, msg := tb.b.topics.create("__consumer_offsets", 1, nil, false); code != 0 {
		t.Fatalf("create internal topic: %d %s", code, msg)
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.Version = 2
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "__consumer_offsets"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := admRaw[*kmsg.DeleteRecordsResponse](t, tb.addr, req)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != errInvalidTopicException || p.LowWatermark != -1 {
		t.Fatalf("%+v", p)
	}
}

// TestOffsetForLeaderEpochKIP101 checks the end offsets of the only epoch there has been
// (0): the log end offset for epoch 0, undefined above it, the log start offset below it.
func TestOffsetForLeaderEpochKIP101(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := admClient(t, tb.addr)
	adm := kadm.NewClient(cl)
	admCreate(t, adm, "epochs", 1, nil)
	prod := admProducer(t, tb.addr)
	admProduce(t, prod, "epochs", 0, []byte("a"), []byte("b"), []byte("c"), []byte("d"))

	var req kadm.OffsetForLeaderEpochRequest
	req.Add("epochs", 0, 0)
	got, err := adm.OffsetForLeaderEpoch(admCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := got["epochs"][0]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != 4 {
		t.Fatalf("epoch 0: %+v", r)
	}
	var offs kadm.Offsets
	offs.AddOffset("epochs", 0, 2, -1)
	if _, err := adm.DeleteRecords(admCtx(t), offs); err != nil {
		t.Fatal(err)
	}
	type ask struct {
		partition, current, epoch int32
		code                      int16
		wantEpoch                 int32
		wantEnd                   int64
	}
	asks := []ask{
		{0, -1, 0, 0, 0, 4},                            // current epoch: log end offset
		{0, 0, 0, 0, 0, 4},                             // with fencing, same epoch
		{0, -1, 1, 0, -1, -1},                          // a later epoch: undefined
		{0, -1, -1, 0, -1, -1},                         // undefined epoch
		{0, -1, -5, 0, -5, 2},                          // an earlier epoch: the log start offset
		{0, 1, 0, errUnknownLeaderEpoch, -1, -1},       // the asker knows a later leader
		{0, -3, 0, errFencedLeaderEpoch, -1, -1},       // the asker's leader is older
		{1, -1, 0, errUnknownTopicOrPartition, -1, -1}, // no such partition
	}
	for _, v := range []int16{0, 1, 2, 3, 4} {
		for _, replica := range []int32{-1, -2, 1} {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			r.Version, r.ReplicaID = v, replica
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = "epochs"
			for _, a := range asks {
				if v < 2 && a.current != -1 {
					continue // no current_leader_epoch before v2
				}
				rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
				rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = a.partition, a.current, a.epoch
				rt.Partitions = append(rt.Partitions, rp)
			}
			r.Topics = append(r.Topics, rt)
			resp := admRaw[*kmsg.OffsetForLeaderEpochResponse](t, tb.addr, r)
			i := 0
			for _, a := range asks {
				if v < 2 && a.current != -1 {
					continue
				}
				p := resp.Topics[0].Partitions[i]
				i++
				wantEpoch := a.wantEpoch
				if v == 0 {
					wantEpoch = -1 // not in v0
				}
				if p.ErrorCode != a.code || p.EndOffset != a.wantEnd || p.LeaderEpoch != wantEpoch {
					t.Fatalf("v%d replica %d ask %+v: code %d epoch %d end %d", v, replica, a, p.ErrorCode, p.LeaderEpoch, p.EndOffset)
				}
			}
		}
	}
}

func TestDescribeTopicConfigsEveryConfigWithSource(t *testing.T) {
	tb := startBroker(t, "", func(c *Config) { c.Log.SegmentBytes = 1 << 20 })
	adm := kadm.NewClient(admClient(t, tb.addr))
	admCreate(t, adm, "described", 1, map[string]*string{"retention.ms": strp("3600000"), "cleanup.policy": strp("compact,delete")})
	rcs, err := adm.DescribeTopicConfigs(admCtx(t), "described")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("described", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("%v %v", err, rc.Err)
	}
	if len(rc.Configs) != len(topicConfigDefs) {
		t.Fatalf("%d configs, want every one of %d", len(rc.Configs), len(topicConfigDefs))
	}
	byName := map[string]kadm.Config{}
	for i, c := range rc.Configs {
		if c.Key != topicConfigDefs[i].name {
			t.Fatalf("config %d is %s, want %s", i, c.Key, topicConfigDefs[i].name)
		}
		byName[c.Key] = c
	}
	type syn struct {
		key, value string
		source     kmsg.ConfigSource
	}
	check := func(name, value string, source kmsg.ConfigSource, syns ...syn) {
		t.Helper()
		c := byName[name]
		if c.MaybeValue() != value || c.Source != source || c.Sensitive {
			t.Fatalf("%s = %q source %v, want %q %v", name, c.MaybeValue(), c.Source, value, source)
		}
		if len(c.Synonyms) != len(syns) {
			t.Fatalf("%s synonyms %+v, want %+v", name, c.Synonyms, syns)
		}
		for i, s := range syns {
			g := c.Synonyms[i]
			if g.Key != s.key || g.Value == nil || *g.Value != s.value || g.Source != s.source {
				t.Fatalf("%s synonym %d: %s=%v %v, want %+v", name, i, g.Key, g.Value, g.Source, s)
			}
		}
	}
	check("retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig,
		syn{"retention.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig}, syn{"log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig})
	check("cleanup.policy", "compact,delete", kmsg.ConfigSourceDynamicTopicConfig,
		syn{"cleanup.policy", "compact,delete", kmsg.ConfigSourceDynamicTopicConfig}, syn{"log.cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig})
	check("segment.bytes", "1048576", kmsg.ConfigSourceStaticBrokerConfig,
		syn{"log.segment.bytes", "1048576", kmsg.ConfigSourceStaticBrokerConfig}, syn{"log.segment.bytes", "1073741824", kmsg.ConfigSourceDefaultConfig})
	check("max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig, syn{"message.max.bytes", "1048588", kmsg.ConfigSourceDefaultConfig})
	check("follower.replication.throttled.replicas", "", kmsg.ConfigSourceDefaultConfig)

	// Raw: v0 has is_default and no source; v3 types; names filter; synonyms only on request.
	for _, v := range []int16{0, 1, 3, 4} {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Version = v
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "described"
		r.ConfigNames = []string{"retention.ms", "min.insync.replicas", "no.such.config"}
		req.Resources = append(req.Resources, r)
		resp := admRaw[*kmsg.DescribeConfigsResponse](t, tb.addr, req)
		cs := resp.Resources[0].Configs
		if resp.Resources[0].ErrorCode != 0 || len(cs) != 2 || cs[0].Name != "min.insync.replicas" || cs[1].Name != "retention.ms" {
			t.Fatalf("v%d: %+v", v, resp.Resources[0])
		}
		if v == 0 && (!cs[0].IsDefault || cs[1].IsDefault) {
			t.Fatalf("v0 is_default: %v %v", cs[0].IsDefault, cs[1].IsDefault)
		}
		if v >= 1 && (cs[0].Source != kmsg.ConfigSourceDefaultConfig || cs[1].Source != kmsg.ConfigSourceDynamicTopicConfig) {
			t.Fatalf("v%d sources %v %v", v, cs[0].Source, cs[1].Source)
		}
		if v >= 3 && (cs[0].ConfigType != kmsg.ConfigTypeInt || cs[1].ConfigType != kmsg.ConfigTypeLong || cs[1].Documentation != nil) {
			t.Fatalf("v%d types %v %v", v, cs[0].ConfigType, cs[1].ConfigType)
		}
		if len(cs[1].ConfigSynonyms) != 0 || cs[1].ReadOnly || cs[1].IsSensitive {
			t.Fatalf("v%d: synonyms without asking, or read-only: %+v", v, cs[1])
		}
	}
	// Unknown and illegal topics.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	for _, name := range []string{"nope", "bad/name", ""} {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, name
		req.Resources = append(req.Resources, r)
	}
	resp := admRaw[*kmsg.DescribeConfigsResponse](t, tb.addr, req)
	want := []struct {
		code int16
		msg  string
	}{
		{errUnknownTopicOrPartition, ""},
		{errInvalidTopicException, `Topic name "bad/name" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`},
		{errInvalidTopicException, "Topic name is illegal, it can't be empty"},
	}
	for i, w := range want {
		r := resp.Resources[i]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		if r.ErrorCode != w.code || msg != w.msg || len(r.Configs) != 0 {
			t.Fatalf("resource %q: %d %q, want %d %q", r.ResourceName, r.ErrorCode, msg, w.code, w.msg)
		}
	}
}

func TestDescribeBrokerConfigs(t *testing.T) {
	tb := startBroker(t, "", func(c *Config) { c.NumPartitions = 3; c.Rack = "rack-a" })
	adm := kadm.NewClient(admClient(t, tb.addr))
	rcs, err := adm.DescribeBrokerConfigs(admCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("1", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("%v %v", err, rc.Err)
	}
	abs, _ := filepath.Abs(tb.dir)
	want := map[string]struct {
		value  string
		source kmsg.ConfigSource
	}{
		"num.partitions":             {"3", kmsg.ConfigSourceStaticBrokerConfig},
		"auto.create.topics.enable":  {"true", kmsg.ConfigSourceDefaultConfig},
		"default.replication.factor": {"1", kmsg.ConfigSourceDefaultConfig},
		"log.retention.ms":           {"604800000", kmsg.ConfigSourceDefaultConfig},
		"log.segment.bytes":          {"1073741824", kmsg.ConfigSourceDefaultConfig},
		"message.max.bytes":          {"1048588", kmsg.ConfigSourceDefaultConfig},
		"min.insync.replicas":        {"1", kmsg.ConfigSourceDefaultConfig},
		"node.id":                    {"1", kmsg.ConfigSourceStaticBrokerConfig},
		"broker.id":                  {"1", kmsg.ConfigSourceStaticBrokerConfig},
		"broker.rack":                {"rack-a", kmsg.ConfigSourceStaticBrokerConfig},
		"log.dirs":                   {abs, kmsg.ConfigSourceStaticBrokerConfig},
		"advertised.listeners":       {"PLAINTEXT://" + tb.addr, kmsg.ConfigSourceStaticBrokerConfig},
	}
	seen := 0
	for _, c := range rc.Configs {
		if w, ok := want[c.Key]; ok {
			seen++
			if c.MaybeValue() != w.value || c.Source != w.source {
				t.Fatalf("%s = %q %v, want %q %v", c.Key, c.MaybeValue(), c.Source, w.value, w.source)
			}
		}
	}
	if seen != len(want) {
		t.Fatalf("found %d of %d expected broker configs in %d", seen, len(want), len(rc.Configs))
	}
	// "" (cluster defaults) is empty; BROKER_LOGGER of this node is empty; the rest refused.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	for _, r := range []struct {
		typ  kmsg.ConfigResourceType
		name string
	}{
		{kmsg.ConfigResourceTypeBroker, ""},
		{kmsg.ConfigResourceTypeBroker, "2"},
		{kmsg.ConfigResourceTypeBroker, "one"},
		{kmsg.ConfigResourceTypeBrokerLogger, "1"},
		{kmsg.ConfigResourceTypeBrokerLogger, ""},
		{kmsg.ConfigResourceTypeBrokerLogger, "2"},
		{kmsg.ConfigResourceTypeClientMetrics, "x"},
	} {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = r.typ, r.name
		req.Resources = append(req.Resources, rr)
	}
	resp := admRaw[*kmsg.DescribeConfigsResponse](t, tb.addr, req)
	wantRes := []struct {
		code int16
		msg  string
	}{
		{0, ""},
		{errInvalidRequest, "Unexpected broker id, expected 1 or empty string, but received 2"},
		{errInvalidRequest, "Broker id must be an integer, but it is: one"},
		{0, ""},
		{errInvalidRequest, "Broker id must not be empty"},
		{errInvalidRequest, "Unexpected broker id, expected 1 but received 2"},
		{errInvalidRequest, "Unsupported resource type: CLIENT_METRICS"},
	}
	for i, w := range wantRes {
		r := resp.Resources[i]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		if r.ErrorCode != w.code || msg != w.msg || len(r.Configs) != 0 {
			t.Fatalf("resource %d (%v %q): %d %q %d configs, want %d %q", i, r.ResourceType, r.ResourceName, r.ErrorCode, msg, len(r.Configs), w.code, w.msg)
		}
	}
	// An unknown resource type fails the whole request.
	req.Resources[0].ResourceType = 3
	resp = admRaw[*kmsg.DescribeConfigsResponse](t, tb.addr, req)
	for _, r := range resp.Resources {
		if r.ErrorCode != errInvalidRequest || len(r.Configs) != 0 {
			t.Fatalf("unknown type: resource %q answered %d", r.ResourceName, r.ErrorCode)
		}
	}
}

func TestAlterConfigsReplacesOverridesAndTakesEffect(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := admClient(t, tb.addr)
	adm := kadm.NewClient(cl)
	admCreate(t, adm, "altered", 1, map[string]*string{"cleanup.policy": strp("delete")})
	prod := admProducer(t, tb.addr)

	set := func(configs ...kadm.AlterConfig) {
		t.Helper()
		resps, err := adm.AlterTopicConfigsState(admCtx(t), configs, "altered")
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := resps.On("altered", nil); r.Err != nil {
			t.Fatalf("alter: %v %s", r.Err, r.ErrMessage)
		}
	}
	// max.message.bytes is enforced at once.
	set(kadm.AlterConfig{Name: "max.message.bytes", Value: strp("1000")})
	big := bytes.Repeat([]byte("x"), 2000)
	if err := prod.ProduceSync(admCtx(t), &kgo.Record{Topic: "altered", Value: big}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("large record after max.message.bytes=1000: %v", err)
	}
	admProduce(t, prod, "altered", 0, []byte("small"))

	// Replacing the set drops max.message.bytes (back to the default) and cleanup.policy.
	set(kadm.AlterConfig{Name: "retention.bytes", Value: strp("1500")}, kadm.AlterConfig{Name: "segment.bytes", Value: strp("1024")},
		kadm.AlterConfig{Name: "retention.ms", Value: strp("86400000")})
	if got := tb.b.topics.partition("altered", 0).log.Config().MaxMessageBytes; got != 1048588 {
		t.Fatalf("log max.message.bytes %d after the override was dropped", got)
	}
	// A batch larger than segment.bytes is refused, as Kafka refuses it.
	if err := prod.ProduceSync(admCtx(t), &kgo.Record{Topic: "altered", Value: big}).FirstErr(); !errors.Is(err, kerr.RecordListTooLarge) {
		t.Fatalf("record above segment.bytes=1024: %v", err)
	}
	rcs, err := adm.DescribeTopicConfigs(admCtx(t), "altered")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("altered", nil)
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	for name, want := range map[string]struct {
		value  string
		source kmsg.ConfigSource
	}{
		"retention.bytes":   {"1500", kmsg.ConfigSourceDynamicTopicConfig},
		"segment.bytes":     {"1024", kmsg.ConfigSourceDynamicTopicConfig},
		"retention.ms":      {"86400000", kmsg.ConfigSourceDynamicTopicConfig},
		"max.message.bytes": {"1048588", kmsg.ConfigSourceDefaultConfig},
		"cleanup.policy":    {"delete", kmsg.ConfigSourceDefaultConfig},
	} {
		if c := got[name]; c.MaybeValue() != want.value || c.Source != want.source {
			t.Fatalf("%s = %q %v, want %q %v", name, c.MaybeValue(), c.Source, want.value, want.source)
		}
	}
	// The log follows: small segments roll, and retention by size deletes the old ones.
	for i := 0; i < 4; i++ {
		admProduce(t, prod, "altered", 0, bytes.Repeat([]byte("y"), 600))
	}
	p := tb.b.topics.partition("altered", 0)
	if n := p.log.NumSegments(); n < 4 {
		t.Fatalf("%d segments with segment.bytes=1024", n)
	}
	if _, err := tb.b.store.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	// Offsets 0 ("small") and 1 go: what is left (three ~670-byte segments) is the least that
	// keeps the log within one segment of retention.bytes.
	if start := p.log.LogStartOffset(); start != 2 || p.log.NumSegments() != 3 {
		t.Fatalf("after retention: start %d size %d", start, p.log.Size())
	}

	// Errors, at each version: unknown config, bad value, unknown topic, null value,
	// duplicate keys, duplicate resources, bad names, broker configs.
	for _, v := range []int16{0, 2} {
		req := kmsg.NewPtrAlterConfigsRequest()
		req.Version = v
		add := func(typ kmsg.ConfigResourceType, name string, kvs ...*string) {
			r := kmsg.NewAlterConfigsRequestResource()
			r.ResourceType, r.ResourceName = typ, name
			for i := 0; i < len(kvs); i += 2 {
				c := kmsg.NewAlterConfigsRequestResourceConfig()
				c.Name, c.Value = *kvs[i], kvs[i+1]
				r.Configs = append(r.Configs, c)
			}
			req.Resources = append(req.Resources, r)
		}
		topic := kmsg.ConfigResourceTypeTopic
		add(topic, "altered", strp("retention.ms"), strp("1000"), strp("no.such.config"), strp("1"))
		add(topic, "altered", strp("retention.ms"), strp("1000")) // duplicate resource
		add(topic, "nope", strp("retention.ms"), strp("soon"))
		add(topic, "nope2", strp("retention.ms"), strp("1000"))
		add(topic, "nope3", strp("retention.ms"), nil)
		add(topic, "nope4", strp("retention.ms"), strp("1"), strp("retention.ms"), strp("2"))
		add(topic, "")
		add(topic, "bad name")
		add(kmsg.ConfigResourceTypeBroker, "1", strp("log.retention.ms"), strp("1000"), strp("num.partitions"), strp("2"))
		add(kmsg.ConfigResourceTypeBroker, "")
		add(kmsg.ConfigResourceTypeBroker, "5")
		add(kmsg.ConfigResourceTypeBrokerLogger, "1")
		resp := admRaw[*kmsg.AlterConfigsResponse](t, tb.addr, req)
		want := []struct {
			code int16
			msg  string
		}{
			{errInvalidRequest, "Each resource must appear at most once."},
			{errInvalidRequest, "Each resource must appear at most once."},
			{errInvalidConfig, "Invalid value soon for configuration retention.ms"},
			{errUnknownTopicOrPartition, "The topic 'nope2' does not exist."},
			{errInvalidRequest, "Null value not supported for : retention.ms"},
			{errInvalidRequest, "Error due to duplicate config keys"},
			{errInvalidRequest, "Default topic resources are not allowed."},
			{errInvalidTopicException, `Topic name "bad name" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`},
			{errInvalidRequest, "Cannot update these configs dynamically: Set(log.retention.ms, num.partitions)"},
			{0, ""},
			{errInvalidRequest, "Unexpected broker id, expected 1, but received 5"},
			{errInvalidRequest, "Unknown resource type 8"},
		}
		if len(resp.Resources) != len(want) {
			t.Fatalf("v%d: %d results", v, len(resp.Resources))
		}
		for i, w := range want {
			r := resp.Resources[i]
			msg := ""
			if r.ErrorMessage != nil {
				msg = *r.ErrorMessage
			}
			if r.ErrorCode != w.code || msg != w.msg {
				t.Fatalf("v%d resource %d %q: %d %q, want %d %q", v, i, r.ResourceName, r.ErrorCode, msg, w.code, w.msg)
			}
		}
	}
	// An unknown config name alone; validate_only changes nothing.
	resps, err := adm.ValidateAlterTopicConfigsState(admCtx(t), []kadm.AlterConfig{{Name: "no.such.config", Value: strp("1")}}, "altered")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.On("altered", nil); !errors.Is(r.Err, kerr.InvalidConfig) || r.ErrMessage != "Unknown topic config name: no.such.config" {
		t.Fatalf("unknown config: %v %q", r.Err, r.ErrMessage)
	}
	resps, err = adm.ValidateAlterTopicConfigsState(admCtx(t), []kadm.AlterConfig{{Name: "retention.ms", Value: strp("5")}}, "altered")
	if err != nil || resps[0].Err != nil {
		t.Fatalf("validate only: %v %+v", err, resps)
	}
	if cfg, _ := tb.b.topics.configsOf("altered"); cfg["retention.ms"] != "86400000" || len(cfg) != 3 {
		t.Fatalf("validate_only changed the configs: %v", cfg)
	}
	// The overrides persist across a restart, and the logs open with them.
	tb.stop()
	tb = startBroker(t, tb.dir, nil)
	if cfg, _ := tb.b.topics.configsOf("altered"); cfg["segment.bytes"] != "1024" || len(cfg) != 3 {
		t.Fatalf("after restart: %v", cfg)
	}
	if got := tb.b.topics.partition("altered", 0).log.Config().RetentionBytes; got != 1500 {
		t.Fatalf("log retention.bytes after restart %d", got)
	}
}

func TestIncrementalAlterConfigsKIP339(t *testing.T) {
	tb := startBroker(t, "", nil)
	adm := kadm.NewClient(admClient(t, tb.addr))
	admCreate(t, adm, "incr", 1, map[string]*string{"retention.ms": strp("3600000")})
	alter := func(configs ...kadm.AlterConfig) (string, error) {
		t.Helper()
		resps, err := adm.AlterTopicConfigs(admCtx(t), configs, "incr")
		if err != nil {
			t.Fatal(err)
		}
		r, _ := resps.On("incr", nil)
		return r.ErrMessage, r.Err
	}
	overrides := func() map[string]string {
		cfg, _ := tb.b.topics.configsOf("incr")
		return cfg
	}
	// SET keeps the other overrides (unlike AlterConfigs); DELETE returns a config to its
	// default.
	if msg, err := alter(kadm.AlterConfig{Op: kadm.SetConfig, Name: "max.message.bytes", Value: strp("2048")}); err != nil {
		t.Fatal(err, msg)
	}
	if cfg := overrides(); cfg["retention.ms"] != "3600000" || cfg["max.message.bytes"] != "2048" || len(cfg) != 2 {
		t.Fatalf("after SET: %v", cfg)
	}
	if got := tb.b.topics.partition("incr", 0).log.Config().MaxMessageBytes; got != 2048 {
		t.Fatalf("log max.message.bytes %d", got)
	}
	if msg, err := alter(kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "max.message.bytes"}, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "no.such.config"}); err != nil {
		t.Fatal(err, msg)
	}
	if cfg := overrides(); len(cfg) != 1 || cfg["retention.ms"] != "3600000" {
		t.Fatalf("after DELETE: %v", cfg)
	}
	if got := tb.b.topics.partition("incr", 0).log.Config().MaxMessageBytes; got != 1048588 {
		t.Fatalf("log max.message.bytes after DELETE %d", got)
	}
	rcs, _ := adm.DescribeTopicConfigs(admCtx(t), "incr")
	rc, _ := rcs.On("incr", nil)
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && (c.MaybeValue() != "1048588" || c.Source != kmsg.ConfigSourceDefaultConfig) {
			t.Fatalf("max.message.bytes after DELETE: %q %v", c.MaybeValue(), c.Source)
		}
	}
	// APPEND starts from the default list; SUBTRACT removes.
	if msg, err := alter(kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: strp("compact")}); err != nil {
		t.Fatal(err, msg)
	}
	if got := overrides()["cleanup.policy"]; got != "delete,compact" {
		t.Fatalf("after APPEND: %q", got)
	}
	if msg, err := alter(kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: strp("compact")}); err != nil || overrides()["cleanup.policy"] != "delete,compact" {
		t.Fatalf("APPEND of a present value: %v %s %q", err, msg, overrides()["cleanup.policy"])
	}
	if msg, err := alter(kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: strp("delete")}); err != nil {
		t.Fatal(err, msg)
	}
	if got := overrides()["cleanup.policy"]; got != "compact" {
		t.Fatalf("after SUBTRACT: %q", got)
	}
	// Refusals, which change nothing.
	for _, c := range []struct {
		op  kadm.AlterConfig
		err error
		msg string
	}{
		{kadm.AlterConfig{Op: kadm.AppendConfig, Name: "retention.ms", Value: strp("1")}, kerr.InvalidConfig, "Can't APPEND to key retention.ms because its type is not LIST."},
		{kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "no.such", Value: strp("1")}, kerr.InvalidConfig, "Can't SUBTRACT to key no.such because its type is not LIST."},
		{kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: strp("compact")}, kerr.InvalidConfig, "Invalid value  for configuration cleanup.policy"},
		{kadm.AlterConfig{Op: kadm.SetConfig, Name: "cleanup.policy", Value: strp("forever")}, kerr.InvalidConfig, "Invalid value forever for configuration cleanup.policy"},
		{kadm.AlterConfig{Op: kadm.SetConfig, Name: "no.such", Value: strp("1")}, kerr.InvalidConfig, "Unknown topic config name: no.such"},
		{kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms"}, kerr.InvalidRequest, "Null value not supported for : retention.ms"},
	} {
		msg, err := alter(c.op)
		if !errors.Is(err, c.err) || msg != c.msg {
			t.Fatalf("%+v: %v %q, want %v %q", c.op, err, msg, c.err, c.msg)
		}
	}
	if cfg := overrides(); len(cfg) != 2 || cfg["cleanup.policy"] != "compact" {
		t.Fatalf("refusals changed the configs: %v", cfg)
	}
	// validate_only.
	resps, err := adm.ValidateAlterTopicConfigs(admCtx(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("5")}}, "incr")
	if err != nil || resps[0].Err != nil || overrides()["retention.ms"] != "3600000" {
		t.Fatalf("validate only: %v %+v %v", err, resps, overrides())
	}
	// Raw, v0 and v1: unknown topic, brokers and broker loggers.
	for _, v := range []int16{0, 1} {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Version = v
		add := func(typ kmsg.ConfigResourceType, name string, op kmsg.IncrementalAlterConfigOp, key string, value *string) {
			r := kmsg.NewIncrementalAlterConfigsRequestResource()
			r.ResourceType, r.ResourceName = typ, name
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name, c.Op, c.Value = key, op, value
			r.Configs = append(r.Configs, c)
			req.Resources = append(req.Resources, r)
		}
		add(kmsg.ConfigResourceTypeTopic, "nope", kmsg.IncrementalAlterConfigOpSet, "retention.ms", strp("1"))
		add(kmsg.ConfigResourceTypeBroker, "1", kmsg.IncrementalAlterConfigOpDelete, "log.retention.ms", nil)
		add(kmsg.ConfigResourceTypeBroker, "", kmsg.IncrementalAlterConfigOpSet, "log.retention.ms", strp("1"))
		add(kmsg.ConfigResourceTypeBrokerLogger, "1", kmsg.IncrementalAlterConfigOpSet, "kafka.server", strp("DEBUG"))
		add(kmsg.ConfigResourceTypeBrokerLogger, "1", kmsg.IncrementalAlterConfigOpAppend, "x", strp("DEBUG"))
		add(kmsg.ConfigResourceTypeBrokerLogger, "", kmsg.IncrementalAlterConfigOpDelete, "x", nil)
		add(kmsg.ConfigResourceTypeGroupConfig, "g", kmsg.IncrementalAlterConfigOpDelete, "x", nil)
		resp := admRaw[*kmsg.IncrementalAlterConfigsResponse](t, tb.addr, req)
		want := []struct {
			code int16
			msg  string
		}{
			{errUnknownTopicOrPartition, "The topic 'nope' does not exist."},
			{0, ""},
			{errInvalidRequest, "Cannot update these configs dynamically: Set(log.retention.ms)"},
			{errInvalidRequest, "Each resource must appear at most once."},
			{errInvalidRequest, "Each resource must appear at most once."},
			{errInvalidRequest, "Node id must be an integer, but it is: "},
			{errInvalidRequest, "Unknown resource type 32"},
		}
		for i, w := range want {
			r := resp.Resources[i]
			msg := ""
			if r.ErrorMessage != nil {
				msg = *r.ErrorMessage
			}
			if r.ErrorCode != w.code || msg != w.msg {
				t.Fatalf("v%d resource %d: %d %q, want %d %q", v, i, r.ErrorCode, msg, w.code, w.msg)
			}
		}
		req.Resources = req.Resources[3:4]
		resp = admRaw[*kmsg.IncrementalAlterConfigsResponse](t, tb.addr, req)
		if r := resp.Resources[0]; r.ErrorCode != errInvalidConfig || *r.ErrorMessage != "Logger kafka.server does not exist!" {
			t.Fatalf("v%d logger: %d %v", v, r.ErrorCode, r.ErrorMessage)
		}
		req.Resources = nil
		add(kmsg.ConfigResourceTypeTopic, "incr", 9, "retention.ms", strp("1"))
		resp = admRaw[*kmsg.IncrementalAlterConfigsResponse](t, tb.addr, req)
		if r := resp.Resources[0]; r.ErrorCode != errInvalidRequest || *r.ErrorMessage != "Unknown operations type 9" {
			t.Fatalf("v%d unknown operation: %d %v", v, r.ErrorCode, r.ErrorMessage)
		}
	}
}

func TestDescribeClusterKIP700(t *testing.T) {
	tb := startBroker(t, "", func(c *Config) { c.Rack = "rack-a" })
	host, portStr, _ := net.SplitHostPort(tb.addr)
	port, _ := strconv.Atoi(portStr)
	for _, v := range []int16{0, 1} {
		for _, ops := range []bool{false, true} {
			req := kmsg.NewPtrDescribeClusterRequest()
			req.Version = v
			req.IncludeClusterAuthorizedOperations = ops
			resp := admRaw[*kmsg.DescribeClusterResponse](t, tb.addr, req)
			if resp.ErrorCode != 0 || resp.ClusterID != tb.b.ClusterID() || resp.ControllerID != 1 || len(resp.Brokers) != 1 {
				t.Fatalf("v%d: %+v", v, resp)
			}
			br := resp.Brokers[0]
			if br.NodeID != 1 || br.Host != host || br.Port != int32(port) || br.Rack == nil || *br.Rack != "rack-a" {
				t.Fatalf("v%d broker %+v", v, br)
			}
			wantOps := int32(-2147483648)
			if ops {
				wantOps = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12 // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
			}
			if resp.ClusterAuthorizedOperations != wantOps {
				t.Fatalf("v%d authorized operations %d, want %d", v, resp.ClusterAuthorizedOperations, wantOps)
			}
			if v == 1 && resp.EndpointType != 1 {
				t.Fatalf("endpoint type %d", resp.EndpointType)
			}
		}
	}
	for _, c := range []struct {
		typ  int8
		code int16
		msg  string
	}{
		{2, errMismatchedEndpointType, "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"},
		{0, errUnsupportedEndpointType, "Unsupported endpoint type 0"},
		{9, errUnsupportedEndpointType, "Unsupported endpoint type 9"},
	} {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.Version, req.EndpointType = 1, c.typ
		resp := admRaw[*kmsg.DescribeClusterResponse](t, tb.addr, req)
		if resp.ErrorCode != c.code || resp.ErrorMessage == nil || *resp.ErrorMessage != c.msg || len(resp.Brokers) != 0 {
			t.Fatalf("endpoint type %d: %d %v", c.typ, resp.ErrorCode, resp.ErrorMessage)
		}
	}
	// Through a client: kgo negotiates the version.
	cl := admClient(t, tb.addr)
	resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(admCtx(t), cl)
	if err != nil || resp.ErrorCode != 0 || resp.ClusterID != tb.b.ClusterID() {
		t.Fatalf("%v %+v", err, resp)
	}
}

func TestDescribeLogDirsSizes(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := admClient(t, tb.addr)
	adm := kadm.NewClient(cl)
	admCreate(t, adm, "sized", 2, nil)
	admCreate(t, adm, "empty", 1, nil)
	prod := admProducer(t, tb.addr)
	admProduce(t, prod, "sized", 1, bytes.Repeat([]byte("z"), 1000), []byte("more"))
	abs, _ := filepath.Abs(tb.dir)

	all, err := adm.DescribeAllLogDirs(admCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	dirs := all[1]
	d, ok := dirs[abs]
	if len(dirs) != 1 || !ok || d.Err != nil {
		t.Fatalf("dirs %+v, want %s", dirs, abs)
	}
	if d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
		t.Fatalf("total %d usable %d", d.TotalBytes, d.UsableBytes)
	}
	size := func(topic string, p int32) int64 { return tb.b.topics.partition(topic, p).log.Size() }
	want := map[string]map[int32]int64{
		"sized": {0: size("sized", 0), 1: size("sized", 1)},
		"empty": {0: size("empty", 0)},
	}
	if want["sized"][1] < 1000 {
		t.Fatalf("log size %d", want["sized"][1])
	}
	for topic, ps := range want {
		for p, size := range ps {
			got, ok := d.Topics.Lookup(topic, p)
			if !ok || got.Size != size || got.OffsetLag != 0 || got.IsFuture {
				t.Fatalf("%s-%d: %+v, want size %d", topic, p, got, size)
			}
		}
	}
	// Only what was asked; unknown partitions are left out. v0 has no sizes of the volume.
	for _, v := range []int16{0, 4} {
		req := kmsg.NewPtrDescribeLogDirsRequest()
		req.Version = v
		rt := kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic, rt.Partitions = "sized", []int32{1, 7}
		req.Topics = append(req.Topics, rt)
		rt = kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic, rt.Partitions = "nope", []int32{0}
		req.Topics = append(req.Topics, rt)
		resp := admRaw[*kmsg.DescribeLogDirsResponse](t, tb.addr, req)
		if len(resp.Dirs) != 1 || resp.Dirs[0].Dir != abs || len(resp.Dirs[0].Topics) != 1 {
			t.Fatalf("v%d: %+v", v, resp.Dirs)
		}
		top := resp.Dirs[0].Topics[0]
		if top.Topic != "sized" || len(top.Partitions) != 1 || top.Partitions[0].Partition != 1 || top.Partitions[0].Size != want["sized"][1] {
			t.Fatalf("v%d: %+v", v, top)
		}
		if (resp.Dirs[0].TotalBytes > 0) != (v >= 4) {
			t.Fatalf("v%d total bytes %d", v, resp.Dirs[0].TotalBytes)
		}
	}
}
