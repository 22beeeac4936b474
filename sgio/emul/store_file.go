package emul

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// fileStore is a store on a regular file (or block device), read and
// written with pread/pwrite so that concurrent commands need no lock.
type fileStore struct {
	f    *os.File
	size int64
	// gran is the file system block size: the hole-punching unit.
	gran int64
	// noPunch is set once punching holes failed as unsupported; ranges are
	// then zeroed by writing.
	noPunch atomic.Bool
}

// openFileStore opens (or, unless readOnly, creates) path. A size of zero
// takes the file's size; a file shorter than size is extended (sparsely),
// a longer one is used up to size.
func openFileStore(path string, size int64, readOnly bool) (*fileStore, int64, error) {
	flag := os.O_RDWR | os.O_CREATE
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	cur := st.Size()
	if !st.Mode().IsRegular() {
		// A block device: its size is where SEEK_END lands.
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		cur = end
	}
	switch {
	case size == 0:
		size = cur
	case size > cur && st.Mode().IsRegular():
		if readOnly {
			f.Close()
			return nil, 0, fmt.Errorf("read-only file %s has %d bytes, fewer than the configured %d", path, cur, size)
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, 0, err
		}
	case size > cur:
		f.Close()
		return nil, 0, fmt.Errorf("device %s has %d bytes, fewer than the configured %d", path, cur, size)
	}
	return &fileStore{f: f, size: size, gran: fsBlockSize(st)}, size, nil
}

func (s *fileStore) ReadAt(p []byte, off int64) error {
	n, err := s.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		// Past the end of a file someone truncated: reads as zeros.
		clear(p[n:])
		return nil
	}
	return err
}

func (s *fileStore) WriteAt(p []byte, off int64) error {
	_, err := s.f.WriteAt(p, off)
	return err
}

func (s *fileStore) Deallocate(off, n int64) error {
	if !s.noPunch.Load() {
		err := punchHole(s.f, off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		s.noPunch.Store(true)
	}
	return writeZeros(s.f, off, n)
}

// writeZeros writes n zero bytes at off.
func writeZeros(f *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		l := min(n, int64(len(buf)))
		if _, err := f.WriteAt(buf[:l], off); err != nil {
			return err
		}
		off += l
		n -= l
	}
	return nil
}

func (s *fileStore) Mapped(off, n int64) (bool, int64, error) {
	mapped, run, err := fileExtent(s.f, off, s.size)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return true, n, nil
		}
		return false, 0, err
	}
	return mapped, min(run, n), nil
}

func (s *fileStore) Sync() error         { return s.f.Sync() }
func (s *fileStore) Close() error        { return s.f.Close() }
func (s *fileStore) Granularity() int64  { return s.gran }
func (s *fileStore) VolatileCache() bool { return true }
