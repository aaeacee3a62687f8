package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterControllerOnlyProcessesKill9ActiveController: six processes, three
// controller-only (-process-roles controller, the voters) and three broker-only. Clients
// know only the brokers. An idempotent acks=all producer runs while the active controller
// (found with DescribeCluster on a controller's listener) is killed with SIGKILL: another
// controller takes over, the brokers carry on, a topic is created after the failover, and
// the killed controller comes back. Every acknowledged record is read back exactly once
// and in order per key; Metadata lists only the brokers.
func TestClusterControllerOnlyProcessesKill9ActiveController(t *testing.T) {
	const n = 6
	pc := &procCluster{t: t, bin: spateBinary(t), cmds: make([]*exec.Cmd, n)}
	var vs, ctlAddrs, brokerAddrs []string
	for i := 0; i < n; i++ {
		pc.addrs = append(pc.addrs, freeAddr(t))
		pc.dirs = append(pc.dirs, t.TempDir())
	}
	for i := 0; i < 3; i++ {
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, freeAddr(t)))
		ctlAddrs = append(ctlAddrs, pc.addrs[i])
		brokerAddrs = append(brokerAddrs, pc.addrs[i+3])
	}
	pc.voters = strings.Join(vs, ",")
	raftAddrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	pc.extraArgs = func(i int) []string {
		if i < 3 {
			return []string{"-process-roles", "controller"}
		}
		return []string{"-process-roles", "broker", "-controller-listen", raftAddrs[i-3],
			"-controller-bootstrap-servers", strings.Join(ctlAddrs, ",")}
	}
	t.Cleanup(func() {
		for i := range pc.cmds {
			pc.kill(i)
		}
	})
	for i := 0; i < n; i++ {
		pc.start(i)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddrs...), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const topic = "ctl-only-kill9"
	createRF3Topic(t, adm, topic, 6)
	pc.waitISR(adm, topic, 3, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	md, err := adm.Metadata(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if ids := md.Brokers.NodeIDs(); fmt.Sprint(ids) != "[4 5 6]" || md.Controller < 4 {
		t.Fatalf("Metadata: brokers %v, controller %d; want brokers [4 5 6] and a broker as controller", ids, md.Controller)
	}
	activeController := func(addr string) int32 {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.SetVersion(1)
		req.EndpointType = 2
		resp := txkRaw[*kmsg.DescribeClusterResponse](t, addr, req)
		if resp.ErrorCode != 0 || len(resp.Brokers) != 3 {
			t.Fatalf("DescribeCluster(CONTROLLER) from %s: %+v", addr, resp)
		}
		return resp.ControllerID
	}

	prod := startAckedProducer(t, brokerAddrs, topic)
	prod.waitAcks(500)

	killed := activeController(ctlAddrs[0])
	if killed < 1 || killed > 3 {
		t.Fatalf("active controller %d is not a controller-only node", killed)
	}
	t.Logf("killing the active controller %d with %d acknowledged", killed, prod.count())
	pc.kill(int(killed - 1))
	survivor := ctlAddrs[int(killed)%3]
	deadline := time.Now().Add(30 * time.Second)
	for {
		if next := activeController(survivor); next >= 1 && next != killed {
			t.Logf("node %d is the active controller", next)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new active controller")
		}
		time.Sleep(100 * time.Millisecond)
	}
	prod.waitAcks(prod.count() + 500)
	createRF3Topic(t, adm, topic+"-after", 2)
	pc.waitISR(adm, topic+"-after", 3, 30*time.Second)
	pc.start(int(killed - 1))
	prod.waitAcks(prod.count() + 500)
	acked, _ := prod.finish()
	t.Logf("%d acknowledged records read back exactly once", readBackExactlyOnce(t, brokerAddrs, topic, acked))
}
