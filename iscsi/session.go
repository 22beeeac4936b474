package iscsi

import (
	"context"
	"sync"
	"sync/atomic"
)

// session is one iSCSI session. With MaxConnections=1 it has exactly one
// connection, which owns the reading side; the session owns the CmdSN
// window and the task table (RFC 7143 4.2.2.1).
type session struct {
	srv       *Server
	conn      *conn
	nexus     Nexus
	discovery bool
	target    *Target
	tsih      uint16
	params    Params
	window    uint32
	// counted: the session counts toward the session limits (under the
	// server's mu).
	counted bool

	// cmdsn packs ExpCmdSN (high) and MaxCmdSN (low) so both are read
	// together and MaxCmdSN never appears to shrink.
	cmdsn atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	tasks   map[uint32]*task // live tasks by ITT
	running int              // tasks handed to the handler
	ordered bool             // an ORDERED task is running
	waiting []*task          // issued in CmdSN order, held by task attributes
	taskWG  sync.WaitGroup   // executing tasks
	ended   chan struct{}    // closed when the connection has finished

	// Executor goroutines, started as the load needs them and reused,
	// so steady-state commands spawn nothing.
	work    chan *task
	workers atomic.Int32
	idle    atomic.Int32

	// mem is the session's part of the server's memory budget.
	mem sessionMem
	// withheld is CmdSN credits not given back under memory pressure.
	withheld atomic.Int32
	// tmfs counts the task management requests waiting for their tasks.
	tmfs atomic.Int32
}

func newSession(srv *Server, r *loginResult, window uint32) *session {
	ss := &session{
		srv:       srv,
		discovery: r.Discovery,
		target:    r.Target,
		params:    r.Params,
		window:    window,
		tasks:     make(map[uint32]*task),
		ended:     make(chan struct{}),
		work:      make(chan *task, window),
	}
	ss.nexus = Nexus{InitiatorName: r.InitiatorName, ISID: r.ISID}
	ss.nexus.port = ss.nexus.InitiatorPort()
	if r.Target != nil {
		ss.nexus.TargetName = r.Target.Name
	}
	ss.cmdsn.Store(uint64(r.ExpCmdSN)<<32 | uint64(r.ExpCmdSN+window-1))
	return ss
}

// handler returns the handler a normal session attaches to, nil for
// discovery sessions and targets without one.
func (ss *session) handler() Handler {
	if ss.discovery || ss.target == nil {
		return nil
	}
	return ss.target.Handler
}

// AbortTasks implements NexusControl.
func (ss *session) AbortTasks(lun LUN, all bool) {
	abortTasks(context.Background(), []*session{ss}, func(t *task) bool { return all || t.lun == lun })
}

func (ss *session) key() sessionKey {
	return sessionKey{initiator: ss.nexus.InitiatorName, isid: ss.nexus.ISID, target: ss.nexus.TargetName}
}

func (ss *session) info() SessionInfo {
	ss.mu.Lock()
	n := len(ss.tasks)
	ss.mu.Unlock()
	remote := ""
	if ss.conn != nil {
		remote = ss.conn.nc.RemoteAddr().String()
	}
	return SessionInfo{Nexus: ss.nexus, Discovery: ss.discovery, Remote: remote, Tasks: n}
}

// expMax returns ExpCmdSN and MaxCmdSN.
func (ss *session) expMax() (exp, maxSN uint32) {
	v := ss.cmdsn.Load()
	return uint32(v >> 32), uint32(v)
}

// snLess is serial number arithmetic (RFC 1982) on 32-bit numbers.
func snLess(a, b uint32) bool { return a != b && int32(a-b) < 0 }

// checkCmdSN classifies a non-immediate CmdSN against the window
// (RFC 7143 4.2.2.1): inOrder when it equals ExpCmdSN, ahead when within
// (ExpCmdSN, MaxCmdSN], and outside otherwise (to be silently ignored).
func (ss *session) checkCmdSN(sn uint32) (inOrder, ahead bool) {
	exp, maxSN := ss.expMax()
	if sn == exp {
		return true, false
	}
	if snLess(exp, sn) && !snLess(maxSN, sn) {
		return false, true
	}
	return false, false
}

// advance consumes one CmdSN: ExpCmdSN moves, MaxCmdSN stays until the
// command completes (window backpressure).
func (ss *session) advance() {
	for {
		v := ss.cmdsn.Load()
		n := (v>>32+1)<<32 | v&0xffffffff
		if ss.cmdsn.CompareAndSwap(v, n&0xffffffffffffffff) {
			return
		}
	}
}

// release opens the window by one as a command completes, unless the
// server's memory budget is above its high-water mark and the session
// holds more than its fair share: then the credit is withheld, as long as
// the initiator keeps at least one (so it can always send a command,
// whose completion gives the credits back once the pressure is gone).
// Credits withheld earlier are given back with the first opening.
func (ss *session) release() {
	mem := &ss.srv.mem
	if mem.squeezed(&ss.mem) {
		exp, maxSN := ss.expMax()
		if int32(maxSN-exp) >= 0 { // MaxCmdSN - ExpCmdSN + 1 >= 1
			ss.withheld.Add(1)
			mem.withheld.Add(1)
			ss.srv.lim.windowWithheld.Add(1)
			return
		}
	}
	ss.open(1)
}

// open moves MaxCmdSN by n plus the credits withheld so far.
func (ss *session) open(n uint32) {
	if w := ss.withheld.Swap(0); w > 0 {
		ss.srv.mem.withheld.Add(-int64(w))
		n += uint32(w)
	}
	if n == 0 {
		return
	}
	for {
		v := ss.cmdsn.Load()
		nv := v&^0xffffffff | uint64(uint32(v)+n)
		if ss.cmdsn.CompareAndSwap(v, nv) {
			return
		}
	}
}

// reopen gives back the credits withheld from the session and tells the
// initiator with a NOP-In (RFC 7143 11.19: ITT and TTT 0xffffffff, no
// answer expected) unless responses are queued that will carry the new
// MaxCmdSN anyway.
func (ss *session) reopen() {
	if ss.withheld.Load() == 0 {
		return
	}
	ss.open(0)
	if c := ss.conn; c != nil && c.out != nil && len(c.out) == 0 {
		c.tryEnqueue(outItem{kind: itemPDU, p: &NOPIn{ITT: reservedTag, TTT: reservedTag}})
	}
}

// terminate ends the session from outside (reinstatement, reset).
func (ss *session) terminate() {
	if ss.conn != nil {
		ss.conn.close()
	}
}

// wait blocks until the session's connection has finished.
func (ss *session) wait(ctx context.Context) error {
	select {
	case <-ss.ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// addResult is what addTask did.
type addResult uint8

const (
	added        addResult = iota
	addDuplicate           // the ITT is in use
	addFull                // the table holds max tasks already
)

// addTask registers t under its ITT unless the ITT is in use or the
// table holds max tasks.
func (ss *session) addTask(t *task, max int) addResult {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, dup := ss.tasks[t.itt]; dup {
		return addDuplicate
	}
	if len(ss.tasks) >= max {
		return addFull
	}
	ss.tasks[t.itt] = t
	return added
}

// collectingTask returns the live task with the ITT if it still waits
// for write data. Such a task belongs to the serve goroutine, so the
// pointer stays valid; tasks past that stage may be recycled by others.
func (ss *session) collectingTask(itt uint32) *task {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t := ss.tasks[itt]
	if t == nil || t.state != taskCollecting || t.aborted.Load() {
		return nil
	}
	return t
}

// hasTask reports whether a live task has the ITT and LUN. The check is
// made under the lock: a task pointer read outside it may be recycled.
func (ss *session) hasTask(itt uint32, lun LUN) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t := ss.tasks[itt]
	return t != nil && t.lun == lun
}

// retire marks t done and drops it from the table (its ITT may be
// reused afterwards), for a task that ends without reaching the handler.
func (ss *session) retire(t *task) {
	ss.mu.Lock()
	t.state = taskDone
	if ss.tasks[t.itt] == t {
		delete(ss.tasks, t.itt)
	}
	ss.mu.Unlock()
}

// issue hands a task whose data is complete to the handler, in CmdSN
// order, honouring SAM task attributes: SIMPLE tasks run concurrently, an
// ORDERED task waits for all earlier ones and holds back later ones,
// HEAD OF QUEUE runs at once. Called on the connection's reader
// goroutine, which runs the task itself when nothing else runs, no
// other PDU is waiting to be read and the handler says the command
// cannot block (Inliner).
func (ss *session) issue(t *task) {
	ss.mu.Lock()
	t.state = taskQueued
	if t.attr != AttrHeadOfQueue && (ss.ordered || len(ss.waiting) > 0 || (t.attr == AttrOrdered && ss.running > 0)) {
		ss.waiting = append(ss.waiting, t)
		ss.mu.Unlock()
		return
	}
	if ss.running == 0 && ss.inline(t) {
		ss.runLocked(t)
		ss.mu.Unlock()
		ss.conn.execute(t)
		return
	}
	ss.startLocked(t)
	ss.mu.Unlock()
}

// inlineMaxRead bounds the data-in of a command the reader runs itself:
// it also writes the response, and a socket write larger than what the
// peer's receive window holds would keep it from reading meanwhile.
const inlineMaxRead = 64 << 10

// inline reports whether the reader may run t itself: the connection
// has no further PDU received already (which a hand-off would let it
// dispatch meanwhile), t's data-in is small, and the handler vouches
// that t cannot block.
func (ss *session) inline(t *task) bool {
	if t.aborted.Load() || t.readLen > inlineMaxRead || ss.conn.rd.Buffered() > 0 {
		return false
	}
	in, ok := ss.handler().(Inliner)
	return ok && in.Inline(t.command())
}

// runLocked counts t as running.
func (ss *session) runLocked(t *task) {
	ss.running++
	if t.attr == AttrOrdered {
		ss.ordered = true
	}
	t.state = taskRunning
	ss.taskWG.Add(1)
}

func (ss *session) startLocked(t *task) {
	ss.runLocked(t)
	if ss.idle.Load() <= int32(len(ss.work)) && ss.workers.Load() < int32(ss.window) {
		ss.workers.Add(1)
		go ss.worker()
	}
	select {
	case ss.work <- t:
	default:
		// More running tasks than the window (immediate commands):
		// run this one on its own goroutine.
		go ss.conn.execute(t)
	}
}

// worker executes tasks until the session closes its work queue.
func (ss *session) worker() {
	for {
		ss.idle.Add(1)
		t, ok := <-ss.work
		ss.idle.Add(-1)
		if !ok {
			return
		}
		ss.conn.execute(t)
	}
}

// finished is called when the handler returned for t: in one critical
// section it marks t done, drops it from the table (its ITT may be reused
// once the response is out) and starts tasks it held back. It reports
// whether t was aborted meanwhile. The caller calls taskWG.Done once t's
// response is on its way, so that whoever waits for the running tasks
// (logout, the end of the connection) sends after it.
func (ss *session) finished(t *task) (aborted bool) {
	ss.mu.Lock()
	aborted = t.aborted.Load()
	t.state = taskDone
	for _, w := range t.waits {
		w.release()
	}
	t.waits = nil
	if ss.tasks[t.itt] == t {
		delete(ss.tasks, t.itt)
	}
	ss.running--
	if t.attr == AttrOrdered {
		ss.ordered = false
	}
	for len(ss.waiting) > 0 {
		n := ss.waiting[0]
		if ss.ordered || (n.attr == AttrOrdered && ss.running > 0) {
			break
		}
		ss.waiting = ss.waiting[1:]
		if n.aborted.Load() {
			continue
		}
		ss.startLocked(n)
	}
	if len(ss.waiting) == 0 {
		ss.waiting = nil
	}
	ss.mu.Unlock()
	return aborted
}
