package iscsi

import (
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Admitter is an optional interface of a [Handler]: the engine calls
// Admit for every SCSI command before it allocates anything for it, so
// that buffers are sized from what the command can actually move, never
// from the initiator's Expected Data Transfer Length alone.
//
// The engine's read buffer is min(EDTL, ReadLen) bytes and its write
// buffer min(EDTL, WriteLen): an EDTL larger than what the CDB moves is
// handled with residuals (underflow), never with a larger buffer (RFC
// 7143 11.4.5.2), and of the write data the initiator sends only the
// first WriteLen bytes are solicited and kept; unsolicited and immediate
// data beyond them is discarded. A handler that does not implement
// Admitter gets buffers of at most the target's MaxBurstLength (or
// Limits.MaxTransfer), and commands whose EDTL is larger are answered
// CHECK CONDITION (ILLEGAL REQUEST, INVALID FIELD IN CDB).
type Admitter interface {
	// Admit decides on a command of the nexus for lun with the given CDB
	// and R/W bits. It runs on the connection's reading goroutine: it
	// must not block, and should only look at the CDB and the logical
	// unit's geometry (block size, capacity, transfer limit).
	Admit(nexus *Nexus, lun LUN, cdb []byte, read, write bool) Admission
}

// Admission is an Admitter's verdict on one command.
type Admission struct {
	// ReadLen and WriteLen are the most bytes the command moves in each
	// direction: the CDB's own transfer length (allocation length,
	// parameter list length, blocks times block size) when the handler
	// knows it, else the logical unit's transfer limit.
	ReadLen, WriteLen uint32
	// Refuse answers the command at once with Response (a CHECK
	// CONDITION, say, for a transfer beyond the logical unit's limit or
	// the medium) without allocating or running anything.
	Refuse   bool
	Response Response
}

// AdmitCDB is a ready-made Admitter decision for a logical unit of
// device type dt with blockSize-byte blocks (0 if unknown), capacity
// blocks (0 if unknown) and a transfer limit of maxTransfer bytes per
// command and direction: block commands beyond the capacity get
// LOGICAL BLOCK ADDRESS OUT OF RANGE (SBC-4 4.5), commands moving more
// than maxTransfer get INVALID FIELD IN CDB (SBC-4 4.2.2, 6.6.4: beyond
// the MAXIMUM TRANSFER LENGTH), and the rest are bounded by what their
// CDB moves, or by maxTransfer when [scsi.DataTransfer] does not know
// the command.
func AdmitCDB(cdb []byte, dt scsi.DeviceType, blockSize uint32, capacity uint64, maxTransfer uint32) Admission {
	x := scsi.DataTransfer(cdb, dt, blockSize)
	if capacity > 0 && !x.InRange(capacity) {
		return Admission{Refuse: true, Response: CheckConditionResponse(scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)}
	}
	if !x.Known {
		return Admission{ReadLen: maxTransfer, WriteLen: maxTransfer}
	}
	if x.In > uint64(maxTransfer) || x.Out > uint64(maxTransfer) {
		return Admission{Refuse: true, Response: CheckConditionResponse(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)}
	}
	if scsi.Opcode(cdb[0]) == scsi.OpCompareAndWrite {
		// The device checks that the Data-Out Buffer holds exactly the
		// verify and the write data (SBC-4 5.3; a mismatch is INVALID
		// FIELD IN CDB): it gets what the initiator sent, within the
		// limit, not a buffer cut to match.
		return Admission{WriteLen: maxTransfer}
	}
	return Admission{ReadLen: uint32(x.In), WriteLen: uint32(x.Out)}
}

// CheckConditionResponse is a CHECK CONDITION response with fixed-format
// sense data of the key and additional sense code.
func CheckConditionResponse(key scsi.SenseKey, asc scsi.ASC) Response {
	return Response{Status: scsi.CheckCondition, Sense: scsi.FixedSense(key, asc)}
}

// taskSetFull is the response of a command refused for lack of
// resources (SAM-5 5.3.1: TASK SET FULL, no sense data).
var taskSetFull = Response{Status: scsi.TaskSetFull}

// admit decides whether t may proceed and, if so, sizes and allocates its
// buffers. Otherwise t.resp holds the answer. It runs on the reading
// goroutine and never waits.
func (c *conn) admit(t *task) bool {
	ss := c.ss
	srv := c.srv
	var rmax, wmax uint32
	h := ss.handler()
	if a, ok := h.(Admitter); ok {
		ad := a.Admit(&ss.nexus, t.lun, t.cdb[:t.cdbLen], t.read, t.write)
		if ad.Refuse {
			srv.lim.transferRefused.Add(1)
			if ok, n := srv.lim.logTransfer.allow(); ok {
				c.log.Info().Hex("cdb", t.cdb[:t.cdbLen]).Uint32("read_edtl", t.readLen).Uint32("write_edtl", t.writeLen).
					Stringer("status", ad.Response.Status).Uint64("suppressed", n).Msg("command refused before allocation")
			}
			t.setResponse(ad.Response)
			return false
		}
		rmax, wmax = ad.ReadLen, ad.WriteLen
	} else {
		m := srv.cfg.Limits.MaxTransfer
		if ss.target != nil && ss.target.MaxBurstLength != 0 {
			m = ss.target.MaxBurstLength
		}
		if t.readLen > m || t.writeLen > m {
			srv.lim.transferRefused.Add(1)
			if ok, n := srv.lim.logTransfer.allow(); ok {
				c.log.Info().Hex("cdb", t.cdb[:t.cdbLen]).Uint32("read_edtl", t.readLen).Uint32("write_edtl", t.writeLen).
					Uint32("max_transfer", m).Uint64("suppressed", n).Msg("command refused: expected length beyond the transfer limit")
			}
			t.setResponse(CheckConditionResponse(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB))
			return false
		}
		rmax, wmax = m, m
	}
	rlen, wlen := min(t.readLen, rmax), min(t.writeLen, wmax)
	charge := bufCharge(rlen) + bufCharge(wlen)
	switch r := srv.mem.reserve(&ss.mem, charge); r {
	case refusedNone:
	case refusedNever:
		srv.lim.transferRefused.Add(1)
		t.setResponse(CheckConditionResponse(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB))
		return false
	default:
		srv.lim.memoryFull.Add(1)
		if ok, n := srv.lim.logMemory.allow(); ok {
			c.log.Warn().Int64("bytes", charge).Int64("in_flight", srv.mem.inflight.Load()).Int64("budget", srv.mem.limit).
				Str("reason", r.String()).Uint64("suppressed", n).Msg("TASK SET FULL: memory budget")
		}
		t.setResponse(taskSetFull)
		return false
	}
	t.charge.Store(charge)
	if rlen > 0 {
		t.rbuf = srv.pool.get(int(rlen))
	}
	if wlen > 0 {
		t.wbuf = srv.pool.get(int(wlen))
	}
	return true
}

// setResponse makes r the task's response, copying its sense data into
// the task.
func (t *task) setResponse(r Response) {
	t.resp = r
	if len(r.Sense) > 0 {
		n := copy(t.sense[2:], r.Sense)
		t.sense[0], t.sense[1] = byte(n>>8), byte(n)
		t.resp.Sense = t.sense[2 : 2+n]
	}
}

// releaseMemory gives the task's reservation back, once.
func (s *Server) releaseMemory(t *task) {
	if t.ss != nil {
		s.freeMemory(t.ss, t.charge.Swap(0))
	}
}

// freeMemory gives n bytes of the session's reservations back and
// reopens the windows withheld under pressure if it eased. The caller
// holds no session lock.
func (s *Server) freeMemory(ss *session, n int64) {
	if n > 0 && s.mem.unreserve(&ss.mem, n) {
		s.reopenWindows()
	}
}
