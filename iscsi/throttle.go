package iscsi

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// authThrottle counts failed CHAP authentications per source (address or
// IPv6 /64) and per initiator name, and says how long the answer to the
// next attempt waits and whether the source or name is locked out (see
// AuthLimits). Its table is bounded: the least recently failed entries
// go first when it is full, and entries expire Forget after their last
// failure. The waiting itself is the login's own goroutine's (bounded by
// the pending-login limits); the table never sleeps.
type authThrottle struct {
	cfg AuthLimits
	now func() time.Time

	mu      sync.Mutex
	entries map[authKey]*list.Element // of *authEntry
	lru     list.List                 // front: most recently failed
}

// authKey is a source or an initiator name (the other field zero).
type authKey struct {
	src  netip.Prefix
	name string
}

type authEntry struct {
	key         authKey
	fails       int
	last        time.Time
	lockedUntil time.Time
}

func newAuthThrottle(cfg AuthLimits, now func() time.Time) *authThrottle {
	return &authThrottle{cfg: cfg, now: now, entries: make(map[authKey]*list.Element)}
}

// keys returns the table keys of a login: its source and its name.
func authKeys(src netip.Prefix, name string) [2]authKey {
	return [2]authKey{{src: src}, {name: name}}
}

// lookupLocked returns the live entry of k, dropping it when expired.
func (a *authThrottle) lookupLocked(k authKey, now time.Time) *authEntry {
	el := a.entries[k]
	if el == nil {
		return nil
	}
	e := el.Value.(*authEntry)
	if !e.lockedUntil.IsZero() && !now.Before(e.lockedUntil) {
		// The lockout is over: failures count on from the first delay.
		e.lockedUntil = time.Time{}
		e.fails = min(e.fails, a.cfg.FreeFailures)
	}
	if e.lockedUntil.IsZero() && now.Sub(e.last) >= a.cfg.Forget {
		a.lru.Remove(el)
		delete(a.entries, k)
		return nil
	}
	return e
}

// check returns how long the answer to an authentication attempt from
// src with initiator name waits, and whether either is locked out (then
// until when).
func (a *authThrottle) check(src netip.Prefix, name string) (delay time.Duration, lockedUntil time.Time) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range authKeys(src, name) {
		e := a.lookupLocked(k, now)
		if e == nil {
			continue
		}
		if e.lockedUntil.After(lockedUntil) {
			lockedUntil = e.lockedUntil
		}
		delay = max(delay, a.delayFor(e.fails))
	}
	return delay, lockedUntil
}

// delayFor is the wait after fails failures: none up to FreeFailures,
// then Delay doubling per failure, at most MaxDelay.
func (a *authThrottle) delayFor(fails int) time.Duration {
	n := fails - a.cfg.FreeFailures
	if n < 0 {
		return 0
	}
	d := a.cfg.Delay
	for ; n > 0 && d < a.cfg.MaxDelay; n-- {
		d *= 2
	}
	return min(d, a.cfg.MaxDelay)
}

// fail counts a failed authentication of src and name and reports
// whether it started a lockout of either.
func (a *authThrottle) fail(src netip.Prefix, name string) (locked bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range authKeys(src, name) {
		e := a.lookupLocked(k, now)
		if e == nil {
			for len(a.entries) >= a.cfg.TableSize {
				old := a.lru.Back()
				a.lru.Remove(old)
				delete(a.entries, old.Value.(*authEntry).key)
			}
			e = &authEntry{key: k}
			a.entries[k] = a.lru.PushFront(e)
		} else {
			a.lru.MoveToFront(a.entries[k])
		}
		e.fails++
		e.last = now
		if e.lockedUntil.IsZero() && e.fails >= a.cfg.LockoutAfter {
			e.lockedUntil = now.Add(a.cfg.Lockout)
			locked = true
		}
	}
	return locked
}

// succeed forgets the failures of the initiator name (not of the source:
// an attacker's own valid login must not wipe its guesses).
func (a *authThrottle) succeed(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := authKey{name: name}
	if el := a.entries[k]; el != nil && el.Value.(*authEntry).lockedUntil.IsZero() {
		a.lru.Remove(el)
		delete(a.entries, k)
	}
}

// size returns the number of entries (tests).
func (a *authThrottle) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}
