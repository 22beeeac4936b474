package iscsi

import (
	"sync/atomic"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// taskState tracks a task through its life.
type taskState uint8

const (
	taskCollecting taskState = iota // waiting for write data
	taskQueued                      // data complete, waiting to run
	taskRunning                     // handed to the handler
	taskDone                        // response queued
)

// maxR2T bounds MaxOutstandingR2T (and the per-task R2T table).
const maxR2T = 16

// r2tState is one outstanding R2T of a task.
type r2tState struct {
	ttt        uint32
	offset     uint32
	length     uint32
	got        uint32
	nextDataSN uint32
}

// task is one SCSI command in flight. Tasks are pooled per server; a task
// belongs to the serve goroutine while collecting data, to its executor
// while running, and to the send loop while its completion is sent.
type task struct {
	ss        *session
	itt       uint32
	cmdSN     uint32
	immediate bool
	attr      TaskAttr
	lun       LUN
	cdb       [maxCDBLen]byte
	cdbLen    int
	read      bool
	write     bool
	readLen   uint32
	writeLen  uint32
	rbuf      *pbuf
	wbuf      *pbuf
	// charge is what the task holds of the memory budget.
	charge  atomic.Int64
	state   taskState
	aborted atomic.Bool
	// refused: the task was answered at admission (t.resp); it only
	// collects, and discards, the write data the initiator may still
	// send unsolicited before the response goes out.
	refused bool
	// ctx is the context Execute runs under, cancelled on abort.
	ctx taskCtx
	// waits are the aborts waiting for this running task to leave the
	// handler; guarded by the session's mu.
	waits []*abortWait

	// write data
	received  uint32 // bytes received, contiguous from 0
	unsolLen  uint32 // bytes the unsolicited burst may carry
	unsolDone bool
	unsolSN   uint32
	r2tNext   uint32 // next offset to solicit
	r2tSN     uint32
	r2ts      [maxR2T]r2tState
	nr2t      int

	// completion
	cmd      Command
	resp     Response
	sense    [2 + 252]byte
	scsiResp SCSIResponse
}

func (s *Server) getTask() *task {
	if v := s.tasks.Get(); v != nil {
		return v.(*task)
	}
	return new(task)
}

func (s *Server) putTask(t *task) {
	if t.resp.Release != nil {
		t.resp.Release()
	}
	s.releaseMemory(t)
	s.pool.put(t.rbuf)
	s.pool.put(t.wbuf)
	done := t.ctx.reusable()
	*t = task{}
	t.ctx.done = done
	s.tasks.Put(t)
}

// handleCommand processes a SCSI Command whose CmdSN is in order.
func (c *conn) handleCommand(f *Frame, immediate bool) error {
	cmd := &c.cmdScratch
	if err := cmd.Decode(&f.BHS, f.AHS); err != nil {
		return protoErr(RejectProtocolError, &f.BHS, "%v", err)
	}
	p := &c.params
	dsl := uint32(len(f.Data))
	edtl := cmd.ExpectedDataTransferLength
	// RFC 7143 11.3.4/13.13: immediate data only when negotiated, only for
	// writes, bounded by FirstBurstLength and EDTL.
	if dsl > 0 {
		switch {
		case !cmd.Write:
			return protoErr(RejectProtocolError, &f.BHS, "data segment on a command without W bit")
		case !p.ImmediateData:
			return protoErr(RejectProtocolError, &f.BHS, "immediate data with ImmediateData=No")
		case dsl > p.FirstBurstLength || dsl > edtl:
			return protoErr(RejectProtocolError, &f.BHS, "immediate data of %d bytes exceeds FirstBurstLength %d or EDTL %d", dsl, p.FirstBurstLength, edtl)
		}
	}
	if !cmd.Write && !cmd.Final {
		return protoErr(RejectProtocolError, &f.BHS, "F bit clear on a command with no write data")
	}
	if cmd.Write && edtl > 0 && !cmd.Final && p.InitialR2T {
		return protoErr(RejectProtocolError, &f.BHS, "F bit clear with InitialR2T=Yes")
	}
	t := c.srv.getTask()
	t.ss = c.ss
	t.itt = cmd.ITT
	t.cmdSN = cmd.CmdSN
	t.immediate = immediate
	t.attr = cmd.Attr
	t.lun = cmd.LUN
	t.cdbLen = copy(t.cdb[:], cmd.CDB)
	t.read, t.write = cmd.Read, cmd.Write
	switch {
	case cmd.Read && cmd.Write:
		t.writeLen = edtl
		t.readLen = cmd.BidiReadLength
	case cmd.Write:
		t.writeLen = edtl
	case cmd.Read:
		t.readLen = edtl
	}
	switch c.ss.addTask(t, c.srv.cfg.Limits.MaxTasksPerSession) {
	case addDuplicate:
		c.srv.putTask(t)
		// RFC 7143 11.17.1: a duplicate ITT is "task in progress".
		c.enqueue(outItem{kind: itemPDU, stat: true, release: !immediate, p: &Reject{Reason: RejectTaskInProgress, Header: f.BHS}})
		return nil
	case addFull:
		c.srv.lim.taskTableFull.Add(1)
		if ok, n := c.srv.lim.logTasks.allow(); ok {
			c.log.Warn().Int("max_tasks", c.srv.cfg.Limits.MaxTasksPerSession).Uint64("suppressed", n).Msg("TASK SET FULL: task table full")
		}
		// Not in the table: answered at once, its Data-Out (if any) is
		// discarded as that of no task.
		t.setResponse(taskSetFull)
		t.state = taskDone
		c.enqueue(outItem{kind: itemComplete, t: t, release: !immediate})
		return nil
	}
	if !c.admit(t) {
		// Answered without running: once the unsolicited data the
		// initiator may still send for it has passed (and been
		// discarded), the response goes out.
		t.refused = true
		c.startWrite(t, cmd.Final, f.Data)
		return nil
	}
	if t.writeLen == 0 {
		c.ss.issue(t)
		return nil
	}
	c.startWrite(t, cmd.Final, f.Data)
	return nil
}

// startWrite takes a write task's immediate data and decides what else
// comes unsolicited, then lets progress go on.
func (c *conn) startWrite(t *task, final bool, data []byte) {
	p := &c.params
	t.received = uint32(len(data))
	if t.wbuf != nil {
		copy(t.wbuf.b, data)
	}
	if p.InitialR2T {
		t.unsolLen = t.received
	} else {
		t.unsolLen = min(p.FirstBurstLength, t.writeLen)
	}
	// F=1: no unsolicited Data-Out follows (RFC 7143 11.3.1).
	t.unsolDone = final || t.received >= t.unsolLen
	c.progress(t)
}

// wanted returns how many bytes of write data the task keeps: its write
// buffer's length.
func (t *task) wanted() uint32 {
	if t.wbuf == nil {
		return 0
	}
	return uint32(len(t.wbuf.b))
}

// progress issues the task when the write data it keeps is complete and
// no more can come unsolicited, or solicits more, but never beyond what
// it keeps (RFC 7143 11.8: the target asks for what it wants).
func (c *conn) progress(t *task) {
	need := t.wanted()
	if t.received >= t.writeLen || t.received >= need && t.unsolDone {
		if t.refused {
			c.ss.retire(t)
			c.enqueue(outItem{kind: itemComplete, t: t, release: !t.immediate})
			return
		}
		c.ss.issue(t)
		return
	}
	if !t.unsolDone {
		return
	}
	if t.r2tNext < t.received {
		t.r2tNext = t.received
	}
	p := &c.params
	maxOut := int(min(p.MaxOutstandingR2T, maxR2T))
	for t.nr2t < maxOut && t.r2tNext < need {
		n := min(need-t.r2tNext, p.MaxBurstLength)
		ttt := c.nextTTT
		c.nextTTT++
		if c.nextTTT == reservedTag {
			c.nextTTT = 1
		}
		t.r2ts[t.nr2t] = r2tState{ttt: ttt, offset: t.r2tNext, length: n}
		t.nr2t++
		c.enqueue(outItem{kind: itemR2T, r2t: R2T{
			LUN: t.lun, ITT: t.itt, TTT: ttt, R2TSN: t.r2tSN,
			BufferOffset: t.r2tNext, DesiredDataTransferLength: n,
		}})
		t.r2tSN++
		t.r2tNext += n
	}
}

// handleDataOut stores one Data-Out PDU (RFC 7143 11.7), checking DataSN
// and offsets: with DataPDUInOrder and DataSequenceInOrder data must
// arrive in order, so anything else is a protocol error.
func (c *conn) handleDataOut(f *Frame) error {
	var d DataOut
	d.Decode(&f.BHS)
	t := c.ss.collectingTask(d.ITT)
	if t == nil {
		// Data for a task that was aborted or never accepted (e.g. its
		// command fell outside the CmdSN window) is discarded.
		c.log.Debug().Uint32("itt", d.ITT).Msg("Data-Out for no collecting task: discarded")
		return nil
	}
	n := uint32(len(f.Data))
	if d.TTT == reservedTag {
		// Unsolicited data.
		switch {
		case c.params.InitialR2T:
			return c.failData(t, scsi.ASCDataPhaseError, "unsolicited Data-Out with InitialR2T=Yes")
		case t.unsolDone:
			return c.failData(t, scsi.ASCDataPhaseError, "unsolicited Data-Out after the unsolicited burst ended")
		case d.DataSN != t.unsolSN:
			return c.failData(t, scsi.ASCDataPhaseError, "Data-Out DataSN %d, expected %d", d.DataSN, t.unsolSN)
		case d.BufferOffset != t.received:
			return c.failData(t, scsi.ASCDataOffsetError, "Data-Out offset %d, expected %d", d.BufferOffset, t.received)
		case d.BufferOffset+n > t.unsolLen || d.BufferOffset+n < d.BufferOffset:
			return c.failData(t, scsi.ASCDataOffsetError, "unsolicited data beyond FirstBurstLength")
		}
		t.keep(d.BufferOffset, f.Data)
		t.received += n
		t.unsolSN++
		if d.Final {
			t.unsolDone = true
		}
		c.progress(t)
		return nil
	}
	i := 0
	for ; i < t.nr2t; i++ {
		if t.r2ts[i].ttt == d.TTT {
			break
		}
	}
	if i == t.nr2t {
		return c.failData(t, scsi.ASCDataPhaseError, "Data-Out with unknown TTT %#x", d.TTT)
	}
	r := &t.r2ts[i]
	switch {
	case d.DataSN != r.nextDataSN:
		return c.failData(t, scsi.ASCDataPhaseError, "Data-Out DataSN %d, expected %d", d.DataSN, r.nextDataSN)
	case d.BufferOffset != r.offset+r.got || d.BufferOffset != t.received:
		return c.failData(t, scsi.ASCDataOffsetError, "Data-Out offset %d, expected %d", d.BufferOffset, r.offset+r.got)
	case r.got+n > r.length:
		return c.failData(t, scsi.ASCDataOffsetError, "Data-Out exceeds the R2T's %d bytes", r.length)
	case d.Final != (r.got+n == r.length):
		return c.failData(t, scsi.ASCDataPhaseError, "Data-Out F bit does not end the R2T sequence")
	}
	t.keep(d.BufferOffset, f.Data)
	r.got += n
	r.nextDataSN++
	t.received += n
	if d.Final {
		copy(t.r2ts[i:], t.r2ts[i+1:t.nr2t])
		t.nr2t--
	}
	c.progress(t)
	return nil
}

// keep stores write data at off as far as the task's buffer reaches;
// the rest is discarded.
func (t *task) keep(off uint32, data []byte) {
	if t.wbuf != nil && off < uint32(len(t.wbuf.b)) {
		copy(t.wbuf.b[off:], data)
	}
}

// failData ends a task whose Data-Out sequence broke the rules, with
// CHECK CONDITION / ABORTED COMMAND and asc (DATA PHASE ERROR or DATA
// OFFSET ERROR), without running it.
func (c *conn) failData(t *task, asc scsi.ASC, format string, args ...any) error {
	c.log.Warn().Uint32("itt", t.itt).Msgf("task failed: "+format, args...)
	c.ss.retire(t)
	s := scsi.NewSense(scsi.SenseAbortedCommand, asc)
	sense := s.AppendFixed(t.sense[2:2])
	t.sense[0], t.sense[1] = 0, byte(len(sense))
	t.resp = Response{Status: scsi.CheckCondition, Sense: sense}
	c.enqueue(outItem{kind: itemComplete, t: t, release: !t.immediate})
	return nil
}

// Inliner is implemented by a Handler that can tell, before a command
// runs, that its Execute returns without waiting for anything that can
// stall: no device I/O, no lock held across such I/O, no store, no
// network, no other task (a memory-backed logical unit). The engine
// runs such a command on the connection's reader goroutine when the
// session has no other task running and no other PDU is already
// received, which saves the hand-off to an executor goroutine, and the
// scheduler wake-ups it costs, on every command at queue depth 1. While
// it runs the connection reads nothing, so NOP-Outs and task management
// requests wait behind it: Inline must answer false for any command
// whose Execute can block. Inline is called on the reader goroutine
// with the session's lock held; it must be quick and must not call back
// into the engine.
type Inliner interface {
	Inline(cmd *Command) bool
}

// command fills t.cmd, the Command the handler sees, from the task.
func (t *task) command() *Command {
	cmd := &t.cmd
	*cmd = Command{
		Nexus: &t.ss.nexus,
		LUN:   t.lun,
		CDB:   t.cdb[:t.cdbLen],
		Attr:  t.attr,
		Tag:   t.itt,
		Read:  t.read,
		Write: t.write,
	}
	if t.wbuf != nil {
		cmd.WriteData = t.wbuf.b
	}
	if t.rbuf != nil {
		cmd.ReadBuf = t.rbuf.b
	}
	return cmd
}

// execute runs a task and sends its completion: on an executor
// goroutine, or inline on the reader (see Inliner).
func (c *conn) execute(t *task) {
	ss := t.ss
	cmd := t.command()
	var resp Response
	switch {
	case t.aborted.Load():
		// Aborted between its start and here: the response is dropped
		// anyway, so the handler never sees it.
	case ss.target != nil && ss.target.Handler != nil:
		resp = ss.target.Handler.Execute(&t.ctx, cmd)
	default:
		resp = Response{ServiceFailure: true}
	}
	limit := len(cmd.ReadBuf)
	if resp.ReadData != nil {
		limit = min(limit, len(resp.ReadData))
	}
	if resp.ReadLen < 0 || resp.ReadLen > limit {
		resp.ReadLen = limit
	}
	t.setResponse(resp)
	// Mark done and remove from the table before the response can reach
	// the initiator, which may then reuse the ITT.
	aborted := ss.finished(t)
	// Counted out once the response is sent or queued: a logout waiting
	// for the running tasks then answers after their responses.
	defer ss.taskWG.Done()
	if aborted {
		// RFC 7143 / SAM-5: an aborted task gets no response (TAS=0).
		if !t.immediate {
			ss.release()
		}
		c.srv.putTask(t)
		return
	}
	c.complete(t)
}

// residual computes the residual flags and count for a transfer of
// expected bytes of which moved bytes moved and wanted were asked for.
func residual(expected, moved uint32, wanted int) (over, under bool, count uint32) {
	if wanted > 0 && uint64(wanted) > uint64(expected) {
		return true, false, uint32(min(uint64(wanted)-uint64(expected), 0xffffffff))
	}
	if wanted > 0 && uint32(wanted) < expected {
		return false, true, expected - uint32(wanted)
	}
	if moved < expected {
		return false, true, expected - moved
	}
	return false, false, 0
}

// sendCompletion writes a task's Data-In PDUs and its status, then frees it.
func (c *conn) sendCompletion(t *task, din *DataIn) error {
	defer c.srv.putTask(t)
	r := &t.resp
	p := &c.params
	data := []byte(nil)
	switch {
	case r.ReadData != nil:
		data = r.ReadData[:r.ReadLen]
	case t.rbuf != nil:
		data = t.rbuf.b[:r.ReadLen]
	}
	var rOver, rUnder bool
	var rCount uint32
	if t.read {
		rOver, rUnder, rCount = residual(t.readLen, uint32(len(data)), r.Wanted)
	}
	inline := !r.ServiceFailure && r.Status == scsi.Good && len(r.Sense) == 0 && len(data) > 0 && !t.write
	var dataSN uint32
	for off := 0; off < len(data); {
		burstEnd := min(len(data), off+int(p.MaxBurstLength))
		for off < burstEnd {
			n := min(burstEnd-off, int(c.xmit))
			last := off+n == len(data)
			*din = DataIn{
				Final:        off+n == burstEnd,
				LUN:          t.lun,
				ITT:          t.itt,
				TTT:          reservedTag,
				DataSN:       dataSN,
				BufferOffset: uint32(off),
				Data:         data[off : off+n],
			}
			if last && inline {
				din.HasStatus = true
				din.Status = r.Status
				din.Overflow, din.Underflow, din.ResidualCount = rOver, rUnder, rCount
			}
			din.seqNums = c.seq(last && inline)
			if err := c.wr.Write(din); err != nil {
				return err
			}
			dataSN++
			off += n
		}
	}
	if inline {
		return nil
	}
	sr := &t.scsiResp
	*sr = SCSIResponse{ITT: t.itt, Status: r.Status}
	if r.ServiceFailure {
		sr.Response = RespTargetFailure
		sr.Status = scsi.Good
	} else {
		switch {
		case t.read && t.write:
			sr.BidiOverflow, sr.BidiUnderflow, sr.BidiResidualCount = rOver, rUnder, rCount
		case t.read:
			sr.Overflow, sr.Underflow, sr.ResidualCount = rOver, rUnder, rCount
		}
		if t.write {
			// Write data beyond the buffer (beyond what the CDB moves)
			// was not solicited or was discarded: an underflow.
			sr.Overflow, sr.Underflow, sr.ResidualCount = residual(t.writeLen, t.wanted(), r.Wanted)
		}
		if len(r.Sense) > 0 {
			sr.Data = t.sense[:2+len(r.Sense)]
		}
	}
	if t.write {
		sr.ExpDataSN = t.r2tSN
	} else {
		sr.ExpDataSN = dataSN
	}
	sr.seqNums = c.seq(true)
	return c.wr.Write(sr)
}
