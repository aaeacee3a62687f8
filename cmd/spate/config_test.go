package main

import (
	"os"
	"path/filepath"
	"testing"
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
