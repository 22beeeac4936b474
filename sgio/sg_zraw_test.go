//go:build linux

package sgio

// TEMPORARY throwaway measurements (to be deleted).

import (
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func BenchmarkRawLoop(b *testing.B) {
	path := integrationDevice(b)
	for _, mode := range []string{"ioctl", "writeread", "writeread-nb"} {
		b.Run(mode, func(b *testing.B) {
			flags := unix.O_RDWR
			if mode == "writeread-nb" {
				flags |= unix.O_NONBLOCK
			}
			fd, err := unix.Open(path, flags, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Close(fd)
			type st struct {
				h     sgIOHdr
				cdb   [16]byte
				sense [96]byte
				data  [4096]byte
				rb    [sgIOHdrSize]byte
			}
			s := new(st)
			s.cdb = [16]byte{0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8}
			start := time.Now()
			for i := 0; i < b.N; i++ {
				s.h = sgIOHdr{interfaceID: 'S', dxferDirection: sgDxferFromDev, cmdLen: 16, mxSbLen: 96, dxferLen: 4096,
					dxferp: unsafe.Pointer(&s.data[0]), cmdp: unsafe.Pointer(&s.cdb[0]), sbp: unsafe.Pointer(&s.sense[0]), timeout: 10000}
				switch mode {
				case "ioctl":
					_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), sgIO, uintptr(unsafe.Pointer(&s.h)))
					if e != 0 {
						b.Fatal(e)
					}
				default:
					_, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&s.h)), uintptr(sgIOHdrSize))
					if e != 0 {
						b.Fatal(e)
					}
					for {
						_, _, e = unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&s.rb[0])), uintptr(sgIOHdrSize))
						if e != unix.EAGAIN {
							break
						}
					}
					if e != 0 {
						b.Fatal(e)
					}
				}
				if s.h.status != 0 && mode == "ioctl" {
					b.Fatal("status")
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
			_ = os.Getpid()
		})
	}
}
