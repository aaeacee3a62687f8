package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestKcatListsProducesAndConsumesEveryCodec drives the broker with kcat (librdkafka's command
// line client, installed by `make deps`): -L lists the broker, then records produced with each
// compression codec are consumed back with their keys and offsets.
func TestKcatListsProducesAndConsumesEveryCodec(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed; `make deps` (part of `make test`) installs it")
	}
	bin := spateBinary(t)
	addr := freeAddr(t)
	cmd := startProcess(t, bin, t.TempDir(), addr)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	out, err := exec.Command(kcat, "-L", "-b", addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "broker 1 at "+addr+" (controller)") {
		t.Fatalf("kcat -L: %v\n%s", err, out)
	}
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	var want []string
	for i, c := range codecs {
		in := fmt.Sprintf("k%d:%s-a\nk%d:%s-b\n", i, c, i, c)
		p := exec.Command(kcat, "-P", "-b", addr, "-t", "kcat", "-K:", "-z", c, "-X", "acks=all")
		p.Stdin = strings.NewReader(in)
		if out, err := p.CombinedOutput(); err != nil {
			t.Fatalf("kcat -P -z %s: %v\n%s", c, err, out)
		}
		want = append(want, fmt.Sprintf("%d k%d %s-a", 2*i, i, c), fmt.Sprintf("%d k%d %s-b", 2*i+1, i, c))
	}
	out, err = exec.Command(kcat, "-C", "-b", addr, "-t", "kcat", "-e", "-q", "-f", "%o %k %s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, "\n") {
		t.Fatalf("consumed:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
