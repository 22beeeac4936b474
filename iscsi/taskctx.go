package iscsi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// taskCtx is the context a task's Execute runs under: done when the task
// is aborted (a task management function, NexusControl.AbortTasks) or
// its session ends, and never otherwise. It has no deadline and no
// values; the engine cancels it explicitly rather than through a parent.
//
// It lives inside the pooled task, so handing it to the handler
// allocates nothing, and its channel, made on the first Done, is kept
// for the next command as long as it was not closed. Hence a handler must
// not use the context after its Execute returned.
type taskCtx struct {
	mu   sync.Mutex
	done chan struct{} // nil until Done or cancel
	err  error
}

// closedChan is the Done channel of a task cancelled before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Deadline implements context.Context: a task has none.
func (c *taskCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (c *taskCtx) Done() <-chan struct{} {
	c.mu.Lock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	d := c.done
	c.mu.Unlock()
	return d
}

// Err implements context.Context.
func (c *taskCtx) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	return err
}

// Value implements context.Context: a task context carries no values.
func (c *taskCtx) Value(any) any { return nil }

// String describes the context for debugging (as the context package's
// own types do).
func (c *taskCtx) String() string { return "iscsi.taskContext" }

// cancel ends the context with context.Canceled; later calls do nothing.
func (c *taskCtx) cancel() {
	c.mu.Lock()
	if c.err == nil {
		c.err = context.Canceled
		if c.done == nil {
			c.done = closedChan
		} else {
			close(c.done)
		}
	}
	c.mu.Unlock()
}

// reusable returns the channel the next command on this task may keep:
// the current one unless it was closed.
func (c *taskCtx) reusable() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil
	}
	return c.done
}

// abortWait counts the aborted running tasks one abort waits for: one
// reference per task plus one held while tasks are being collected, so
// that done cannot close before every session was looked at.
type abortWait struct {
	n    atomic.Int32
	done chan struct{}
}

func newAbortWait() *abortWait {
	w := &abortWait{done: make(chan struct{})}
	w.n.Store(1)
	return w
}

// add counts one more task to wait for.
func (w *abortWait) add() { w.n.Add(1) }

// release drops one reference; the last closes done.
func (w *abortWait) release() {
	if w.n.Add(-1) == 0 {
		close(w.done)
	}
}
