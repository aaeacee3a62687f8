package broker

import "testing"

// TestFlushMessagesSyncsBeforeAcknowledging: with flush.messages=1 an acknowledged produce is
// already covered by the recovery point (synced), and the sync ran off the event loop.
func TestFlushMessagesSyncsBeforeAcknowledging(t *testing.T) {
	tb := startBroker(t, "", nil)
	cl := newClient(t, tb.addr)
	createTopic(t, cl, "durable", 1, map[string]string{"flush.messages": "1"})
	createTopic(t, cl, "lazy", 1, nil)
	pid, epoch := initProducerID(t, cl)
	for i := 0; i < 5; i++ {
		if code, _ := rawProduce(t, cl, "durable", pid, epoch, int32(i*3), 3); code != 0 {
			t.Fatalf("produce: %d", code)
		}
		if rp := tb.b.topics.partition("durable", 0).log.RecoveryPoint(); rp != int64(3*(i+1)) {
			t.Fatalf("after produce %d: recovery point %d, want %d", i, rp, 3*(i+1))
		}
	}
	pid2, _ := initProducerID(t, cl)
	if code, _ := rawProduce(t, cl, "lazy", pid2, 0, 0, 3); code != 0 {
		t.Fatalf("produce: %d", code)
	}
	if rp := tb.b.topics.partition("lazy", 0).log.RecoveryPoint(); rp != 0 {
		t.Fatalf("default flush policy synced at once: recovery point %d", rp)
	}
}
