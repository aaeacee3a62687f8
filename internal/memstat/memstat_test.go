package memstat

import "testing"

var sink []byte

func TestAllocatedByCountsWhatFnAllocates(t *testing.T) {
	n := AllocatedBy(func() { sink = make([]byte, 8<<20) })
	if n < 8<<20 || n > 9<<20 {
		t.Fatalf("8 MiB allocation measured as %d bytes", n)
	}
	if n := AllocatedBy(func() {}); n > 64<<10 {
		t.Fatalf("an empty function measured as %d bytes", n)
	}
}
