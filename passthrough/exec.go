package passthrough

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// How a command reaches the device. The CDB decides how much data moves
// and in which direction (scsi.DataTransfer), not the iSCSI header: the
// device gets buffers of exactly the CDB's transfer, and the initiator's
// Expected Data Transfer Length only decides the residual (RFC 7143
// 11.4.5):
//
//	EDTL > transfer    the buffer is cut to the transfer; underflow
//	EDTL < transfer    SBC READ/WRITE: only the blocks EDTL holds move
//	                   (a read's last partial block through a bounce
//	                   buffer), the command is otherwise the same;
//	                   other data-in: the device answers into a buffer
//	                   of the CDB's size and EDTL bytes go out; other
//	                   data-out: ILLEGAL REQUEST, INVALID FIELD IN
//	                   COMMAND INFORMATION UNIT (the device would read
//	                   past the data); overflow in every case
//	transfer > path    SBC READ/WRITE/WRITE AND VERIFY/VERIFY with data
//	                   are split into commands the path carries and
//	                   completed as one; anything else (COMPARE AND
//	                   WRITE, ORWRITE, WRITE ATOMIC, tape blocks) gets
//	                   ILLEGAL REQUEST, INVALID FIELD IN CDB
//
// A command the decoder does not know passes with the buffers the
// initiator announced.

// MaxSplitTransfer is the most data one SBC READ or WRITE may move
// through the gateway when the gateway splits it for the path.
const MaxSplitTransfer = 16 << 20

// maxRetries bounds how often the gateway resends a command the
// transport requeued before it reached the device.
const maxRetries = 2

// plan is what the pipeline decided about a command before it reaches
// the device.
type plan struct {
	rule    opRule
	timeout time.Duration
	// cdb is the command's CDB cut to its own length (iSCSI carries at
	// least 16 bytes; a device must get the CDB's length, SPC-4 4.2.5.1,
	// or it rejects e.g. a 16-byte TEST UNIT READY).
	cdb []byte
	// x is what the CDB moves, decoded with the logical unit's type and
	// block size.
	x scsi.Transfer
}

// makePlan decodes cmd for lu; ok is false when the CDB is shorter than
// its operation code requires.
func (lu *LU) makePlan(cmd *iscsi.Command, g *Geometry) (plan, bool) {
	op := cmd.CDB[0]
	p := plan{rule: lu.pol.rules[op], timeout: lu.pol.timeout[op], cdb: cmd.CDB}
	switch n, err := scsi.CDBLen(cmd.CDB); {
	case err == nil:
		p.cdb = cmd.CDB[:n]
	case errors.Is(err, scsi.ErrShortCDB):
		return p, false
	}
	if !protected(p.cdb) {
		p.x = scsi.DataTransfer(p.cdb, g.Type, g.BlockSize)
	}
	return p, true
}

// protected reports whether a block command carries protection
// information (RDPROTECT/WRPROTECT/VRPROTECT/ORPROTECT): its data then
// holds eight bytes more per block than the decoder counts, and it
// passes with the buffers the initiator announced.
func protected(cdb []byte) bool {
	switch scsi.Opcode(cdb[0]) {
	case scsi.OpRead10, scsi.OpWrite10, scsi.OpWriteAndVerify10, scsi.OpVerify10,
		scsi.OpRead12, scsi.OpWrite12, scsi.OpWriteAndVerify12, scsi.OpVerify12,
		scsi.OpRead16, scsi.OpWrite16, scsi.OpWriteAndVerify16, scsi.OpVerify16,
		scsi.OpCompareAndWrite, scsi.OpORWrite16, scsi.OpWriteAtomic16, scsi.OpWriteSame10, scsi.OpWriteSame16:
		return cdb[1]>>5 != 0
	case scsi.OpVariableLength:
		return len(cdb) > 10 && cdb[10]>>5 != 0
	}
	return false
}

// do passes cmd to the device as p says and turns the outcome into a
// response.
func (lu *LU) do(ctx context.Context, cmd *iscsi.Command, p *plan) iscsi.Response {
	if !lu.q.acquire(ctx, cmd.Nexus) {
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	defer lu.q.release()
	x := &p.x
	if !x.Known || scsi.Opcode(p.cdb[0]) == scsi.OpCompareAndWrite {
		// COMPARE AND WRITE's device checks that the Data-Out Buffer
		// holds exactly the verify and the write data (SBC-4 5.3): it
		// gets what the initiator sent.
		return lu.passAsAnnounced(ctx, cmd, p)
	}
	path := uint64(lu.maxXfer)
	switch {
	case x.In > 0 && x.Out > 0:
		if x.In > uint64(len(cmd.ReadBuf)) || x.Out > uint64(len(cmd.WriteData)) {
			return lu.shortData(int(x.In))
		}
		return lu.single(ctx, p, sgio.DirBidi, cmd.WriteData[:x.Out], cmd.ReadBuf[:x.In], int(x.In), false)
	case x.In > 0:
		buf := cmd.ReadBuf
		switch {
		case x.In <= uint64(len(buf)) && (path == 0 || x.In <= path):
			return lu.single(ctx, p, sgio.DirFromDevice, buf[:x.In], nil, 0, true)
		case x.Block:
			return lu.blockIO(ctx, cmd, p, buf, true)
		case path != 0 && x.In > path:
			return lu.tooLarge(p)
		}
		// The CDB asks for more than EDTL: the device answers all of it
		// into a buffer of its own, EDTL bytes of it go out, and the
		// initiator learns of the rest from the overflow.
		bounce := make([]byte, x.In)
		r := lu.single(ctx, p, sgio.DirFromDevice, bounce, nil, 0, false)
		moved := r.ReadLen
		r.ReadLen = copy(buf, bounce[:moved])
		r.Wanted = moved
		return r
	case x.Out > 0:
		buf := cmd.WriteData
		switch {
		case x.Out <= uint64(len(buf)) && (path == 0 || x.Out <= path):
			return lu.single(ctx, p, sgio.DirToDevice, buf[:x.Out], nil, int(x.Out), false)
		case x.Block:
			return lu.blockIO(ctx, cmd, p, buf, false)
		case path != 0 && x.Out > path:
			return lu.tooLarge(p)
		}
		return lu.shortData(int(x.Out))
	}
	return lu.single(ctx, p, sgio.DirNone, nil, nil, 0, false)
}

// passAsAnnounced passes a command the decoder does not know with the
// data directions and buffers of the iSCSI header, within the path's
// limit; the device's own Wanted (the emulated disk knows it) reports an
// overflow.
func (lu *LU) passAsAnnounced(ctx context.Context, cmd *iscsi.Command, p *plan) iscsi.Response {
	if lu.maxXfer > 0 && (cmd.Read && len(cmd.ReadBuf) > lu.maxXfer || cmd.Write && len(cmd.WriteData) > lu.maxXfer) {
		return lu.tooLarge(p)
	}
	switch {
	case cmd.Read && cmd.Write:
		return lu.single(ctx, p, sgio.DirBidi, cmd.WriteData, cmd.ReadBuf, -1, false)
	case cmd.Write:
		return lu.single(ctx, p, sgio.DirToDevice, cmd.WriteData, nil, -1, false)
	case cmd.Read:
		return lu.single(ctx, p, sgio.DirFromDevice, cmd.ReadBuf, nil, -1, true)
	}
	return lu.single(ctx, p, sgio.DirNone, nil, nil, -1, false)
}

// shortData refuses a data-out command whose parameter data the
// initiator does not send in full: the device would read past it.
func (lu *LU) shortData(wanted int) iscsi.Response {
	r := checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInIU)
	r.Wanted = wanted
	return r
}

// tooLarge refuses a command that moves more than the path carries and
// that the gateway cannot split (SBC-4 4.2.2: beyond the MAXIMUM
// TRANSFER LENGTH is INVALID FIELD IN CDB), pointing at its transfer
// length field when it has a known one.
func (lu *LU) tooLarge(p *plan) iscsi.Response {
	if off := lengthField(p.cdb, lu.pol.dt); off > 0 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(off, 7)}
	}
	return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
}

// lengthField returns the offset of a READ/WRITE-family command's
// TRANSFER LENGTH field, or 0.
func lengthField(cdb []byte, dt scsi.DeviceType) int {
	op := scsi.Opcode(cdb[0])
	if dt == scsi.TypeTape {
		switch op {
		case scsi.OpRead6, scsi.OpWrite6, scsi.OpReadReverse6, scsi.OpVerify6, scsi.OpRecoverBufferedData:
			return 2
		case scsi.OpRead16, scsi.OpWrite16:
			return 12
		}
		return 0
	}
	r, err := scsi.DecodeRW(cdb)
	if err != nil {
		return 0
	}
	switch {
	case op == scsi.OpCompareAndWrite:
		return 13
	case op == scsi.OpWriteAtomic16:
		return 12
	}
	switch r.CDBLen {
	case 6:
		return 4
	case 10:
		return 7
	case 12:
		return 6
	case 16:
		return 10
	case 32:
		return 28
	}
	return 0
}

// single sends one request to the device and turns its outcome into the
// response: data is the data-out buffer (DirToDevice, DirBidi) or the
// data-in buffer (DirFromDevice), readData the data-in buffer of a
// bidirectional command. wanted is the response's Wanted: the bytes the
// CDB moves when the gateway knows them, 0 to let the engine count what
// moved, -1 to take the device's own count. With lend set, a device that
// can lend its buffer does (the engine sends from it and gives it back).
// The device request is the one allocation of the common case.
func (lu *LU) single(ctx context.Context, p *plan, dir sgio.Direction, data, readData []byte, wanted int, lend bool) iscsi.Response {
	scratch := dir == sgio.DirNone && lu.quirks&quirkNoDataBuffer != 0
	if scratch {
		dir, data, lend = sgio.DirFromDevice, make([]byte, noDataBufferLen), false
	}
	x := &struct {
		req sgio.Request
		res sgio.Result
	}{req: sgio.Request{CDB: p.cdb, Dir: dir, Data: data, ReadData: readData, Timeout: p.timeout}}
	req, res := &x.req, &x.res
	var lent []byte
	var release func()
	var r result
	for attempt := 0; ; attempt++ {
		var err error
		if l, ok := lu.dev.(sgio.Lender); ok && lend && dir == sgio.DirFromDevice {
			lent, release, err = l.ExecuteLent(ctx, req, res)
		} else {
			err = lu.dev.Execute(ctx, req, res)
		}
		r = outcome(res, err, dir)
		lu.logOutcome(ctx, p.cdb, res, err)
		if !r.retry || p.rule.once || attempt >= maxRetries || ctx.Err() != nil {
			break
		}
		if release != nil {
			release()
			lent, release = nil, nil
		}
	}
	resp := iscsi.Response{Status: r.status, Sense: r.sense}
	switch wanted {
	case -1:
		resp.Wanted = res.Wanted
	default:
		resp.Wanted = wanted
	}
	if !r.transport && !scratch {
		switch dir {
		case sgio.DirFromDevice:
			resp.ReadLen = res.Transferred(len(data))
		case sgio.DirBidi:
			resp.ReadLen = res.Transferred(len(readData))
		}
	}
	if release != nil {
		if resp.ReadLen > 0 {
			resp.ReadData, resp.Release = lent, release
		} else {
			release() // no data goes out
		}
	}
	if r.noSense {
		resp.Sense = lu.fetchSense(ctx)
	}
	return resp
}

// logOutcome logs a failed delivery (at debug level when the task was
// aborted: nobody gets its response) and, at debug level, a device error.
func (lu *LU) logOutcome(ctx context.Context, cdb []byte, res *sgio.Result, err error) {
	if err != nil {
		lvl := zerolog.WarnLevel
		if ctx.Err() != nil {
			lvl = zerolog.DebugLevel
		}
		lu.log.WithLevel(lvl).Err(err).Str("lu", lu.name).Hex("cdb", cdb).
			Stringer("host", res.HostStatus).Msg("device request failed")
		return
	}
	if res.Status != scsi.Good || res.HostStatus != 0 || res.DriverStatus&^scsi.DriverSense != 0 {
		if e := lu.log.Debug(); e.Enabled() {
			e.Str("lu", lu.name).Hex("cdb", cdb).Stringer("status", res.Status).
				Stringer("host", res.HostStatus).Stringer("driver", res.DriverStatus).
				Hex("sense", res.Sense).Msg("device returned an error")
		}
	}
}

// fetchSense asks the device for the sense data of a CHECK CONDITION it
// sent without any (REQUEST SENSE, SPC-4 5.12.2): what it returns when
// that says something, else HARDWARE ERROR, INTERNAL TARGET FAILURE (a
// CHECK CONDITION that cannot be explained).
func (lu *LU) fetchSense(ctx context.Context) []byte {
	buf := make([]byte, 252)
	req := sgio.Request{CDB: []byte{byte(scsi.OpRequestSense), 0, 0, 0, byte(len(buf)), 0}, Dir: sgio.DirFromDevice, Data: buf, Timeout: probeTimeout}
	var res sgio.Result
	err := lu.dev.Execute(ctx, &req, &res)
	if err == nil && res.Status == scsi.Good && res.HostStatus == scsi.HostOK && res.DriverStatus&scsi.DriverMask&^scsi.DriverSense == 0 {
		data := buf[:res.Transferred(len(buf))]
		if s, err := scsi.ParseSense(data); err == nil && (s.Key != scsi.SenseNoSense || s.ASC != scsi.ASCNoAdditionalSense) {
			return data
		}
	}
	lu.log.Warn().Str("lu", lu.name).Msg("device reported CHECK CONDITION without sense data, and REQUEST SENSE did not explain it")
	return scsi.FixedSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
}

// internal sends a data-in command of the gateway's own on behalf of a
// command of nexus in (a VPD page it rebuilds), in the logical unit's
// queue, with buf as its data-in buffer.
func (lu *LU) internal(ctx context.Context, in *iscsi.Nexus, cdb, buf []byte, rule opRule) iscsi.Response {
	if !lu.q.acquire(ctx, in) {
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	defer lu.q.release()
	p := plan{rule: rule, cdb: cdb, timeout: lu.pol.timeout[cdb[0]]}
	return lu.single(ctx, &p, sgio.DirFromDevice, buf, nil, 0, false)
}
