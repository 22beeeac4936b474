package emul

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// punchHole deallocates n bytes at off with fallocate(PUNCH_HOLE), which
// zeroes partial file system blocks. It returns an error wrapping
// errors.ErrUnsupported when the file system cannot punch holes.
func punchHole(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno error
	if err := rc.Control(func(fd uintptr) {
		errno = unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}); err != nil {
		return err
	}
	switch {
	case errno == nil:
		return nil
	case errors.Is(errno, unix.EOPNOTSUPP), errors.Is(errno, unix.ENOSYS), errors.Is(errno, unix.EINVAL):
		return fmt.Errorf("punch hole in %s: %w (%w)", f.Name(), errors.ErrUnsupported, errno)
	}
	return &os.PathError{Op: "fallocate PUNCH_HOLE", Path: f.Name(), Err: errno}
}

// fileExtent reports whether the byte at off is data (not a hole) and how
// long the run of data or hole is, using SEEK_DATA and SEEK_HOLE. It
// returns an error wrapping errors.ErrUnsupported when the file system or
// file type does not support them.
func fileExtent(f *os.File, off, size int64) (data bool, run int64, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, 0, err
	}
	var next int64
	var errno error
	if err := rc.Control(func(fd uintptr) {
		next, errno = unix.Seek(int(fd), off, unix.SEEK_DATA)
		if errno == nil && next == off {
			data = true
			next, errno = unix.Seek(int(fd), off, unix.SEEK_HOLE)
		}
	}); err != nil {
		return false, 0, err
	}
	switch {
	case errno == nil:
	case errors.Is(errno, unix.ENXIO):
		// No data after off: a hole to the end.
		return false, size - off, nil
	case errors.Is(errno, unix.EINVAL), errors.Is(errno, unix.EOPNOTSUPP):
		return false, 0, fmt.Errorf("seek data in %s: %w (%w)", f.Name(), errors.ErrUnsupported, errno)
	default:
		return false, 0, &os.PathError{Op: "lseek SEEK_DATA", Path: f.Name(), Err: errno}
	}
	if next > size {
		next = size
	}
	if next <= off {
		return data, 0, nil
	}
	return data, next - off, nil
}

// fsBlockSize is the file system's preferred I/O block size for st,
// 4096 when unknown.
func fsBlockSize(st fs.FileInfo) int64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Blksize > 0 {
		return int64(sys.Blksize)
	}
	return 4096
}
