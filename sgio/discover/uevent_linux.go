//go:build linux

package discover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ueventGroupKernel is the multicast group of the kernel's own uevents
// (group 2 carries udev's re-broadcasts).
const ueventGroupKernel = 1

// ueventRcvBuf is the receive buffer asked for: a burst of hot-plug
// events (a shelf of disks powering up) must not overflow it.
const ueventRcvBuf = 4 << 20

// UeventMonitor receives kernel uevents of selected subsystems from a
// NETLINK_KOBJECT_UEVENT socket. Read them with [UeventMonitor.Next];
// one goroutine at a time.
type UeventMonitor struct {
	f      *os.File
	rc     syscall.RawConn
	filter subsystemFilter
	buf    []byte
}

// OpenUeventMonitor opens a monitor for events of the given subsystems
// (none: [DefaultUeventSubsystems]). Receiving the kernel's uevents needs
// no privilege, but sandboxes may refuse netlink sockets.
func OpenUeventMonitor(subsystems ...string) (*UeventMonitor, error) {
	if len(subsystems) == 0 {
		subsystems = DefaultUeventSubsystems()
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("discover: uevent monitor: %w", os.NewSyscallError("socket", err))
	}
	// A bigger buffer than the default; SO_RCVBUFFORCE (CAP_NET_ADMIN)
	// passes the rmem_max limit, SO_RCVBUF is capped by it.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ueventRcvBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ueventRcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: ueventGroupKernel}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("discover: uevent monitor: %w", os.NewSyscallError("bind", err))
	}
	f := os.NewFile(uintptr(fd), "netlink-uevent")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("discover: uevent monitor: %w", err)
	}
	return &UeventMonitor{f: f, rc: rc, filter: subsystemFilter(append([]string(nil), subsystems...)), buf: make([]byte, maxUevent+1)}, nil
}

// aLongTimeAgo is a deadline in the past: it unblocks a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// Next returns the next event of the monitored subsystems. It blocks
// until one arrives, ctx ends (ctx.Err() is returned) or the monitor is
// closed. Datagrams that are not from the kernel or not uevents are
// skipped. ErrUeventOverflow reports lost events; call Next again after
// rescanning.
func (m *UeventMonitor) Next(ctx context.Context) (Uevent, error) {
	if err := ctx.Err(); err != nil {
		return Uevent{}, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		m.f.SetReadDeadline(aLongTimeAgo)
		close(fired)
	})
	defer func() {
		if !stop() {
			// The deadline was set: clear it for the next call.
			<-fired
			m.f.SetReadDeadline(time.Time{})
		}
	}()
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := m.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), m.buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
		})
		if err != nil {
			if ctx.Err() != nil {
				return Uevent{}, ctx.Err()
			}
			return Uevent{}, fmt.Errorf("discover: uevent monitor: %w", err)
		}
		switch {
		case rerr == unix.ENOBUFS:
			return Uevent{}, ErrUeventOverflow
		case rerr == unix.EINTR:
			continue
		case rerr != nil:
			return Uevent{}, fmt.Errorf("discover: uevent monitor: %w", os.NewSyscallError("recvfrom", rerr))
		}
		// Only the kernel (port 0) sends on group 1; anything else is a
		// forgery from a local process.
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue
		}
		if n > maxUevent {
			continue
		}
		u, err := ParseUevent(m.buf[:n])
		if err != nil || !m.filter.match(u.Subsystem) {
			continue
		}
		return u, nil
	}
}

// Close closes the socket; a Next in progress returns an error.
func (m *UeventMonitor) Close() error {
	if err := m.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("discover: uevent monitor: %w", err)
	}
	return nil
}
