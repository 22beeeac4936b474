package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sanbridge/sanbridge/iscsi"
)

// The graceful stop (the end of Serve): no new connection or login is
// accepted; every session is asked to log out (Async Message, RFC 7143
// 11.9.1); an initiator that logs out gets the answers to its commands
// in flight first (the engine answers a logout only once its running
// commands are answered), one that does not is dropped after its
// DefaultTime2Wait. Once no session is left, or DrainTimeout passed, the
// engine shuts down: whatever remains is closed, and every command still
// at a device is waited for before the devices close.

// defaultDrainTimeout bounds the graceful stop.
const defaultDrainTimeout = 15 * time.Second

// stop stops the gateway gracefully.
func (b *Bridge) stop() error {
	b.mu.Lock()
	b.stopping = true
	for _, pl := range b.listeners {
		pl.closing.Store(true)
	}
	b.mu.Unlock()
	b.srv.StopLogins()
	n := b.srv.RequestLogout(func(iscsi.SessionDetail) bool { return true })
	drain := b.opts.DrainTimeout
	if drain <= 0 {
		drain = defaultDrainTimeout
	}
	if n > 0 {
		b.log.Info().Int("sessions", n).Dur("within", drain).Msg("stopping: sessions asked to log out")
		if !b.sessions.waitNone(drain) {
			left := b.srv.SessionDetails()
			inflight := 0
			for _, d := range left {
				inflight += d.Tasks
			}
			b.log.Warn().Int("sessions", len(left)).Int("commands_in_flight", inflight).Msg("stopping: sessions left after the drain timeout are closed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("iscsi: shutdown: %w", err)
	}
	return nil
}

// sessionCount counts the live sessions (normal and discovery) through
// the engine's hooks, so that the stop can wait for none.
type sessionCount struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed and replaced at every change
}

func newSessionCount() *sessionCount {
	return &sessionCount{changed: make(chan struct{})}
}

func (c *sessionCount) add(d int) {
	c.mu.Lock()
	c.n += d
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// waitNone waits until no session is left, at most d; it reports
// whether none is.
func (c *sessionCount) waitNone(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		c.mu.Lock()
		n, ch := c.n, c.changed
		c.mu.Unlock()
		if n <= 0 {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}
