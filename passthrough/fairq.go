package passthrough

import (
	"context"
	"sync"
)

// fairQueue bounds the commands a logical unit has in flight to its
// device's queue depth. While slots are free a command takes one at once
// (no allocation, one lock). When the queue is full, commands wait per
// I_T nexus and each freed slot goes to the next nexus in round-robin
// order, so that an initiator keeping a hundred commands queued does not
// make another one with a single command wait behind all of them: that
// command gets one of the next slots freed, after at most one command of
// every other waiting nexus.
type fairQueue struct {
	mu   sync.Mutex
	free int
	// ring holds the nexuses with waiting commands, in turn order; next
	// is the index of the one served next.
	ring []*fairLine
	next int
	// lines finds a nexus' line while it has waiting commands.
	lines map[any]*fairLine
}

// fairLine is one nexus' waiting commands, oldest first.
type fairLine struct {
	key     any
	waiters []*fairWaiter
}

// fairWaiter is one waiting command; ready is closed when it is granted
// a slot.
type fairWaiter struct {
	ready   chan struct{}
	granted bool
}

var waiterPool = sync.Pool{New: func() any { return &fairWaiter{} }}

func newFairQueue(depth int) *fairQueue {
	return &fairQueue{free: max(depth, 1), lines: make(map[any]*fairLine)}
}

// acquire takes a slot for a command of the nexus key, waiting for its
// turn while the queue is full. It returns false, holding nothing, when
// ctx ends first.
func (q *fairQueue) acquire(ctx context.Context, key any) bool {
	q.mu.Lock()
	if q.free > 0 {
		q.free--
		q.mu.Unlock()
		return true
	}
	w := waiterPool.Get().(*fairWaiter)
	w.ready = make(chan struct{})
	w.granted = false
	l := q.lines[key]
	if l == nil {
		l = &fairLine{key: key}
		q.lines[key] = l
		q.ring = append(q.ring, l)
	}
	l.waiters = append(l.waiters, w)
	q.mu.Unlock()
	select {
	case <-w.ready:
		waiterPool.Put(w)
		return true
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.granted {
		// The slot came as the context ended: pass it on.
		q.mu.Unlock()
		waiterPool.Put(w)
		q.release()
		return false
	}
	q.dropLocked(l, w)
	q.mu.Unlock()
	waiterPool.Put(w)
	return false
}

// release frees a slot: it goes to the next waiting nexus' oldest
// command, or back to the free count when nobody waits.
func (q *fairQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ring) == 0 {
		q.free++
		return
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	l := q.ring[q.next]
	w := l.waiters[0]
	l.waiters[0] = nil
	l.waiters = l.waiters[1:]
	w.granted = true
	close(w.ready)
	if len(l.waiters) == 0 {
		q.removeLineLocked(q.next)
	} else {
		q.next++
	}
}

// dropLocked removes a cancelled waiter from its line.
func (q *fairQueue) dropLocked(l *fairLine, w *fairWaiter) {
	for i, o := range l.waiters {
		if o == w {
			l.waiters = append(l.waiters[:i:i], l.waiters[i+1:]...)
			break
		}
	}
	if len(l.waiters) > 0 {
		return
	}
	for i, o := range q.ring {
		if o == l {
			q.removeLineLocked(i)
			return
		}
	}
}

// removeLineLocked takes the empty line at ring index i out of the turn
// order; the line after it keeps its turn.
func (q *fairQueue) removeLineLocked(i int) {
	delete(q.lines, q.ring[i].key)
	copy(q.ring[i:], q.ring[i+1:])
	q.ring[len(q.ring)-1] = nil
	q.ring = q.ring[:len(q.ring)-1]
	if q.next > i {
		q.next--
	}
}
