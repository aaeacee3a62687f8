//go:build linux

package netio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// writev makes one writev(2) call; iov must not be empty.
func writev(fd int, iov []unix.Iovec) (int, error) {
	for {
		n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}

// sendfile makes one sendfile(2) call from in at *off to out.
func sendfile(out, in int, off *int64, n int) (int, error) {
	for {
		w, err := unix.Sendfile(out, in, off, n)
		if err == unix.EINTR {
			continue
		}
		if w < 0 {
			w = 0
		}
		return w, err
	}
}
