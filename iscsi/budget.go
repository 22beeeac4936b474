package iscsi

import (
	"sync"
	"sync/atomic"
)

// memBudget bounds the command data (read and write buffers) that all
// sessions of a server hold together. A command reserves its buffers'
// size before anything is allocated, on the reading goroutine, without
// ever waiting: when the reservation does not fit, the command is
// answered TASK SET FULL at once. The rules, with n the sessions that
// hold memory or were refused since they last got some (counting the
// one asking) and fair = limit / n:
//
//   - the total never exceeds limit;
//   - above the high-water mark (3/4 of limit) a session only gets more
//     while it holds at most limit / (n+1), the share it would have if
//     one more session came: so the last quarter stays free for
//     newcomers and light sessions, whom a heavy one cannot crowd out;
//   - no session holds more than max(fair, floor), except that a session
//     holding nothing may always start one command.
//
// Above the high-water mark the CmdSN window of a session holding more
// than fair stops opening as its commands complete (session.release):
// the initiator sees MaxCmdSN stand still and sends less, down to one
// command in flight; the withheld credits come back once the budget is
// below the mark again.
type memBudget struct {
	limit int64
	high  int64
	floor int64

	inflight atomic.Int64
	peak     atomic.Int64
	// active counts the sessions that hold memory or want some.
	active atomic.Int32
	// withheld is the CmdSN credits withheld from all sessions.
	withheld atomic.Int64
}

func newMemBudget(l *Limits) *memBudget {
	return &memBudget{limit: l.Memory, high: l.Memory - l.Memory/4, floor: l.SessionMemoryMin}
}

// sessionMem is one session's part of the budget.
type sessionMem struct {
	mu      sync.Mutex
	held    int64
	wanting bool // refused since it last got memory
	active  bool // counted in memBudget.active
}

// refusal says why a reservation failed.
type refusal uint8

const (
	refusedNone  refusal = iota
	refusedTotal         // the whole budget is in use
	refusedHigh          // above the high-water mark and not under the fair share
	refusedShare         // beyond the session's share
	refusedNever         // larger than the whole budget: can never fit
)

// String names the refusal for logs.
func (r refusal) String() string {
	switch r {
	case refusedTotal:
		return "memory budget exhausted"
	case refusedHigh:
		return "memory above the high-water mark, kept for sessions holding less"
	case refusedShare:
		return "session holds its share of the memory budget"
	case refusedNever:
		return "command larger than the memory budget"
	}
	return "none"
}

// setActive updates the session's count in active; sm.mu held.
func (b *memBudget) setActiveLocked(sm *sessionMem) {
	act := sm.held > 0 || sm.wanting
	if act != sm.active {
		sm.active = act
		if act {
			b.active.Add(1)
		} else {
			b.active.Add(-1)
		}
	}
}

// sharersLocked returns how many sessions share the budget, counting
// sm's; sm.mu held.
func (b *memBudget) sharersLocked(sm *sessionMem) int64 {
	n := int64(b.active.Load())
	if !sm.active {
		n++
	}
	return max(n, 1)
}

// fairLocked returns the fair share of sm's session; sm.mu held.
func (b *memBudget) fairLocked(sm *sessionMem) int64 {
	return b.limit / b.sharersLocked(sm)
}

// reserve takes n bytes for the session, or says why not.
func (b *memBudget) reserve(sm *sessionMem, n int64) refusal {
	if n <= 0 {
		return refusedNone
	}
	if n > b.limit {
		return refusedNever
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sharers := b.sharersLocked(sm)
	if sm.held > 0 && sm.held+n > max(b.limit/sharers, b.floor) {
		return b.refuseLocked(sm, refusedShare)
	}
	for {
		cur := b.inflight.Load()
		if cur+n > b.limit {
			return b.refuseLocked(sm, refusedTotal)
		}
		if cur+n > b.high && sm.held+n > b.limit/(sharers+1) {
			return b.refuseLocked(sm, refusedHigh)
		}
		if b.inflight.CompareAndSwap(cur, cur+n) {
			b.notePeak(cur + n)
			break
		}
	}
	sm.held += n
	sm.wanting = false
	b.setActiveLocked(sm)
	return refusedNone
}

func (b *memBudget) refuseLocked(sm *sessionMem, r refusal) refusal {
	sm.wanting = true
	b.setActiveLocked(sm)
	return r
}

// unreserve gives n bytes back and reports whether windows withheld
// elsewhere may open again.
func (b *memBudget) unreserve(sm *sessionMem, n int64) (reopen bool) {
	if n <= 0 {
		return false
	}
	sm.mu.Lock()
	sm.held -= n
	b.setActiveLocked(sm)
	sm.mu.Unlock()
	left := b.inflight.Add(-n)
	return left <= b.high && b.withheld.Load() > 0
}

// notePeak records the bytes reserved for the peak gauge.
func (b *memBudget) notePeak(total int64) {
	for {
		p := b.peak.Load()
		if total <= p || b.peak.CompareAndSwap(p, total) {
			return
		}
	}
}

// squeezed reports whether the session should not get more CmdSN
// credits: the budget is above its high-water mark and the session holds
// more than its fair share.
func (b *memBudget) squeezed(sm *sessionMem) bool {
	if b.inflight.Load() <= b.high {
		return false
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.held > b.fairLocked(sm)
}

// leave forgets the session's wish for memory when it ends.
func (b *memBudget) leave(sm *sessionMem) {
	sm.mu.Lock()
	sm.wanting = false
	b.setActiveLocked(sm)
	sm.mu.Unlock()
}
