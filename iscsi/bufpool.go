package iscsi

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// bufPool recycles data buffers in power-of-two size classes from 4 KiB
// to 16 MiB, so steady-state I/O allocates nothing; larger buffers are
// allocated exactly and dropped. Idle buffers count against the memory
// budget like busy ones: a buffer is kept idle only if busy plus idle
// bytes stay within the budget, a new allocation first evicts idle
// buffers (largest first) when they would not, and buffers that stay
// idle for a trim period are dropped. (Dropping large buffers whenever
// the budget is above its high-water mark, as sync.Pool-based designs
// do, turns every such command into garbage: with 8 sessions of 1 MiB
// commands under a 64 MiB budget the heap peaked 146 MiB above the
// baseline that way, against the budget here.)
type bufPool struct {
	mem     *memBudget
	cached  atomic.Int64 // bytes of idle buffers
	classes [nBufClasses]freeList

	trimMu    sync.Mutex
	trimTimer *time.Timer
}

const (
	minBufShift = 12
	nBufClasses = 13
	maxPooled   = 4096 << (nBufClasses - 1)
	// maxIdlePerClass bounds the idle buffers of one class.
	maxIdlePerClass = 1024
	// bufTrimPeriod: buffers idle that long are dropped.
	bufTrimPeriod = 2 * time.Second
)

// freeList is one class's idle buffers, most recently freed last.
type freeList struct {
	mu   sync.Mutex
	bufs []*pbuf
	// low is the fewest buffers the list held since the last trim: that
	// many were not needed in the period.
	low int
}

// pbuf is a pooled buffer; b has the requested length.
type pbuf struct {
	b     []byte
	class int
}

// bufClass returns the class of an n-byte buffer, -1 above maxPooled.
func bufClass(n int) int {
	if n > maxPooled {
		return -1
	}
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// bufCharge is what an n-byte buffer costs the budget: its class size.
func bufCharge(n uint32) int64 {
	if n == 0 {
		return 0
	}
	c := bufClass(int(n))
	if c < 0 {
		return int64(n)
	}
	return 1 << (c + minBufShift)
}

// get returns an n-byte buffer. The caller has reserved bufCharge(n)
// from the budget.
func (p *bufPool) get(n int) *pbuf {
	c := bufClass(n)
	if c >= 0 {
		fl := &p.classes[c]
		fl.mu.Lock()
		if k := len(fl.bufs); k > 0 {
			pb := fl.bufs[k-1]
			fl.bufs[k-1] = nil
			fl.bufs = fl.bufs[:k-1]
			fl.low = min(fl.low, k-1)
			fl.mu.Unlock()
			p.cached.Add(-(1 << (c + minBufShift)))
			pb.b = pb.b[:n]
			return pb
		}
		fl.mu.Unlock()
	}
	p.evict()
	if c < 0 {
		return &pbuf{b: make([]byte, n), class: -1}
	}
	return &pbuf{b: make([]byte, n, 1<<(c+minBufShift)), class: c}
}

// put takes a buffer back, or drops it when keeping it would not fit the
// budget. The caller has already given back its reservation.
func (p *bufPool) put(pb *pbuf) {
	if pb == nil || pb.class < 0 {
		return
	}
	size := int64(1) << (pb.class + minBufShift)
	if p.mem.inflight.Load()+p.cached.Load()+size > p.mem.limit {
		return
	}
	fl := &p.classes[pb.class]
	fl.mu.Lock()
	if len(fl.bufs) >= maxIdlePerClass {
		fl.mu.Unlock()
		return
	}
	if fl.bufs == nil {
		fl.bufs = make([]*pbuf, 0, 16)
	}
	fl.bufs = append(fl.bufs, pb)
	fl.mu.Unlock()
	p.cached.Add(size)
	p.armTrim()
}

// evict drops idle buffers, largest first, until busy plus idle fits the
// budget.
func (p *bufPool) evict() {
	for c := nBufClasses - 1; c >= 0; c-- {
		if p.mem.inflight.Load()+p.cached.Load() <= p.mem.limit {
			return
		}
		size := int64(1) << (c + minBufShift)
		fl := &p.classes[c]
		fl.mu.Lock()
		for len(fl.bufs) > 0 && p.mem.inflight.Load()+p.cached.Load() > p.mem.limit {
			k := len(fl.bufs) - 1
			fl.bufs[k] = nil
			fl.bufs = fl.bufs[:k]
			p.cached.Add(-size)
		}
		fl.low = min(fl.low, len(fl.bufs))
		fl.mu.Unlock()
	}
}

// armTrim schedules a trim unless one is pending.
func (p *bufPool) armTrim() {
	p.trimMu.Lock()
	if p.trimTimer == nil {
		p.trimTimer = time.AfterFunc(bufTrimPeriod, p.trim)
	}
	p.trimMu.Unlock()
}

// trim drops, in every class, the buffers that stayed idle through the
// whole period, and reschedules itself while idle buffers remain.
func (p *bufPool) trim() {
	left := false
	for c := range p.classes {
		fl := &p.classes[c]
		size := int64(1) << (c + minBufShift)
		fl.mu.Lock()
		drop := fl.low
		for i := 0; i < drop; i++ {
			fl.bufs[i] = nil
		}
		if drop > 0 {
			n := copy(fl.bufs, fl.bufs[drop:])
			clear(fl.bufs[n:])
			fl.bufs = fl.bufs[:n]
			p.cached.Add(-size * int64(drop))
		}
		fl.low = len(fl.bufs)
		if len(fl.bufs) > 0 {
			left = true
		}
		fl.mu.Unlock()
	}
	p.trimMu.Lock()
	p.trimTimer = nil
	p.trimMu.Unlock()
	if left {
		p.armTrim()
	}
}

// stop drops every idle buffer and cancels a pending trim.
func (p *bufPool) stop() {
	p.trimMu.Lock()
	if p.trimTimer != nil {
		p.trimTimer.Stop()
		p.trimTimer = nil
	}
	p.trimMu.Unlock()
	for c := range p.classes {
		fl := &p.classes[c]
		fl.mu.Lock()
		p.cached.Add(-int64(len(fl.bufs)) << (c + minBufShift))
		clear(fl.bufs)
		fl.bufs = fl.bufs[:0]
		fl.low = 0
		fl.mu.Unlock()
	}
}
