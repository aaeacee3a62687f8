package mmfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func diskSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func openNew(t *testing.T, max int64) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	m, err := Open(path, max, true, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, path
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestMmfileOpenNewIsEmpty(t *testing.T) {
	m, path := openNew(t, 1<<20)
	if m.Size() != 0 || m.Bytes() != nil {
		t.Fatalf("new file: Size %d, Bytes len %d", m.Size(), len(m.Bytes()))
	}
	if m.Max() != 1<<20 {
		t.Fatalf("Max = %d, want %d", m.Max(), 1<<20)
	}
	if got := diskSize(t, path); got != 0 {
		t.Fatalf("new file is %d bytes on disk", got)
	}
	// Max is rounded up to whole pages.
	m2, _ := openNew(t, PageSize+1)
	if m2.Max() != 2*PageSize {
		t.Fatalf("Max for %d = %d, want %d", PageSize+1, m2.Max(), 2*PageSize)
	}
}

func TestMmfileGrowKeepsViewsAndSizeOnDisk(t *testing.T) {
	m, path := openNew(t, 64*PageSize)
	sizes := []int64{100, PageSize - 1, PageSize, PageSize + 1, 3*PageSize + 17, 40 * PageSize}
	var views [][]byte
	var want []byte
	for i, size := range sizes {
		if err := m.Grow(size); err != nil {
			t.Fatalf("Grow(%d): %v", size, err)
		}
		if m.Size() != size {
			t.Fatalf("Grow(%d): Size = %d", size, m.Size())
		}
		if got := diskSize(t, path); got != size {
			t.Fatalf("Grow(%d): file is %d bytes on disk", size, got)
		}
		b := m.Bytes()
		if int64(len(b)) != size {
			t.Fatalf("Grow(%d): Bytes has %d bytes", size, len(b))
		}
		if i > 0 && unsafe.SliceData(b) != unsafe.SliceData(views[0]) {
			t.Fatalf("Grow(%d): the mapping moved", size)
		}
		// The new part reads as zeros; fill it with a pattern.
		if !isZeros(b[len(want):]) {
			t.Fatalf("Grow(%d): new bytes are not zero", size)
		}
		p := pattern(int(size)-len(want), byte(i))
		copy(b[len(want):], p)
		want = append(want, p...)
		views = append(views, b)
		// Every earlier view still reads what was written through it and later ones.
		for j, v := range views {
			if !bytes.Equal(v, want[:len(v)]) {
				t.Fatalf("after Grow(%d): view %d (len %d) changed", size, j, len(v))
			}
		}
	}
	// Growing to a size already mapped is a no-op.
	if err := m.Grow(10); err != nil || m.Size() != sizes[len(sizes)-1] {
		t.Fatalf("Grow(10) on a larger file: %v, Size %d", err, m.Size())
	}
	// What was written through the mapping is what read(2) sees.
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, want) {
		t.Fatal("file contents differ from what was written through the mapping")
	}
}

func isZeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestMmfileViewSeesWriteAt(t *testing.T) {
	m, _ := openNew(t, 16*PageSize)
	if err := m.Grow(2*PageSize + 10); err != nil {
		t.Fatal(err)
	}
	view := m.Bytes()
	p := pattern(300, 3)
	off := PageSize - 100 // straddles a page boundary
	if _, err := m.File().WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(view[off:off+300], p) {
		t.Fatal("the view does not see bytes written with WriteAt (MAP_SHARED)")
	}
	// And the other way: written through the view, read with ReadAt.
	q := pattern(50, 9)
	copy(view[2*PageSize-40:], q)
	got := make([]byte, 50)
	if _, err := m.File().ReadAt(got, 2*PageSize-40); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, q) {
		t.Fatal("ReadAt does not see bytes written through the view")
	}
	// The same holds across another File mapping the same file read-only.
	r, err := Open(m.File().Name(), 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !bytes.Equal(r.Bytes(), view) {
		t.Fatal("a read-only mapping of the same file differs")
	}
	view[5] ^= 0xff
	if r.Bytes()[5] != view[5] {
		t.Fatal("a read-only mapping does not see a later write through the writable one")
	}
}

func TestMmfileShrinkThenGrow(t *testing.T) {
	m, path := openNew(t, 16*PageSize)
	if err := m.Grow(3 * PageSize); err != nil {
		t.Fatal(err)
	}
	full := pattern(int(3*PageSize), 1)
	copy(m.Bytes(), full)
	for _, size := range []int64{2*PageSize + 5, 2 * PageSize, 100, 0} {
		if err := m.Shrink(size); err != nil {
			t.Fatalf("Shrink(%d): %v", size, err)
		}
		if m.Size() != size || int64(len(m.Bytes())) != size {
			t.Fatalf("Shrink(%d): Size %d, Bytes %d", size, m.Size(), len(m.Bytes()))
		}
		if got := diskSize(t, path); got != size {
			t.Fatalf("Shrink(%d): file is %d bytes on disk", size, got)
		}
		if !bytes.Equal(m.Bytes(), full[:size]) {
			t.Fatalf("Shrink(%d) changed the kept bytes", size)
		}
	}
	// Shrinking to more than the size is a no-op.
	if err := m.Shrink(50); err != nil || m.Size() != 0 {
		t.Fatalf("Shrink(50) of an empty file: %v, Size %d", err, m.Size())
	}

	// Shrink into the middle of a page and grow again: the bytes past the cut were in the
	// same (still mapped) page, but the truncation discarded them; they read as zeros.
	if err := m.Grow(2 * PageSize); err != nil {
		t.Fatal(err)
	}
	copy(m.Bytes(), full)
	if err := m.Shrink(100); err != nil {
		t.Fatal(err)
	}
	if err := m.Grow(3 * PageSize); err != nil {
		t.Fatalf("Grow after Shrink: %v", err)
	}
	b := m.Bytes()
	if got := diskSize(t, path); got != 3*PageSize {
		t.Fatalf("Grow after Shrink: file is %d bytes on disk", got)
	}
	if !bytes.Equal(b[:100], full[:100]) {
		t.Fatal("Grow after Shrink lost the kept bytes")
	}
	if !isZeros(b[100:]) {
		i := bytes.IndexFunc(b[100:], func(r rune) bool { return r != 0 })
		t.Fatalf("Grow after Shrink(100): byte %d is not zero (stale data resurrected)", 100+i)
	}
	copy(b[2*PageSize:], full[:PageSize])
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, b) {
		t.Fatal("file and mapping differ after Shrink and Grow")
	}
}

func TestMmfileGrowPastMax(t *testing.T) {
	m, path := openNew(t, 4*PageSize)
	if err := m.Grow(m.Max() + 1); !errors.Is(err, ErrFull) {
		t.Fatalf("Grow(Max+1) = %v, want ErrFull", err)
	}
	if m.Size() != 0 || diskSize(t, path) != 0 {
		t.Fatalf("failed Grow changed the file: Size %d, disk %d", m.Size(), diskSize(t, path))
	}
	if err := m.Grow(m.Max()); err != nil {
		t.Fatalf("Grow(Max): %v", err)
	}
	if err := m.Grow(m.Max() + 1); !errors.Is(err, ErrFull) {
		t.Fatalf("Grow(Max+1) of a full file = %v, want ErrFull", err)
	}
	if m.Size() != m.Max() {
		t.Fatalf("Size = %d, want %d", m.Size(), m.Max())
	}
	// A reservation of zero bytes cannot grow at all.
	z, _ := openNew(t, 0)
	if err := z.Grow(1); !errors.Is(err, ErrFull) {
		t.Fatalf("Grow(1) with Max 0 = %v, want ErrFull", err)
	}
}

func TestMmfileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := pattern(int(PageSize)+123, 5)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A file larger than max is mapped whole: Max is raised to cover it.
	if r.Size() != int64(len(data)) || r.Max() < r.Size() {
		t.Fatalf("read-only: Size %d, Max %d, want Size %d", r.Size(), r.Max(), len(data))
	}
	if !bytes.Equal(r.Bytes(), data) {
		t.Fatal("read-only mapping differs from the file")
	}
	if err := r.Grow(r.Size() + 1); err == nil {
		t.Fatal("Grow of a read-only File succeeded")
	}
	if err := r.Grow(r.Max() + PageSize); err == nil {
		t.Fatal("Grow past Max of a read-only File succeeded")
	}
	if r.Size() != int64(len(data)) || diskSize(t, path) != int64(len(data)) {
		t.Fatal("a refused Grow changed the read-only file")
	}

	if _, err := Open(filepath.Join(t.TempDir(), "missing"), PageSize, false, false); err == nil {
		t.Fatal("read-only Open of a missing file succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), PageSize, true, false); err == nil {
		t.Fatal("writable Open without create of a missing file succeeded")
	}
}

func TestMmfileReopenExisting(t *testing.T) {
	m, path := openNew(t, 8*PageSize)
	if err := m.Grow(PageSize + 7); err != nil {
		t.Fatal(err)
	}
	data := pattern(int(PageSize)+7, 11)
	copy(m.Bytes(), data)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Size() != 0 {
		t.Fatalf("Size after Close = %d", m.Size())
	}
	m.Release(0, PageSize) // after Close: must not touch the released mapping

	w, err := Open(path, 8*PageSize, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !bytes.Equal(w.Bytes(), data) {
		t.Fatal("reopened file differs")
	}
	if err := w.Grow(2 * PageSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes()[:len(data)], data) || !isZeros(w.Bytes()[len(data):]) {
		t.Fatal("Grow of a reopened file changed its data or did not zero the new part")
	}
}

// TestMmfileReleaseConcurrentWithGrowShrinkClose runs Release on another goroutine, as the
// log's releaser does, while the owner grows, writes, shrinks and finally closes the file.
func TestMmfileReleaseConcurrentWithGrowShrinkClose(t *testing.T) {
	m, path := openNew(t, 64*PageSize)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.Release(0, m.Max())
			m.Release(PageSize/2, 3*PageSize)
		}
	}()
	for round := 0; round < 20; round++ {
		for size := int64(100); size <= 32*PageSize; size = size*2 + 1 {
			if err := m.Grow(size); err != nil {
				t.Fatalf("round %d Grow(%d): %v", round, size, err)
			}
			b := m.Bytes()
			b[size-1] = byte(round)
			if b[size-1] != byte(round) {
				t.Fatal("write through the view lost")
			}
		}
		if err := m.Shrink(int64(round) * 100); err != nil {
			t.Fatalf("round %d Shrink: %v", round, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	if got := diskSize(t, path); got != 19*100 {
		t.Fatalf("file is %d bytes after the last Shrink(1900)", got)
	}
}

// rssBytes is the process's resident set from /proc/self/statm.
func rssBytes(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, rss int64
	if _, err := fmt.Sscan(string(raw), &size, &rss); err != nil {
		t.Fatal(err)
	}
	return rss * int64(os.Getpagesize())
}

// TestMmfileReleaseKeepsDataDropsResidency: written pages released from the mapping read
// back unchanged (through the mapping and the file) and leave the resident set.
func TestMmfileReleaseKeepsDataDropsResidency(t *testing.T) {
	const size = 64 << 20
	m, path := openNew(t, size)
	if err := m.Grow(size); err != nil {
		t.Fatal(err)
	}
	data := pattern(size, 7)
	copy(m.Bytes(), data)
	before := rssBytes(t)
	m.Release(0, size)
	after := rssBytes(t)
	if before-after < size/2 {
		t.Fatalf("resident set %d -> %d after releasing %d bytes", before, after, size)
	}
	if !bytes.Equal(m.Bytes()[:size], data) {
		t.Fatal("mapping changed by Release")
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk[:size], data) {
		t.Fatal("file changed by Release")
	}
	m.Release(-5, size*2) // out-of-range bounds are clamped
}

// TestMmfileWriteAt: bytes written with WriteAt (head and body, either possibly empty) read
// back through the mapping and the file, the rest of the file unchanged; a write past the
// mapped size or to a read-only file is refused; WriteAt allocates nothing.
func TestMmfileWriteAt(t *testing.T) {
	m, path := openNew(t, 64*PageSize)
	defer m.Close()
	if err := m.Grow(3 * PageSize); err != nil {
		t.Fatal(err)
	}
	head, body := pattern(61, 3), pattern(int(PageSize)+100, 5)
	if err := m.WriteAt(head, body, 1000); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteAt(nil, []byte("tail"), 2*PageSize); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteAt([]byte("head only"), nil, 10); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3*PageSize)
	copy(want[1000:], head)
	copy(want[1061:], body)
	copy(want[2*PageSize:], "tail")
	copy(want[10:], "head only")
	if !bytes.Equal(m.Bytes(), want) {
		t.Fatal("mapping differs from what was written")
	}
	onDisk, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(onDisk, want) {
		t.Fatalf("file differs from what was written: %v", err)
	}
	if err := m.WriteAt(head, body, 3*PageSize-int64(len(head))); err == nil {
		t.Fatal("a write past the mapped size succeeded")
	}
	if n := testing.AllocsPerRun(100, func() { m.WriteAt(head, body, 0) }); n != 0 {
		t.Fatalf("WriteAt allocated %.1f times per call", n)
	}
	r, err := Open(path, 8*PageSize, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.WriteAt(head, nil, 0); err == nil {
		t.Fatal("WriteAt to a read-only File succeeded")
	}
}
