package replication

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/spate-broker/spate/logstore"
)

// BenchmarkEncodeFetchRequest: a follower fetch for 100 partitions of 10 topics.
func BenchmarkEncodeFetchRequest(b *testing.B) {
	params := fetchParams{clientID: "spate-replica-fetcher-2", replicaID: 2, maxWaitMs: 500, minBytes: 1, maxBytes: 10 << 20}
	parts := make([]fetchPartition, 100)
	for i := range parts {
		parts[i] = fetchPartition{topic: fmt.Sprintf("topic-%d", i/10), partition: int32(i % 10), currentLeaderEpoch: 3,
			fetchOffset: int64(i) << 20, lastFetchedEpoch: 3, partitionMaxBytes: 1 << 20}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFetchRequest(buf[:0], &params, parts)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeFetchResponse: the sample response (two topics, four partitions).
func BenchmarkDecodeFetchResponse(b *testing.B) {
	frame := frameOf(1, sampleFetchResponse())
	var d fetchResponse
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := d.decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchPath: build a request and apply its response (16 records of 100 bytes
// appended), without the network.
func BenchmarkFetchPath(b *testing.B) {
	lg, c := openReplica(b, filepath.Join(b.TempDir(), "bench-0"), logstore.DefaultConfig())
	defer lg.Close()
	f := NewFetcher(FetcherConfig{LocalID: 2, Addr: "unused:0", Logger: testLogger(),
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }})
	defer f.Close()
	if err := f.Add(&Replica{Topic: "bench", Partition: 0, Log: lg, Epochs: c, LeaderEpoch: 1}); err != nil {
		b.Fatal(err)
	}
	canned := newCannedFetch("bench", 0, 16, 100, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(canned.frame)))
	for b.Loop() {
		f.mu.Lock()
		f.buildLocked(f.now())
		corr := f.params.correlationID
		f.mu.Unlock()
		canned.set(corr, lg.LogEndOffset())
		if err := f.handle(canned.frame[4:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplicateOverSocket: steady-state replication from a stub leader over 127.0.0.1,
// one fetch per iteration.
func BenchmarkReplicateOverSocket(b *testing.B) {
	lg, c := openReplica(b, filepath.Join(b.TempDir(), "bench-0"), logstore.DefaultConfig())
	defer lg.Close()
	canned := newCannedFetch("bench", 0, 16, 100, 1)
	stub := startStubLeader(b, canned)
	f := NewFetcher(FetcherConfig{LocalID: 2, Addr: stub.ln.Addr().String(), Logger: testLogger()})
	defer f.Close()
	if err := f.Add(&Replica{Topic: "bench", Partition: 0, Log: lg, Epochs: c, LeaderEpoch: 1}); err != nil {
		b.Fatal(err)
	}
	stub.waitFetches(100)
	b.ReportAllocs()
	b.SetBytes(int64(len(canned.frame)))
	b.ResetTimer()
	stub.waitFetches(100 + int64(b.N))
}
