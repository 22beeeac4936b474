package emul

import (
	"sync"
	"sync/atomic"
)

// store is the disk's backing medium, addressed in bytes. Offsets and
// lengths are already checked against the capacity by the caller.
// Implementations are safe for concurrent use; concurrent writes to the
// same bytes leave one or the other (or a mix), as on a real disk.
type store interface {
	// ReadAt fills p from offset off; unallocated ranges read as zeros.
	ReadAt(p []byte, off int64) error
	// WriteAt writes p at offset off.
	WriteAt(p []byte, off int64) error
	// Deallocate releases n bytes at off as far as the store's granularity
	// allows; every byte of the range reads as zero afterwards.
	Deallocate(off, n int64) error
	// Mapped reports whether the byte at off is allocated, and how many
	// bytes from off (at most n) share that state.
	Mapped(off, n int64) (mapped bool, run int64, err error)
	// Sync makes completed writes durable.
	Sync() error
	// Close releases the store.
	Close() error
	// Granularity is the deallocation unit in bytes: ranges smaller than
	// it, or not aligned to it, are zeroed rather than released.
	Granularity() int64
	// VolatileCache reports whether completed writes may be lost without
	// Sync (a write-back cache: WCE=1 in the caching mode page).
	VolatileCache() bool
}

// Memory store geometry: the capacity is cut into chunks allocated on
// first write; chunk pointers live in leaves of leafLen, allocated on
// first write too, so an untouched disk costs one pointer per 64 MiB.
const (
	chunkShift = 16
	chunkSize  = 1 << chunkShift
	leafShift  = 10
	leafLen    = 1 << leafShift
)

// chunk is one allocated piece of a memory store. mu orders readers and
// writers of data; dead is set (under mu) when the chunk has been
// deallocated and unlinked, so that a writer holding a stale pointer
// retries instead of writing into a chunk nobody will read again.
type chunk struct {
	mu   sync.RWMutex
	dead bool
	data [chunkSize]byte
}

type leaf [leafLen]atomic.Pointer[chunk]

// memStore is a sparse in-memory store.
type memStore struct {
	size   int64
	leaves []atomic.Pointer[leaf]
	// allocated counts live chunks.
	allocated atomic.Int64
}

func newMemStore(size int64) *memStore {
	chunks := (size + chunkSize - 1) >> chunkShift
	return &memStore{size: size, leaves: make([]atomic.Pointer[leaf], (chunks+leafLen-1)>>leafShift)}
}

// slot returns the pointer slot of chunk ci, creating its leaf if create.
func (m *memStore) slot(ci int64, create bool) *atomic.Pointer[chunk] {
	lp := &m.leaves[ci>>leafShift]
	l := lp.Load()
	if l == nil {
		if !create {
			return nil
		}
		nl := new(leaf)
		if lp.CompareAndSwap(nil, nl) {
			l = nl
		} else {
			l = lp.Load()
		}
	}
	return &l[ci&(leafLen-1)]
}

func (m *memStore) load(ci int64) *chunk {
	s := m.slot(ci, false)
	if s == nil {
		return nil
	}
	return s.Load()
}

// forEach calls fn for each chunk-sized piece of [off, off+n): chunk index,
// offset inside the chunk, and the piece's position in the range.
func forEach(off, n int64, fn func(ci int64, in int, pos, l int64) error) error {
	pos := int64(0)
	for pos < n {
		o := off + pos
		ci := o >> chunkShift
		in := int(o & (chunkSize - 1))
		l := min(int64(chunkSize-in), n-pos)
		if err := fn(ci, in, pos, l); err != nil {
			return err
		}
		pos += l
	}
	return nil
}

func (m *memStore) ReadAt(p []byte, off int64) error {
	pos := 0
	for pos < len(p) {
		o := off + int64(pos)
		ci := o >> chunkShift
		in := int(o & (chunkSize - 1))
		l := min(chunkSize-in, len(p)-pos)
		dst := p[pos : pos+l]
		if c := m.load(ci); c == nil {
			clear(dst)
		} else {
			c.mu.RLock()
			if c.dead {
				clear(dst)
			} else {
				copy(dst, c.data[in:in+l])
			}
			c.mu.RUnlock()
		}
		pos += l
	}
	return nil
}

// lockChunk returns chunk ci locked for writing, allocating it if needed.
func (m *memStore) lockChunk(ci int64) *chunk {
	s := m.slot(ci, true)
	for {
		c := s.Load()
		if c == nil {
			nc := new(chunk)
			if s.CompareAndSwap(nil, nc) {
				m.allocated.Add(1)
				c = nc
			} else {
				continue
			}
		}
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock()
	}
}

func (m *memStore) WriteAt(p []byte, off int64) error {
	pos := 0
	for pos < len(p) {
		o := off + int64(pos)
		ci := o >> chunkShift
		in := int(o & (chunkSize - 1))
		l := min(chunkSize-in, len(p)-pos)
		c := m.lockChunk(ci)
		copy(c.data[in:in+l], p[pos:pos+l])
		c.mu.Unlock()
		pos += l
	}
	return nil
}

// Deallocate unlinks whole chunks and zeroes partial ones.
func (m *memStore) Deallocate(off, n int64) error {
	return forEach(off, n, func(ci int64, in int, _, l int64) error {
		s := m.slot(ci, false)
		if s == nil {
			return nil
		}
		c := s.Load()
		if c == nil {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.dead {
			return nil
		}
		if in == 0 && l == chunkSize {
			c.dead = true
			if s.CompareAndSwap(c, nil) {
				m.allocated.Add(-1)
			}
			return nil
		}
		clear(c.data[in : in+int(l)])
		return nil
	})
}

func (m *memStore) Mapped(off, n int64) (bool, int64, error) {
	first := m.load(off>>chunkShift) != nil
	run := int64(0)
	for run < n {
		o := off + run
		ci := o >> chunkShift
		if m.leaves[ci>>leafShift].Load() == nil && !first {
			// A whole absent leaf: skip to its end.
			end := ((ci>>leafShift)+1)<<(leafShift+chunkShift) - o
			run += end
			continue
		}
		if (m.load(ci) != nil) != first {
			break
		}
		run += chunkSize - (o & (chunkSize - 1))
	}
	return first, min(run, n), nil
}

func (m *memStore) Sync() error         { return nil }
func (m *memStore) Close() error        { return nil }
func (m *memStore) Granularity() int64  { return chunkSize }
func (m *memStore) VolatileCache() bool { return false }
