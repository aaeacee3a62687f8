package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestReadProperties(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spate.properties")
	os.WriteFile(p, []byte("# comment\nlisten = 127.0.0.1:9999\n\ndata-dir=/tmp/x\n! also a comment\n"), 0o644)
	got, err := readProperties(p)
	if err != nil || len(got) != 2 || got["listen"] != "127.0.0.1:9999" || got["data-dir"] != "/tmp/x" {
		t.Fatalf("got %v %v", got, err)
	}
	os.WriteFile(p, []byte("no equals sign\n"), 0o644)
	if _, err := readProperties(p); err == nil {
		t.Fatal("malformed line accepted")
	}
}

func TestUnknownConfigSettingRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spate.properties")
	os.WriteFile(p, []byte("no-such-setting=1\n"), 0o644)
	if err := run([]string{"-config", p}); err == nil || err.Error() != p+`: unknown setting "no-such-setting"` {
		t.Fatalf("got %v", err)
	}
}

// TestGroupSettingsFromEnvironment: the consumer-group settings reach the coordinator of a
// started broker process — here through SPATE_* environment variables (the same names as
// the flags): a KIP-848 member is told the configured heartbeat interval, and a second
// member of a consumer group capped at one gets GROUP_MAX_SIZE_REACHED.
func TestGroupSettingsFromEnvironment(t *testing.T) {
	t.Setenv("SPATE_GROUP_CONSUMER_HEARTBEAT_INTERVAL", "1234ms")
	t.Setenv("SPATE_GROUP_CONSUMER_MAX_SIZE", "1")
	addr := freeAddr(t)
	cmd := startProcess(t, spateBinary(t), t.TempDir(), addr)
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	heartbeat := func(member string) *kmsg.ConsumerGroupHeartbeatResponse {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch = "capped", member, 0
		req.RebalanceTimeoutMillis, req.SubscribedTopicNames = 30000, []string{"t"}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{} // owned partitions: none yet (null is INVALID_REQUEST)
		for {
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ErrorCode != 14 && resp.ErrorCode != 15 { // the offsets topic is being created
				return resp
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if r := heartbeat("m1"); r.ErrorCode != 0 || r.HeartbeatIntervalMillis != 1234 {
		t.Fatalf("first member: code %d, heartbeat interval %d ms, want 0 and 1234", r.ErrorCode, r.HeartbeatIntervalMillis)
	}
	if r := heartbeat("m2"); r.ErrorCode != 81 {
		t.Fatalf("second member of a group capped at one: code %d, want GROUP_MAX_SIZE_REACHED (81)", r.ErrorCode)
	}
}
