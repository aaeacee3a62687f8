package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spate-broker/spate/coordinator"
	"github.com/spate-broker/spate/logstore"
)

// offsetsRecord is a record of __consumer_offsets, its key decoded.
type offsetsRecord struct {
	offset int64
	key    string // "offset <group>/<topic>/<partition>" or "group <group>"
	value  []byte // nil: a tombstone
}

func (r offsetsRecord) String() string {
	if r.value == nil {
		return fmt.Sprintf("%d:%s=<tombstone>", r.offset, r.key)
	}
	if strings.HasPrefix(r.key, "offset ") {
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(r.value); err == nil {
			return fmt.Sprintf("%d:%s=%d/%q", r.offset, r.key, v.Offset, v.Metadata)
		}
	}
	return fmt.Sprintf("%d:%s=<%d bytes>", r.offset, r.key, len(r.value))
}

// decodeOffsetsKey names a key of __consumer_offsets: versions 0 and 1 are offset commits,
// 2 group metadata.
func decodeOffsetsKey(t *testing.T, key []byte) string {
	t.Helper()
	if len(key) < 2 {
		t.Fatalf("offsets key of %d bytes", len(key))
	}
	switch v := binary.BigEndian.Uint16(key); v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			t.Fatalf("offset commit key: %v", err)
		}
		return fmt.Sprintf("offset %s/%s/%d", k.Group, k.Topic, k.Partition)
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			t.Fatalf("group metadata key: %v", err)
		}
		return "group " + k.Group
	default:
		t.Fatalf("offsets key version %d", v)
		return ""
	}
}

// readOffsetsPartition reads partition 0 of __consumer_offsets from its start through offset
// last, with a fresh client.
func readOffsetsPartition(t *testing.T, addr string, last int64) []offsetsRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		coordinator.OffsetsTopic: {0: kgo.NewOffset().AtStart()}}))
	defer cl.Close()
	var out []offsetsRecord
	prev := int64(-1)
	for prev < last {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("read %s: %v (through offset %d of %d)", coordinator.OffsetsTopic, err, prev, last)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset <= prev {
				t.Fatalf("offset %d after %d", r.Offset, prev)
			}
			prev = r.Offset
			out = append(out, offsetsRecord{offset: r.Offset, key: decodeOffsetsKey(t, r.Key), value: r.Value})
		})
	}
	return out
}

// TestOffsetsTopicCompactionKeepsLatestCommits: __consumer_offsets is created compacted, with
// offsets.topic.segment.bytes segments (here one partition of 2 KiB segments). Group "kept"
// commits four partitions 150 times (offset i+1, metadata "m<i>"), group "gone" 30 times and
// is then deleted (DeleteGroups writes tombstones). Read back before compaction, the partition
// holds every record written (one per commit and partition, and the tombstones), over many
// segments. A compaction pass (the log rolled, forced) leaves exactly the last record of each
// key at the offset it was written at — the latest commit of each of "kept"'s partitions and
// "gone"'s tombstones (delete.retention.ms is a day) — and the log's size and segments shrink
// by as much. After a restart the log reads back the same, OffsetFetch answers "kept"'s latest
// commits exactly (offset 150, metadata "m149"), "gone" stays deleted, and a new commit is
// served on top of the loaded ones.
func TestOffsetsTopicCompactionKeepsLatestCommits(t *testing.T) {
	mod := func(c *Config) {
		c.Groups.InitialRebalanceDelay = 100 * time.Millisecond
		c.Groups.MinSessionTimeout = 100 * time.Millisecond
		c.Groups.OffsetsTopicPartitions = 1
		c.Groups.OffsetsTopicSegmentBytes = 2048
	}
	tb := startBroker(t, "", mod)
	const topic, parts = "t", int32(4)
	adm := grpCreateTopic(t, tb.addr, topic, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	commitAll := func(group string, i int) {
		t.Helper()
		offs := kadm.Offsets{}
		for p := int32(0); p < parts; p++ {
			offs.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(i + 1), LeaderEpoch: -1, Metadata: fmt.Sprintf("m%d", i)})
		}
		resp, err := adm.CommitOffsets(ctx, group, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %d of %s: %v", i, group, err)
		}
	}
	for i := 0; i < 30; i++ {
		commitAll("gone", i)
	}
	for i := 0; i < 150; i++ {
		commitAll("kept", i)
	}
	if resp, err := adm.DeleteGroup(ctx, "gone"); err != nil || resp.Err != nil {
		t.Fatalf("delete group gone: %v %v", err, resp.Err)
	}

	l := tb.b.store.Log(logstore.TopicPartition{Topic: coordinator.OffsetsTopic, Partition: 0})
	if l == nil {
		t.Fatalf("no log of %s-0", coordinator.OffsetsTopic)
	}
	if c := l.Config(); !c.Compacted || c.SegmentBytes != 2048 {
		t.Fatalf("%s log config %+v: want compacted with 2048-byte segments", coordinator.OffsetsTopic, c)
	}
	end := l.LogEndOffset()
	before := readOffsetsPartition(t, tb.addr, end-1)
	latest := map[string]offsetsRecord{}
	for _, r := range before {
		latest[r.key] = r
	}
	if int64(len(before)) != end || len(before) < 180*int(parts) {
		t.Fatalf("before compaction: %d records read, log end %d; want every one of the %d commit records and the tombstones", len(before), end, 180*parts)
	}
	var wantKeys []string
	for p := int32(0); p < parts; p++ {
		wantKeys = append(wantKeys, fmt.Sprintf("offset gone/%s/%d", topic, p), fmt.Sprintf("offset kept/%s/%d", topic, p))
	}
	for k := range latest {
		if strings.HasPrefix(k, "group ") {
			wantKeys = append(wantKeys, k) // a group's metadata, if the coordinator wrote one
		}
	}
	sort.Strings(wantKeys)
	for _, k := range wantKeys {
		r, ok := latest[k]
		switch {
		case !ok:
			t.Fatalf("no record of %s before compaction", k)
		case strings.HasPrefix(k, "offset gone/") || k == "group gone":
			if r.value != nil {
				t.Fatalf("last record of %s is %v, want the tombstone DeleteGroups wrote", k, r)
			}
		case strings.HasPrefix(k, "group "):
			t.Fatalf("metadata record %v of a group that only committed offsets", r)
		}
	}
	if len(latest) != len(wantKeys) {
		t.Fatalf("keys before compaction: %d, want %v", len(latest), wantKeys)
	}
	sizeBefore, segmentsBefore := l.Size(), l.NumSegments()
	if segmentsBefore < 10 {
		t.Fatalf("%d segments of 2 KiB for %d bytes", segmentsBefore, sizeBefore)
	}

	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	st, err := l.Compact(ctx, true)
	if err != nil || !st.Ran || !st.Complete {
		t.Fatalf("compact: %+v %v", st, err)
	}
	var want []offsetsRecord
	for _, k := range wantKeys {
		want = append(want, latest[k])
	}
	sort.Slice(want, func(i, j int) bool { return want[i].offset < want[j].offset })
	check := func(when string) {
		t.Helper()
		got := readOffsetsPartition(t, tb.addr, want[len(want)-1].offset)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: %s-0 holds\n%v\nwant the last record of each key\n%v", when, coordinator.OffsetsTopic, got, want)
		}
		for i := range got {
			if string(got[i].value) != string(want[i].value) {
				t.Fatalf("%s: record %d: value % x, written % x", when, got[i].offset, got[i].value, want[i].value)
			}
		}
	}
	check("after compaction")
	if st.RecordsRemoved != int64(len(before)-len(want)) || st.TombstonesRemoved != 0 {
		t.Fatalf("compaction removed %d records and %d tombstones, want %d and 0", st.RecordsRemoved, st.TombstonesRemoved, len(before)-len(want))
	}
	sizeAfter, segmentsAfter := l.Size(), l.NumSegments()
	if sizeAfter*4 > sizeBefore || segmentsAfter*4 > segmentsBefore {
		t.Fatalf("after compaction: %d bytes in %d segments, before %d bytes in %d", sizeAfter, segmentsAfter, sizeBefore, segmentsBefore)
	}
	t.Logf("compaction: %d records in %d bytes, %d segments -> %d records in %d bytes, %d segments (%+v)",
		len(before), sizeBefore, segmentsBefore, len(want), sizeAfter, segmentsAfter, st)

	// Restart: the groups load from the compacted log.
	tb.stop()
	tb = startBroker(t, tb.dir, mod)
	adm = kadm.NewClient(newClient(t, tb.addr))
	check("after a restart")
	fetch := func(group string) kadm.OffsetResponses {
		t.Helper()
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			t.Fatalf("fetch offsets of %s: %v", group, err)
		}
		return offs
	}
	kept := fetch("kept")
	for p := int32(0); p < parts; p++ {
		if o, ok := kept.Lookup(topic, p); !ok || o.At != 150 || o.Metadata != "m149" {
			t.Fatalf("kept, partition %d after the restart: %+v (found %v), want offset 150 metadata m149", p, o.Offset, ok)
		}
	}
	if n := len(kept[topic]); n != int(parts) {
		t.Fatalf("kept has offsets of %d partitions, want %d", n, parts)
	}
	if gone := fetch("gone"); len(gone) != 0 {
		t.Fatalf("deleted group gone has offsets after the restart: %v", gone)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["gone"]; ok {
		t.Fatalf("deleted group gone listed after the restart: %v", groups)
	}
	commitAll("kept", 150)
	for p := int32(0); p < parts; p++ {
		if o, _ := fetch("kept").Lookup(topic, p); o.At != 151 || o.Metadata != "m150" {
			t.Fatalf("kept, partition %d after a commit on the loaded group: %+v", p, o.Offset)
		}
	}
}
