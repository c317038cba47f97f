package gateway

import (
	"syscall"
	"unsafe"
)

// writev writes the buffers of iov to fd with one system call (the direct write
// of several frames, outbox.sendFrames). It returns the bytes written; a
// non-blocking socket whose buffer is full answers EAGAIN.
func writev(fd uintptr, iov []syscall.Iovec) (int, error) {
	n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
