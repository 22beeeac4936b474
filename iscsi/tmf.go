package iscsi

import "context"

// abortMatching aborts every task of the session that match selects.
// Tasks still collecting data or waiting to run are dropped at once
// (opening the window); running tasks have their context cancelled and
// their responses suppressed, and w, when not nil, is made to wait for
// them to leave the handler, also for those aborted earlier and still
// running. It returns the number of tasks it aborted (tasks already
// done, whose responses are on their way, and tasks aborted before are
// not counted). It only takes the session's lock, never waits.
func (ss *session) abortMatching(match func(*task) bool, w *abortWait) int {
	n := 0
	var freed int64
	ss.mu.Lock()
	defer func() {
		ss.mu.Unlock()
		// After the lock: giving memory back may reopen windows, which
		// takes the server's lock (ordered before the sessions').
		ss.srv.freeMemory(ss, freed)
	}()
	for itt, t := range ss.tasks {
		if t.state == taskDone || !match(t) {
			continue
		}
		if t.state == taskRunning {
			if !t.aborted.Load() {
				t.aborted.Store(true)
				t.ctx.cancel()
				n++
			}
			// finished() sees the mark, drops the response and
			// releases the waiters.
			if w != nil {
				w.add()
				t.waits = append(t.waits, w)
			}
			continue
		}
		if t.aborted.Load() {
			continue
		}
		t.aborted.Store(true)
		n++
		if t.state == taskQueued {
			for i, q := range ss.waiting {
				if q == t {
					ss.waiting = append(ss.waiting[:i:i], ss.waiting[i+1:]...)
					break
				}
			}
		}
		// Collecting or queued: never reaches the handler. The serve
		// goroutine may still hold a pointer, so the task is left to the
		// garbage collector rather than the pool; its memory reservation
		// is given back (once: see releaseMemory).
		freed += t.charge.Swap(0)
		delete(ss.tasks, itt)
		if !t.immediate {
			ss.release()
		}
	}
	return n
}

// abortTasks aborts the tasks match selects in every session of
// sessions and waits until the aborted running ones have returned from
// the handler, or ctx ends. No session lock is held while it waits, so a
// handler may call it from inside Execute (for another nexus' tasks). It
// returns the number of tasks aborted.
func abortTasks(ctx context.Context, sessions []*session, match func(*task) bool) int {
	w := newAbortWait()
	n := 0
	for _, ss := range sessions {
		n += ss.abortMatching(match, w)
	}
	w.release()
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	return n
}

// abortAll aborts every task of the connection's session without
// waiting (the caller waits for taskWG).
func (c *conn) abortAll() {
	c.ss.abortMatching(func(*task) bool { return true }, nil)
}

// abortCollecting aborts the tasks that still wait for write data.
func (c *conn) abortCollecting() {
	c.ss.abortMatching(func(t *task) bool { return t.state == taskCollecting }, nil)
}

// handleTMF performs a task management function (RFC 7143 11.5). The
// affected tasks are aborted before the response is sent; waiting happens
// off the read loop so Data-Out and other traffic keep flowing.
func (c *conn) handleTMF(req *TaskMgmtRequest, release bool) {
	ss := c.ss
	resp := &TaskMgmtResponse{ITT: req.ITT}
	answer := func(r TMFResponse) {
		resp.Response = r
		c.log.Info().Stringer("function", req.Function).Stringer("lun", req.LUN).Stringer("response", r).Msg("task management")
		c.enqueue(outItem{kind: itemPDU, stat: true, release: release, p: resp})
	}
	h := ss.target.Handler
	lunScoped := req.Function == TMFAbortTask || req.Function == TMFAbortTaskSet ||
		req.Function == TMFClearTaskSet || req.Function == TMFLogicalUnitReset || req.Function == TMFClearACA
	if lunScoped && (h == nil || !h.HasLUN(&ss.nexus, req.LUN)) {
		answer(TMFLUNNotExist)
		return
	}
	// Which tasks the engine aborts itself: those of this session for the
	// LUN-scoped functions, every session of the target for the target
	// resets. Other I_T nexuses that see the same logical unit (under
	// whatever LUN, through whatever target) are the handler's to abort
	// (NexusControl.AbortTasks) in TaskManagement: only it knows which
	// logical unit a LUN number is for each initiator (SAM-5 7.4 CLEAR
	// TASK SET, 7.7 LOGICAL UNIT RESET: every I_T nexus of the LU).
	var sessions []*session
	var match func(*task) bool
	switch req.Function {
	case TMFAbortTask:
		if !ss.hasTask(req.RefTaskTag, req.LUN) {
			// RFC 7143 11.6.1 b): a task not found whose RefCmdSN is in
			// the window and older than this request counts as received.
			exp, maxSN := ss.expMax()
			if !snLess(req.RefCmdSN, exp) && !snLess(maxSN, req.RefCmdSN) && snLess(req.RefCmdSN, req.CmdSN) {
				answer(TMFComplete)
				return
			}
			answer(TMFTaskNotExist)
			return
		}
		sessions = []*session{ss}
		itt, lun := req.RefTaskTag, req.LUN
		match = func(t *task) bool { return t.itt == itt && t.lun == lun }
	case TMFAbortTaskSet, TMFClearTaskSet, TMFLogicalUnitReset:
		sessions = []*session{ss}
		lun := req.LUN
		match = func(t *task) bool { return t.lun == lun }
	case TMFTargetWarmReset, TMFTargetColdReset:
		if h == nil {
			answer(TMFNotSupported)
			return
		}
		sessions = c.srv.targetSessions(ss.nexus.TargetName)
		match = func(*task) bool { return true }
	case TMFTaskReassign:
		// ErrorRecoveryLevel 0 has no task allegiance to reassign.
		answer(TMFReassignUnsupported)
		return
	case TMFClearACA:
		answer(TMFNotSupported)
		return
	default:
		answer(TMFNotSupported)
		return
	}
	// Each waits on its own goroutine: bound how many (immediate
	// requests bypass the CmdSN window).
	if max := c.srv.cfg.Limits.MaxPendingTMF; int(ss.tmfs.Load()) >= max {
		c.srv.lim.tmfRejected.Add(1)
		if ok, n := c.srv.lim.logTMF.allow(); ok {
			c.log.Warn().Int("max_pending", max).Uint64("suppressed", n).Msg("task management request rejected: too many pending")
		}
		answer(TMFRejected)
		return
	}
	// Mark the tasks now, on the reading goroutine, so that commands
	// arriving after this request are not affected; wait off it, so that
	// Data-Out and other traffic keep flowing.
	w := newAbortWait()
	aborted := 0
	for _, o := range sessions {
		aborted += o.abortMatching(match, w)
	}
	w.release()
	ss.taskWG.Add(1)
	ss.tmfs.Add(1)
	go func() {
		defer ss.taskWG.Done()
		defer ss.tmfs.Add(-1)
		// The response waits for the aborted tasks to leave the handler,
		// however long that takes: answering earlier would let the
		// initiator reuse the medium while they may still touch it. Only
		// the end of this session stops the wait (nobody to answer then).
		select {
		case <-w.done:
		case <-ss.ctx.Done():
			return
		}
		r := TMFComplete
		if req.Function == TMFAbortTask && aborted == 0 {
			// The task completed between lookup and abort: its response
			// is on its way, so it no longer exists (RFC 7143 11.6.1).
			r = TMFTaskNotExist
		}
		if req.Function != TMFAbortTask {
			r = h.TaskManagement(ss.ctx, &ss.nexus, req.Function, req.LUN)
		}
		answer(r)
		if req.Function == TMFTargetColdReset && r == TMFComplete {
			// A cold reset ends every I_T nexus of the target
			// (SAM-5 6.3.2); the response goes out first.
			for _, o := range sessions {
				if o != ss {
					o.terminate()
				}
			}
			c.enqueue(outItem{kind: itemClose})
		}
	}()
}
