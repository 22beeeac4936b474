// Package passthrough carries SCSI semantics between the iSCSI engine and
// the devices: it implements iscsi.Handler over sgio.Device, answering
// here what a bridge must answer itself (REPORT LUNS, commands to LUNs
// that do not exist) and passing everything else to the device, turning
// transport failures into proper CHECK CONDITION sense.
package passthrough

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// LU is one logical unit: a device and the concurrency it allows.
type LU struct {
	// ID is the LUN number the initiators see.
	ID uint64
	// Dev executes the LU's commands.
	Dev sgio.Device
	// sem bounds the commands in flight to the device's queue depth.
	sem chan struct{}
}

// NewLU returns a logical unit for dev.
func NewLU(id uint64, dev sgio.Device) *LU {
	qd := dev.Limits().QueueDepth
	if qd <= 0 {
		qd = 32
	}
	return &LU{ID: id, Dev: dev, sem: make(chan struct{}, qd)}
}

// Target implements iscsi.Handler for one target's logical units.
type Target struct {
	luns map[uint64]*LU
	ids  []uint64 // sorted
	log  zerolog.Logger
	ua   *unitAttentions
}

// NewTarget returns a handler serving lus. LUN numbers must be unique.
func NewTarget(lus []*LU, log zerolog.Logger) (*Target, error) {
	t := &Target{luns: make(map[uint64]*LU, len(lus)), log: log, ua: newUnitAttentions()}
	for _, lu := range lus {
		if _, dup := t.luns[lu.ID]; dup {
			return nil, fmt.Errorf("passthrough: LUN %d defined twice", lu.ID)
		}
		t.luns[lu.ID] = lu
		t.ids = append(t.ids, lu.ID)
	}
	slices.Sort(t.ids)
	return t, nil
}

// lu returns the logical unit addressed by l for the nexus.
func (t *Target) lu(_ *iscsi.Nexus, l iscsi.LUN) *LU {
	n, ok := l.Number()
	if !ok {
		return nil
	}
	return t.luns[n]
}

// HasLUN implements iscsi.Handler.
func (t *Target) HasLUN(nexus *iscsi.Nexus, l iscsi.LUN) bool { return t.lu(nexus, l) != nil }

// Attach implements iscsi.Handler.
func (t *Target) Attach(*iscsi.Nexus, iscsi.NexusControl) {}

// Detach implements iscsi.Handler: the nexus' pending unit attentions go
// with it.
func (t *Target) Detach(n *iscsi.Nexus) { t.ua.gone(portOf(n)) }

// TaskManagement implements iscsi.Handler. The engine has already aborted
// the affected tasks in every session. The devices themselves are not
// reset: the bridge is their only initiator, so a device reset would hit
// every session's work. What SAM-5 makes visible to initiators, the unit
// attentions of a reset, is kept here per I_T_L nexus.
func (t *Target) TaskManagement(_ context.Context, n *iscsi.Nexus, fn iscsi.TMFunction, l iscsi.LUN) iscsi.TMFResponse {
	lun, _ := l.Number()
	switch fn {
	case iscsi.TMFAbortTask, iscsi.TMFAbortTaskSet:
		return iscsi.TMFComplete
	case iscsi.TMFClearTaskSet:
		// SAM-5 7.4: other initiators whose tasks were cleared learn it
		// from COMMANDS CLEARED BY ANOTHER INITIATOR.
		t.ua.raise(lun, scsi.ASCCommandsClearedByAnother, portOf(n))
		return iscsi.TMFComplete
	case iscsi.TMFLogicalUnitReset:
		t.ua.raise(lun, scsi.ASCBusDeviceResetOccurred, "")
		return iscsi.TMFComplete
	case iscsi.TMFTargetWarmReset, iscsi.TMFTargetColdReset:
		for _, id := range t.ids {
			t.ua.raise(id, scsi.ASCPowerOnOrReset, "")
		}
		return iscsi.TMFComplete
	}
	return iscsi.TMFNotSupported
}

// Execute implements iscsi.Handler.
func (t *Target) Execute(ctx context.Context, cmd *iscsi.Command) iscsi.Response {
	if len(cmd.CDB) == 0 {
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	}
	op := scsi.Opcode(cmd.CDB[0])
	if op == scsi.OpReportLUNs {
		return t.reportLUNs(cmd)
	}
	lu := t.lu(cmd.Nexus, cmd.LUN)
	if lu == nil {
		return noSuchLUN(cmd)
	}
	port := portOf(cmd.Nexus)
	t.ua.seen(port)
	if reportsUA(op) {
		if asc, ok := t.ua.take(port, lu.ID); ok {
			return checkCondition(scsi.SenseUnitAttention, asc)
		}
	} else if op == scsi.OpRequestSense && len(cmd.CDB) >= 6 {
		if asc, ok := t.ua.take(port, lu.ID); ok {
			// SPC-4 6.39: REQUEST SENSE returns and clears the condition.
			return senseAsData(cmd, scsi.FixedSense(scsi.SenseUnitAttention, asc))
		}
	}
	return lu.do(ctx, cmd, t.log)
}

func (lu *LU) do(ctx context.Context, cmd *iscsi.Command, log zerolog.Logger) iscsi.Response {
	select {
	case lu.sem <- struct{}{}:
	case <-ctx.Done():
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	defer func() { <-lu.sem }()
	// iSCSI carries at least 16 CDB bytes; a device must get the CDB's
	// own length (SPC-4 4.2.5.1), or it rejects e.g. a 16-byte TEST UNIT
	// READY. Vendor-specific groups pass as they came.
	cdb := cmd.CDB
	switch n, err := scsi.CDBLen(cdb); {
	case err == nil:
		cdb = cdb[:n]
	case errors.Is(err, scsi.ErrShortCDB):
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	// One allocation for both: they escape through the Device interface.
	x := &struct {
		req sgio.Request
		res sgio.Result
	}{req: sgio.Request{CDB: cdb}}
	req, res := &x.req, &x.res
	switch {
	case cmd.Read && cmd.Write:
		req.Dir, req.Data, req.ReadData = sgio.DirBidi, cmd.WriteData, cmd.ReadBuf
	case cmd.Write:
		req.Dir, req.Data = sgio.DirToDevice, cmd.WriteData
	case cmd.Read:
		req.Dir, req.Data = sgio.DirFromDevice, cmd.ReadBuf
	}
	var err error
	var lent []byte
	var release func()
	if l, ok := lu.Dev.(sgio.Lender); ok && req.Dir == sgio.DirFromDevice {
		// The device may lend its own buffer: the engine sends from it
		// and gives it back (Response.Release), saving a copy.
		lent, release, err = l.ExecuteLent(ctx, req, res)
	} else {
		err = lu.Dev.Execute(ctx, req, res)
	}
	if err != nil {
		r := errorResponse(err)
		log.Warn().Err(err).Uint64("lun", lu.ID).Hex("cdb", cdb).Msg("device request failed")
		return r
	}
	if res.Status != scsi.Good || res.HostStatus != 0 || res.DriverStatus&^scsi.DriverSense != 0 {
		if e := log.Debug(); e.Enabled() {
			e.Uint64("lun", lu.ID).Hex("cdb", cdb).Stringer("status", res.Status).
				Stringer("host", res.HostStatus).Stringer("driver", res.DriverStatus).
				Hex("sense", res.Sense).Msg("device returned an error")
		}
	}
	resp := iscsi.Response{Status: res.Status, Wanted: res.Wanted}
	if release != nil {
		resp.ReadData, resp.Release = lent, release
	}
	switch req.Dir {
	case sgio.DirFromDevice:
		resp.ReadLen = res.Transferred(len(req.Data))
	case sgio.DirBidi:
		resp.ReadLen = res.Transferred(len(req.ReadData))
	}
	if res.HostStatus != 0 || res.DriverStatus&^scsi.DriverSense != 0 {
		if release != nil {
			release() // no data goes out
		}
		return transportResponse(res)
	}
	if res.Status == scsi.CheckCondition {
		resp.Sense = res.Sense
		if len(resp.Sense) == 0 {
			// A CHECK CONDITION without sense can't be explained to the
			// initiator; say so rather than send an empty sense.
			resp.Sense = scsi.FixedSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
		}
	}
	return resp
}

// transportResponse turns a host/driver failure into SCSI status and
// sense an initiator understands (the SCSI status byte itself is not
// meaningful when the transport failed).
func transportResponse(res *sgio.Result) iscsi.Response {
	switch res.HostStatus {
	case scsi.HostBusBusy, scsi.HostImmRetry, scsi.HostRequeue, scsi.HostSoftError, scsi.HostTransportDisrupted:
		return iscsi.Response{Status: scsi.Busy}
	case scsi.HostNoConnect, scsi.HostBadTarget, scsi.HostTransportFailfast:
		return checkCondition(scsi.SenseNotReady, scsi.ASCLUCommunicationFailure)
	case scsi.HostTimeOut, scsi.HostAbort:
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	case scsi.HostReset:
		return checkCondition(scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
	case scsi.HostParity:
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCInitiatorDetectedError)
	}
	if res.Status == scsi.CheckCondition && len(res.Sense) > 0 && res.HostStatus == 0 {
		return iscsi.Response{Status: res.Status, Sense: res.Sense}
	}
	return checkCondition(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
}

// errorResponse turns a failed delivery into SCSI status and sense.
func errorResponse(err error) iscsi.Response {
	switch {
	case errors.Is(err, sgio.ErrBusy), errors.Is(err, sgio.ErrQueueFull):
		return iscsi.Response{Status: scsi.TaskSetFull}
	case errors.Is(err, sgio.ErrGone), errors.Is(err, sgio.ErrClosed):
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	case errors.Is(err, sgio.ErrTooLarge), errors.Is(err, sgio.ErrBadRequest):
		return checkCondition(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	case errors.Is(err, sgio.ErrTimeout), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return checkCondition(scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense)
	}
	return checkCondition(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
}

func checkCondition(key scsi.SenseKey, asc scsi.ASC) iscsi.Response {
	return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.FixedSense(key, asc)}
}

// noSuchLUN answers a command to a LUN that does not exist (SPC-4 4.6.3
// and 6.6.1): INQUIRY reports peripheral qualifier 011b, REQUEST SENSE
// returns LOGICAL UNIT NOT SUPPORTED as data, anything else gets it as
// CHECK CONDITION.
func noSuchLUN(cmd *iscsi.Command) iscsi.Response {
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpInquiry:
		if len(cmd.CDB) < 6 || cmd.CDB[1]&0x01 != 0 || cmd.CDB[2] != 0 {
			return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
		}
		var inq [36]byte
		inq[0] = 0x7f // qualifier 011b, type 1Fh: no LU here
		inq[2] = 0x06 // SPC-4
		inq[3] = 0x02
		inq[4] = 31
		copy(inq[8:], "SANBRIDG")
		copy(inq[16:], "NO LUN          ")
		copy(inq[32:], "0001")
		alloc := int(binary.BigEndian.Uint16(cmd.CDB[3:5]))
		n := copy(cmd.ReadBuf, inq[:min(alloc, len(inq))])
		return iscsi.Response{ReadLen: n, Wanted: min(alloc, len(inq))}
	case scsi.OpRequestSense:
		if len(cmd.CDB) < 6 {
			break
		}
		return senseAsData(cmd, scsi.FixedSense(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported))
	}
	return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
}

// senseAsData answers REQUEST SENSE (6-byte CDB) with sense s as its
// data, cut to the allocation length.
func senseAsData(cmd *iscsi.Command, s []byte) iscsi.Response {
	n := min(int(cmd.CDB[4]), len(s))
	return iscsi.Response{ReadLen: copy(cmd.ReadBuf, s[:n]), Wanted: n}
}

// reportLUNs answers REPORT LUNS (SPC-4 6.33) from the target's LUN map.
func (t *Target) reportLUNs(cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	if len(cdb) < 12 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(0, 7)}
	}
	alloc := int(binary.BigEndian.Uint32(cdb[6:10]))
	if alloc < 16 {
		// SPC-4 6.33: an allocation length below 16 is an error.
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(6, 7)}
	}
	var ids []uint64
	switch cdb[2] {
	case 0x00, 0x02: // all logical units (no well-known LUs exist)
		ids = t.ids
	case 0x01: // well-known only: none
	case 0x10, 0x11, 0x12:
		// Administrative/subsidiary LU selections: no conglomerates here.
	default:
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(2, 7)}
	}
	full := 8 + 8*len(ids)
	out := cmd.ReadBuf
	n := 0
	put := func(b []byte) {
		n += copy(out[min(n, len(out)):], b)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(8*len(ids)))
	put(hdr[:])
	for _, id := range ids {
		l := iscsi.MakeLUN(id)
		put(l[:])
	}
	return iscsi.Response{ReadLen: min(n, alloc), Wanted: min(full, alloc)}
}
