package iscsi

import (
	"math/bits"
	"sync"
)

// bufPool recycles data buffers in power-of-two size classes from 4 KiB
// to 16 MiB, so steady-state I/O allocates nothing. Larger requests are
// allocated and dropped.
type bufPool struct {
	classes [13]sync.Pool // 4K << i
}

const (
	minBufShift = 12
	maxPooled   = 4096 << 12
)

// pbuf is a pooled buffer; b has the requested length.
type pbuf struct {
	b     []byte
	class int
}

func (p *bufPool) get(n int) *pbuf {
	if n > maxPooled {
		return &pbuf{b: make([]byte, n), class: -1}
	}
	c := 0
	if n > 1<<minBufShift {
		c = bits.Len(uint(n-1)) - minBufShift
	}
	if v := p.classes[c].Get(); v != nil {
		pb := v.(*pbuf)
		pb.b = pb.b[:n]
		return pb
	}
	return &pbuf{b: make([]byte, n, 1<<(c+minBufShift)), class: c}
}

func (p *bufPool) put(pb *pbuf) {
	if pb == nil || pb.class < 0 {
		return
	}
	p.classes[pb.class].Put(pb)
}
