//go:build unix

package delivery

import (
	"errors"
	"syscall"
)

// socketOpen peeks at an idle socket without blocking: nothing to read
// means it is still open; an end of stream or stray bytes mean it is not.
func socketOpen(raw syscall.RawConn) bool {
	open := true
	err := raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n < 0 && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
		return true // never wait for readiness
	})
	return err == nil && open
}
