// Package mmfile maps a file into a reserved range of address space that can grow in place.
//
// A File reserves Max bytes of virtual address space once (PROT_NONE, no memory, no swap) and
// maps the file's first Size bytes at the start of that range. Growing allocates disk blocks
// with fallocate(2) first and then maps only the new part at a fixed address, so existing
// views of the mapping stay valid and never move. Shrinking unmaps the tail (leaving it
// reserved) before the file is truncated.
//
// Invariant: the mapped part of the range never extends past the end of the file, and every
// mapped byte has disk blocks allocated, so touching a mapped byte never raises SIGBUS — not
// on a full disk (fallocate fails first and the caller sees ENOSPC) and not after a truncate.
//
// Concurrency: Grow, Shrink, Sync and Close are called by one owner at a time. Bytes may be
// read by any goroutine; the caller is responsible for not reading past what it knows to be
// written, and for keeping the File open while any view of it is in use.
package mmfile

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the unit of mapping.
var PageSize = int64(os.Getpagesize())

// File is a memory-mapped file that grows in place inside a fixed address reservation.
type File struct {
	f        *os.File
	fd       int            // f's descriptor, for WriteAt
	base     unsafe.Pointer // start of the reservation; nil when Max == 0 or closed
	max      int64          // bytes reserved; mappings never exceed it
	writable bool

	// mu keeps Shrink and Close (write lock) from unmapping what Release (read lock, any
	// goroutine) works on. Grow needs no exclusion: it only maps past what Release sees, and
	// it is called by the owner, who never runs it concurrently with Shrink or Close.
	mu sync.RWMutex
	// mapped is the number of bytes of the file mapped at base. Invariant: == file size.
	// Written under mu; read by anyone.
	mapped atomic.Int64
}

// Open opens path (creating it when create is set), reserves max bytes of address space and
// maps the whole current file; a file larger than max raises the reservation to its size. A
// read-only File maps PROT_READ and cannot grow.
func Open(path string, max int64, writable, create bool) (*File, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
		if create {
			flag |= os.O_CREATE
		}
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size := st.Size()
	if max < size {
		max = size
	}
	m := &File{f: f, fd: int(f.Fd()), max: roundUp(max), writable: writable}
	if m.max > 0 {
		p, err := unix.MmapPtr(-1, 0, nil, uintptr(m.max), unix.PROT_NONE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reserve %d bytes for %q: %w", m.max, path, err)
		}
		m.base = p
	}
	if err := m.mapRange(0, size); err != nil {
		m.Close()
		return nil, fmt.Errorf("map %q: %w", path, err)
	}
	m.mapped.Store(size)
	return m, nil
}

func roundUp(n int64) int64 { return (n + PageSize - 1) &^ (PageSize - 1) }

// mapRange maps file bytes [from, to) at base+from. from must be page aligned.
func (m *File) mapRange(from, to int64) error {
	if to <= from {
		return nil
	}
	prot := unix.PROT_READ
	if m.writable {
		prot |= unix.PROT_WRITE
	}
	length := roundUp(to - from)
	_, err := unix.MmapPtr(int(m.f.Fd()), from, unsafe.Add(m.base, from), uintptr(length), prot,
		unix.MAP_SHARED|unix.MAP_FIXED)
	return err
}

// File returns the underlying file, for sendfile(2) and pread.
func (m *File) File() *os.File { return m.f }

// Size returns the file's size, which is also the number of mapped bytes.
func (m *File) Size() int64 { return m.mapped.Load() }

// Max returns the reserved size: the most this File can grow to.
func (m *File) Max() int64 { return m.max }

// Bytes returns a view of the whole mapped file. The view is valid until Close, and its
// bytes past a later Shrink point must not be touched.
func (m *File) Bytes() []byte {
	n := m.mapped.Load()
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(m.base), n)
}

// ErrFull is returned by Grow past the reservation.
var ErrFull = errors.New("mmfile: reservation full")

// Grow makes the file at least size bytes long: it allocates disk blocks for the new part
// (fallocate; ENOSPC is returned to the caller, nothing is mapped) and maps it. Existing
// views stay valid. Growing a read-only File is an error.
func (m *File) Grow(size int64) error {
	mapped := m.mapped.Load()
	if size <= mapped {
		return nil
	}
	if !m.writable {
		return errors.New("mmfile: grow of read-only file")
	}
	if size > m.max {
		return ErrFull
	}
	if err := unix.Fallocate(int(m.f.Fd()), 0, mapped, size-mapped); err != nil {
		return fmt.Errorf("fallocate %q to %d: %w", m.f.Name(), size, err)
	}
	// The last page of the old mapping may have been partial; remap from its start.
	from := mapped &^ (PageSize - 1)
	if err := m.mapRange(from, size); err != nil {
		return fmt.Errorf("map %q [%d,%d): %w", m.f.Name(), from, size, err)
	}
	m.mapped.Store(size)
	return nil
}

// Shrink truncates the file to size bytes. Pages wholly past size are unmapped (returned to
// the reservation) before the truncate, so no mapped byte is ever past the end of the file.
// Views of bytes past size must no longer be touched.
func (m *File) Shrink(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mapped := m.mapped.Load()
	if size >= mapped {
		return nil
	}
	keep := roundUp(size)
	if keep < roundUp(mapped) {
		_, err := unix.MmapPtr(-1, 0, unsafe.Add(m.base, keep), uintptr(roundUp(mapped)-keep),
			unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED)
		if err != nil {
			return fmt.Errorf("unmap tail of %q: %w", m.f.Name(), err)
		}
	}
	if err := m.f.Truncate(size); err != nil {
		return fmt.Errorf("truncate %q to %d: %w", m.f.Name(), size, err)
	}
	m.mapped.Store(size)
	return nil
}

// Release drops this process's mapping of the whole pages in [from, to) (MADV_DONTNEED):
// the pages stay in the page cache — dirty ones are still written back, since the mapping is
// shared — so the data is unchanged and the next access maps the page again; what goes is
// the process's resident set. Used behind the append cursor, whose bytes are read through
// the file (sendfile) rather than the mapping. Safe from any goroutine while the range stays
// mapped; errors are ignored (it is only a hint).
func (m *File) Release(from, to int64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	to = min(to, m.mapped.Load()) &^ (PageSize - 1)
	from = roundUp(from)
	if to <= from || m.base == nil {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(m.base, from)), to-from)
	_ = unix.Madvise(b, unix.MADV_DONTNEED)
}

// WriteAt writes head then body to the file at off with pwritev(2), looping over partial
// writes: the bytes go into the page cache without passing through the mapping, so the
// writer takes no page faults, and the mapping (shared) shows them once it returns. The range
// must lie within the mapped size (Grow first), so that views never end before the data.
// Called by the owner (the appender); it allocates nothing.
func (m *File) WriteAt(head, body []byte, off int64) error {
	if !m.writable {
		return errors.New("mmfile: write to a read-only file")
	}
	if end := off + int64(len(head)+len(body)); off < 0 || end > m.mapped.Load() {
		return fmt.Errorf("mmfile: write [%d,%d) of %q past the mapped %d bytes", off, end, m.f.Name(), m.mapped.Load())
	}
	fd := m.fd
	var iov [2]unix.Iovec
	for len(head)+len(body) > 0 {
		n := 0
		if len(head) > 0 {
			iov[n].Base = &head[0]
			iov[n].SetLen(len(head))
			n++
		}
		if len(body) > 0 {
			iov[n].Base = &body[0]
			iov[n].SetLen(len(body))
			n++
		}
		w, _, errno := unix.Syscall6(unix.SYS_PWRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n),
			uintptr(off), uintptr(uint64(off)>>32>>32), 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("pwritev %q at %d: %w", m.f.Name(), off, errno)
		}
		if w == 0 {
			return fmt.Errorf("pwritev %q at %d: wrote nothing", m.f.Name(), off)
		}
		off += int64(w)
		k := min(int(w), len(head))
		head, w = head[k:], w-uintptr(k)
		body = body[w:]
	}
	return nil
}

// Sync writes the file's dirty pages and size to stable storage.
func (m *File) Sync() error {
	if err := unix.Fdatasync(int(m.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %q: %w", m.f.Name(), err)
	}
	return nil
}

// Close unmaps the reservation and closes the file. No view may be used afterwards.
func (m *File) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if m.base != nil {
		err = unix.MunmapPtr(m.base, uintptr(m.max))
		m.base = nil
	}
	m.mapped.Store(0)
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
