package iscsi

import (
	"context"
	"time"
)

// abortMatching aborts every task of the session that match selects.
// Tasks still collecting data or waiting to run are dropped at once
// (opening the window); running tasks finish in the handler and their
// responses are suppressed. It returns once nothing aborted is running
// anymore, or when ctx ends, with the number of tasks it aborted (tasks
// already done, whose responses are on their way, are not counted).
func (ss *session) abortMatching(ctx context.Context, match func(*task) bool) int {
	n := 0
	ss.mu.Lock()
	for itt, t := range ss.tasks {
		if !match(t) || t.aborted.Load() || t.state == taskDone {
			continue
		}
		t.aborted.Store(true)
		n++
		switch t.state {
		case taskRunning:
			// execute() sees the mark and drops the response.
			continue
		case taskQueued:
			for i, w := range ss.waiting {
				if w == t {
					ss.waiting = append(ss.waiting[:i:i], ss.waiting[i+1:]...)
					break
				}
			}
		}
		// Collecting or queued: never reaches the handler. The serve
		// goroutine may still hold a pointer, so the task is left to the
		// garbage collector rather than the pool.
		delete(ss.tasks, itt)
		if !t.immediate {
			ss.release()
		}
	}
	ss.mu.Unlock()
	// Wait for aborted running tasks to leave the handler.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for ss.abortedRunning() {
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
	return n
}

// abortedRunning reports whether an aborted task is still in the handler.
func (ss *session) abortedRunning() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, t := range ss.tasks {
		if t.aborted.Load() && t.state == taskRunning {
			return true
		}
	}
	return false
}

// abortAll aborts every task of the connection's session.
func (c *conn) abortAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.ss.abortMatching(ctx, func(*task) bool { return true })
}

// abortCollecting aborts the tasks that still wait for write data.
func (c *conn) abortCollecting() {
	c.ss.abortMatching(context.Background(), func(t *task) bool { return t.state == taskCollecting })
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
	case TMFAbortTaskSet:
		sessions = []*session{ss}
		lun := req.LUN
		match = func(t *task) bool { return t.lun == lun }
	case TMFClearTaskSet, TMFLogicalUnitReset:
		sessions = c.srv.targetSessions(ss.nexus.TargetName)
		lun := req.LUN
		match = func(t *task) bool { return t.lun == lun }
	case TMFTargetWarmReset, TMFTargetColdReset:
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
	ss.taskWG.Add(1)
	go func() {
		defer ss.taskWG.Done()
		ctx, cancel := context.WithTimeout(ss.ctx, 60*time.Second)
		defer cancel()
		aborted := 0
		for _, o := range sessions {
			aborted += o.abortMatching(ctx, match)
		}
		r := TMFComplete
		if req.Function == TMFAbortTask && aborted == 0 {
			// The task completed between lookup and abort: its response
			// is on its way, so it no longer exists (RFC 7143 11.6.1).
			r = TMFTaskNotExist
		}
		if req.Function != TMFAbortTask {
			r = h.TaskManagement(ctx, &ss.nexus, req.Function, req.LUN)
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
