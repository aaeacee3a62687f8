package perf

import (
	"hash/crc32"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkKernelFloor measures the CPU that the bytes of make perf's S1 cost any broker that
// keeps them in a file, before it does anything of its own: each MiB is read from a loopback
// socket, written to a file (pwrite) and sent back out of the file (sendfile), the fewest
// copies a read/write broker can make; the crc variant also checks a CRC-32C over it, as a
// Kafka broker must for every produced batch. Only the CPU of the thread doing that (its
// user+system time) is counted, not the peers sending and draining; the metric is per GB
// moved as make perf counts it (produced + consumed, so 2 bytes per byte stored), to set
// beside make perf's "broker CPU s/GB" rows.
//
//	go test ./perf -run '^$' -bench KernelFloor -benchtime 256x
func BenchmarkKernelFloor(b *testing.B) {
	b.Run("copy", func(b *testing.B) { benchFloor(b, false) })
	b.Run("crc", func(b *testing.B) { benchFloor(b, true) })
}

func benchFloor(b *testing.B, crc bool) {
	const chunk = 1 << 20
	in, inPeer := tcpPair(b)
	out, outPeer := tcpPair(b)
	f, err := os.Create(filepath.Join(b.TempDir(), "segment"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	inFile, outFile := rawFile(b, in), rawFile(b, out)
	inFd, outFd := int(inFile.Fd()), int(outFile.Fd())
	go func() { // the producer: not counted
		buf := make([]byte, chunk)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for range b.N {
			if _, err := inPeer.Write(buf); err != nil {
				return
			}
		}
	}()
	drained := make(chan int64)
	go func() { // the consumer: not counted
		n, _ := io.Copy(io.Discard, outPeer)
		drained <- n
	}()
	table := crc32.MakeTable(crc32.Castagnoli)
	buf := make([]byte, chunk)
	b.SetBytes(2 * chunk)
	b.ResetTimer()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadCPU(b)
	var pos int64
	for range b.N {
		for n := 0; n < chunk; {
			m, err := unix.Read(inFd, buf[n:])
			if err != nil || m == 0 {
				b.Fatalf("read: %d, %v", m, err)
			}
			n += m
		}
		if crc && crc32.Checksum(buf, table) == 0 {
			b.Log("zero checksum") // keeps the call; the data never sums to zero
		}
		if _, err := unix.Pwrite(int(f.Fd()), buf, pos); err != nil {
			b.Fatal(err)
		}
		for off := pos; off < pos+chunk; {
			if _, err := unix.Sendfile(outFd, int(f.Fd()), &off, int(pos+chunk-off)); err != nil {
				b.Fatal(err)
			}
		}
		pos += chunk
	}
	cpu := threadCPU(b) - before
	b.StopTimer()
	out.Close()
	outFile.Close() // the last reference to the socket: the consumer sees the end
	if n := <-drained; n != pos {
		b.Fatalf("consumer drained %d bytes, want %d", n, pos)
	}
	b.ReportMetric(cpu/(2*float64(pos)/1e9), "cpu-sec/GB")
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(b *testing.B) (*net.TCPConn, *net.TCPConn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*net.TCPConn), peer.(*net.TCPConn)
}

// rawFile returns a blocking duplicate of c's socket, closed with the benchmark at the latest:
// the thread then sleeps in the kernel rather than in Go's netpoller, the cheapest way to wait.
func rawFile(b *testing.B, c *net.TCPConn) *os.File {
	f, err := c.File()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// threadCPU returns the calling OS thread's user+system CPU seconds.
func threadCPU(b *testing.B) float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
