package passthrough

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Tests of what the gateway tells initiators about the device behind
// it: residuals from the CDB's own transfer length, transfers cut and
// split for the path, VPD pages, sense formats, the device-type policy.

// luWith returns a logical unit for dev with policy c, and a target
// serving it at LUN 0 to everyone.
func luWith(t *testing.T, dev sgio.Device, c PolicyConfig) (*LU, *Target) {
	t.Helper()
	lu, err := NewLU(context.Background(), LUConfig{Name: "dev", Device: dev, Policy: c, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	return lu, newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
}

// ready attaches a nexus of initiator A to tg and consumes its unit
// attentions on LUN 0.
func ready(t *testing.T, tg *Target) *iscsi.Nexus {
	t.Helper()
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	clearUAs(t, tg, n, 0)
	return n
}

// session logs an initiator in to tg over loopback and consumes its unit
// attentions.
func session(t *testing.T, tg *Target) *testinit.Session {
	t.Helper()
	addr, _ := serve(t, tg)
	s := login(t, addr, iqnA, 1)
	settle(t, s, 0)
	return s
}

// residual is what a result says of its residual: "+n" overflow, "-n"
// underflow, "0" none.
func residual(r *testinit.Result) string {
	switch {
	case r.Overflow:
		return fmt.Sprintf("+%d", r.Residual)
	case r.Underflow:
		return fmt.Sprintf("-%d", r.Residual)
	}
	return "0"
}

func rw(op scsi.Opcode, lba uint64, blocks uint32) []byte {
	switch op.CDBLength() {
	case 10:
		c := make([]byte, 10)
		c[0] = byte(op)
		binary.BigEndian.PutUint32(c[2:], uint32(lba))
		binary.BigEndian.PutUint16(c[7:], uint16(blocks))
		return c
	case 12:
		c := make([]byte, 12)
		c[0] = byte(op)
		binary.BigEndian.PutUint32(c[2:], uint32(lba))
		binary.BigEndian.PutUint32(c[6:], blocks)
		return c
	}
	return rw16(op, lba, blocks)
}

// TestResidualsThroughEngine: iscsi-test-cu's iSCSIResiduals cases on a
// device that, like a real one behind SG_IO, neither reports how much a
// CDB wanted nor tolerates a buffer of another size: the gateway sizes
// the device's buffers from the CDB and reports overflow and underflow
// from the CDB's transfer length (RFC 7143 11.4.5.1).
func TestResidualsThroughEngine(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	_, tg := luWith(t, dev, PolicyConfig{})
	s := session(t, tg)
	a := bytes.Repeat([]byte{'a'}, 1024)
	b := bytes.Repeat([]byte{'b'}, 10000)
	for _, op := range []scsi.Opcode{scsi.OpRead10, scsi.OpRead12, scsi.OpRead16} {
		for _, tc := range []struct {
			blocks uint32
			edtl   int
			data   int
			res    string
		}{
			{1, 10000, 512, "-9488"},
			{1, 200, 200, "+312"},
			{2, 512, 512, "+512"},
			{1, 512, 512, "0"},
		} {
			r := s.Do(0, rw(op, 0, tc.blocks), nil, tc.edtl)
			want(t, fmt.Sprintf("%v %d blocks EDTL %d", op, tc.blocks, tc.edtl), r, scsi.Good)
			if len(r.Data) != tc.data || residual(r) != tc.res {
				t.Errorf("%v %d blocks EDTL %d: %d bytes, residual %s; want %d, %s", op, tc.blocks, tc.edtl, len(r.Data), residual(r), tc.data, tc.res)
			}
		}
	}
	for _, op := range []scsi.Opcode{scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16, scsi.OpWriteAndVerify10, scsi.OpWriteAndVerify12, scsi.OpWriteAndVerify16} {
		for _, tc := range []struct {
			blocks  uint32
			edtl    int
			res     string
			written string // what blocks 0 and 1 hold afterwards
		}{
			{1, 10000, "-9488", "ba"},
			{1, 200, "+312", "aa"},
			{2, 512, "+512", "ba"},
			{1, 1024, "-512", "ba"},
		} {
			want(t, "prepare", s.Do(0, rw(scsi.OpWrite10, 0, 2), a, 0), scsi.Good)
			what := fmt.Sprintf("%v %d blocks EDTL %d", op, tc.blocks, tc.edtl)
			r := s.Do(0, rw(op, 0, tc.blocks), b[:tc.edtl], 0)
			want(t, what, r, scsi.Good)
			if residual(r) != tc.res {
				t.Errorf("%s: residual %s, want %s", what, residual(r), tc.res)
			}
			back := s.Do(0, rw(scsi.OpRead10, 0, 2), nil, 1024)
			want(t, "read back", back, scsi.Good)
			if got := string([]byte{back.Data[0], back.Data[512]}); got != tc.written {
				t.Errorf("%s: blocks hold %q, want %q", what, got, tc.written)
			}
		}
	}
	// Data-in with an allocation length: the device answers in full into
	// a buffer of the CDB's size, EDTL bytes go out, the rest is an
	// overflow (the emulated disk's standard INQUIRY data is 96 bytes).
	r := s.Do(0, testinit.Inquiry(96), nil, 36)
	want(t, "INQUIRY 96, EDTL 36", r, scsi.Good)
	if len(r.Data) != 36 || residual(r) != "+60" {
		t.Errorf("INQUIRY 96, EDTL 36: %d bytes, residual %s", len(r.Data), residual(r))
	}
	r = s.Do(0, testinit.Inquiry(255), nil, 255)
	if len(r.Data) != 96 || residual(r) != "-159" {
		t.Errorf("INQUIRY 255: %d bytes, residual %s", len(r.Data), residual(r))
	}
	// Parameter data the initiator does not send in full never reaches
	// the device.
	dev.sent()
	unmap := []byte{byte(scsi.OpUnmap), 0, 0, 0, 0, 0, 0, 0, 24, 0}
	r = s.Do(0, unmap, make([]byte, 16), 0)
	want(t, "UNMAP 24 bytes, EDTL 16", r, scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInIU)
	if residual(r) != "+8" || len(dev.sent()) != 0 {
		t.Errorf("UNMAP: residual %s, or it reached the device", residual(r))
	}
}

// TestResidualsAtTheHandler: what the engine cannot send (EDTL 0 with no
// R bit, a READ flagged as a write) still gets the CDB's own length.
func TestResidualsAtTheHandler(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	_, tg := luWith(t, dev, PolicyConfig{})
	n := ready(t, tg)
	// READ(10) of one block, EDTL 0: nothing moves, GOOD, 512 wanted.
	r := tg.Execute(context.Background(), &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: testinit.Read10(0, 1)})
	wantSt(t, r, scsi.Good)
	if r.ReadLen != 0 || r.Wanted != 512 {
		t.Errorf("EDTL 0: %d bytes, wanted %d", r.ReadLen, r.Wanted)
	}
	// READ(10) flagged as a write (libiscsi Read10Invalid): the CDB
	// decides; the write data is not sent to the device.
	r = tg.Execute(context.Background(), &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: testinit.Read10(0, 1), Write: true, WriteData: make([]byte, 512)})
	wantSt(t, r, scsi.Good)
	for _, q := range dev.sent() {
		if q.Dir == sgio.DirToDevice {
			t.Errorf("a READ went out with data-out: %+v", q)
		}
	}
}

// TestSplitForThePath: READ and WRITE larger than the path carries are
// split into commands the device takes and complete as one; the Block
// Limits page says what the path carries.
func TestSplitForThePath(t *testing.T) {
	dev := newSGDisk(t, 4096, 0, 4096) // the disk takes 8 MiB, the path 4 KiB
	lu, tg := luWith(t, dev, PolicyConfig{})
	if g := lu.Geometry(); g.MaxTransfer != 4096 || g.Blocks != 4096 {
		t.Fatalf("geometry %+v", g)
	}
	na := nexusOf(iqnB, 9)
	tg.Attach(na, nil)
	clearUAs(t, tg, na, 0)
	if a := tg.Admit(na, iscsi.MakeLUN(0), rw(scsi.OpRead16, 0, 40), true, false); a.Refuse || a.ReadLen != 40*512 {
		t.Fatalf("READ(16) of 40 blocks admitted as %+v", a)
	}
	if a := tg.Admit(na, iscsi.MakeLUN(0), testinit.Inquiry(255), true, false); a.ReadLen != 255 {
		t.Fatalf("INQUIRY admitted as %+v", a)
	}
	s := session(t, tg)
	pattern := make([]byte, 40*512)
	for i := range pattern {
		pattern[i] = byte(i * 7)
	}
	dev.sent()
	want(t, "WRITE(16) 40 blocks", s.Do(0, rw(scsi.OpWrite16, 100, 40), pattern, 0), scsi.Good)
	var got []string
	for _, q := range dev.sent() {
		r, _ := scsi.DecodeRW(q.CDB)
		got = append(got, fmt.Sprintf("%v@%d+%d", r.Op, r.LBA, r.Blocks))
	}
	if want := "[WRITE(16)@100+8 WRITE(16)@108+8 WRITE(16)@116+8 WRITE(16)@124+8 WRITE(16)@132+8]"; fmt.Sprint(got) != want {
		t.Errorf("device got %v, want %s", got, want)
	}
	for _, op := range []scsi.Opcode{scsi.OpRead10, scsi.OpRead12, scsi.OpRead16} {
		r := s.Do(0, rw(op, 100, 40), nil, 40*512)
		want(t, op.String()+" 40 blocks", r, scsi.Good)
		if !bytes.Equal(r.Data, pattern) || residual(r) != "0" {
			t.Errorf("%v 40 blocks: data differs (%d bytes), residual %s", op, len(r.Data), residual(r))
		}
	}
	// READ(6) in 10-byte parts; with EDTL cut (overflow) and a partial
	// last block.
	r6 := []byte{byte(scsi.OpRead6), 0, 0, 100, 20, 0}
	r := s.Do(0, r6, nil, 10*512+100)
	want(t, "READ(6) 20 blocks, EDTL 10.2 blocks", r, scsi.Good)
	if !bytes.Equal(r.Data, pattern[:10*512+100]) || residual(r) != fmt.Sprintf("+%d", 20*512-(10*512+100)) {
		t.Errorf("READ(6): %d bytes, residual %s", len(r.Data), residual(r))
	}
	// A WRITE AND VERIFY with BYTCHK, and a VERIFY with BYTCHK 01b
	// whose second part miscompares: INFORMATION is the offset in the
	// whole data-out.
	wv := rw(scsi.OpWriteAndVerify16, 100, 40)
	wv[1] = 0x02
	want(t, "WRITE AND VERIFY(16) 40 blocks", s.Do(0, wv, pattern, 0), scsi.Good)
	bad := slices.Clone(pattern)
	bad[13*512+5] ^= 0xff
	v := rw(scsi.OpVerify16, 100, 40)
	v[1] = 0x02
	r = s.Do(0, v, bad, 0)
	want(t, "VERIFY(16) BYTCHK 01b, miscompare", r, scsi.CheckCondition, scsi.SenseMiscompare, scsi.ASCMiscompareDuringVerify)
	if sd := r.SenseData(); !sd.InfoValid || sd.Info != 13*512+5 {
		t.Errorf("miscompare INFORMATION %d (valid %v), want %d", sd.Info, sd.InfoValid, 13*512+5)
	}
	// Atomic commands are never split.
	caw := rw16(scsi.OpCompareAndWrite, 0, 0)
	caw[13] = 8 // 8 blocks to compare and 8 to write: 8 KiB
	r = s.Do(0, caw, make([]byte, 16*512), 0)
	want(t, "COMPARE AND WRITE beyond the path", r, scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	hr := tg.Execute(context.Background(), &iscsi.Command{Nexus: na, LUN: iscsi.MakeLUN(0), CDB: caw, Write: true, WriteData: make([]byte, 16*512)})
	if sd := senseOf(t, hr); sd.Key != scsi.SenseIllegalRequest || sd.SKS != [3]byte{0x40 | 0x08 | 7, 0, 13} {
		t.Errorf("COMPARE AND WRITE beyond the path at the handler: %v %x", &sd, sd.SKS)
	}
	// Block Limits: the path's 8 blocks, COMPARE AND WRITE half of it.
	bl := s.Do(0, scsi.InquiryCDB(true, 0xb0, 64), nil, 64)
	want(t, "VPD B0", bl, scsi.Good)
	if len(bl.Data) < 16 || binary.BigEndian.Uint32(bl.Data[8:]) != 8 || bl.Data[5] != 4 {
		t.Errorf("Block Limits % x", bl.Data)
	}
}

// TestSplitFailure: a part that fails ends the command with its sense
// (the LBA in INFORMATION is the device's, absolute), the data read
// before it, and the overflow of the rest.
func TestSplitFailure(t *testing.T) {
	dev := newSGDisk(t, 4096, 0, 4096)
	_, tg := luWith(t, dev, PolicyConfig{})
	s := session(t, tg)
	dev.setInject(func(req *sgio.Request, res *sgio.Result) bool {
		r, err := scsi.DecodeRW(req.CDB)
		if err != nil || r.Kind != scsi.KindRead || r.LBA != 16 {
			return false
		}
		sense := scsi.NewSense(scsi.SenseMediumError, scsi.ASCUnrecoveredReadError)
		sense.InfoValid, sense.Info = true, 19
		res.Status, res.Sense = scsi.CheckCondition, sense.AppendFixed(nil)
		res.Resid = len(req.Data) // nothing of this part moved
		return true
	})
	r := s.Do(0, rw(scsi.OpRead16, 0, 32), nil, 32*512)
	want(t, "READ(16) with a medium error in part 3", r, scsi.CheckCondition, scsi.SenseMediumError, scsi.ASCUnrecoveredReadError)
	if sd := r.SenseData(); sd.Info != 19 {
		t.Errorf("INFORMATION %d", sd.Info)
	}
	if len(r.Data) != 16*512 || residual(r) != fmt.Sprintf("-%d", 16*512) {
		t.Errorf("%d bytes, residual %s", len(r.Data), residual(r))
	}
}

// TestVPDPages: VPD 00h lists what is answered, 83h keeps the device's
// logical unit designators and adds the port's, standard INQUIRY keeps
// the identity with the gateway's TPGS, and a disk without Block Limits
// gets one.
func TestVPDPages(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 64<<10)
	devSup, dev83 := deviceVPD(t, dev)
	// The device has no Block Limits page, says it supports implicit
	// ALUA for its own ports, and has a target port designator.
	dev.setPatch(func(req *sgio.Request, res *sgio.Result) {
		c := req.CDB
		if scsi.Opcode(c[0]) != scsi.OpInquiry {
			return
		}
		data := req.Data[:len(req.Data)-res.Resid]
		switch {
		case c[1]&1 == 0 && len(data) > 5:
			data[5] |= 0x10
		case c[2] == 0x00 && len(data) > 4:
			i := bytes.IndexByte(data[4:], 0xb0)
			copy(data[4+i:], data[5+i:])
			data[3]--
			res.Resid++
		case c[2] == 0x83:
			d := []byte{0x61, 0x93, 0, 8, 0x50, 0, 0, 0, 0, 0, 0, 1} // SAS target port NAA
			n := copy(req.Data[len(data):], d)
			binary.BigEndian.PutUint16(data[2:4], binary.BigEndian.Uint16(data[2:4])+uint16(len(d)))
			res.Resid -= n
		}
	})
	dev.inject = func(req *sgio.Request, res *sgio.Result) bool {
		if c := req.CDB; scsi.Opcode(c[0]) == scsi.OpInquiry && c[1]&1 != 0 && c[2] == 0xb0 {
			res.Status, res.Sense = scsi.CheckCondition, scsi.InvalidFieldInCDB(2, -1)
			return true
		}
		return false
	}
	_, tg := luWith(t, dev, PolicyConfig{})
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	r, std := runData(t, tg, n, 0, testinit.Inquiry(96), 96)
	wantSt(t, r, scsi.Good)
	if string(std[8:16]) != "SANBRDG " || std[5]&0x30 != 0 {
		t.Errorf("standard INQUIRY: vendor %q, byte 5 %02x", std[8:16], std[5])
	}
	r, sup := runData(t, tg, n, 0, scsi.InquiryCDB(true, 0, 255), 255)
	wantSt(t, r, scsi.Good)
	if !bytes.Equal(sup[4:], devSup) {
		t.Errorf("VPD 00 % x, want % x (the device's and B0)", sup[4:], devSup)
	}
	r, bl := runData(t, tg, n, 0, scsi.InquiryCDB(true, 0xb0, 255), 255)
	wantSt(t, r, scsi.Good)
	if len(bl) != 64 || bl[1] != 0xb0 || binary.BigEndian.Uint16(bl[2:]) != 0x3c || binary.BigEndian.Uint32(bl[8:]) != 128 {
		t.Errorf("made-up Block Limits % x", bl)
	}
	r, id := runData(t, tg, n, 0, scsi.InquiryCDB(true, 0x83, 1024), 1024)
	wantSt(t, r, scsi.Good)
	name := testTarget + ",t,0x0001"
	pad := make([]byte, (len(name)+4)&^3-len(name))
	wantID := slices.Concat(dev83[4:],
		[]byte{0x51, 0x94, 0, 4, 0, 0, 0, 1},
		[]byte{0x51, 0x95, 0, 4, 0, 0, 0, 1},
		[]byte{0x53, 0x98, 0, byte(len(name) + len(pad))}, []byte(name), pad)
	if !bytes.Equal(id[4:], wantID) || int(binary.BigEndian.Uint16(id[2:])) != len(wantID) {
		t.Errorf("VPD 83\n got % x\nwant % x", id[4:], wantID)
	}
	// Cut to the allocation length, Wanted the whole page.
	r, short := runData(t, tg, n, 0, scsi.InquiryCDB(true, 0x83, 8), 8)
	if r.Wanted != 8 || !bytes.Equal(short, id[:8]) {
		t.Errorf("VPD 83 alloc 8: % x wanted %d", short, r.Wanted)
	}
	// Another port: its own designators.
	tg2 := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: tg.lus[0]})))
	n2 := &iscsi.Nexus{InitiatorName: iqnB, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, 2}, TargetName: testTarget, TPGT: 7}
	tg2.Attach(n2, nil)
	_, id2 := runData(t, tg2, n2, 0, scsi.InquiryCDB(true, 0x83, 1024), 1024)
	if !bytes.Contains(id2, []byte{0x51, 0x94, 0, 4, 0, 0, 0, 7}) || !bytes.Contains(id2, []byte(testTarget+",t,0x0007\x00")) {
		t.Errorf("VPD 83 through portal group 7: % x", id2)
	}
}

// deviceVPD returns the device's own VPD 00h page list and its page 83h.
func deviceVPD(t *testing.T, dev sgio.Device) ([]byte, []byte) {
	t.Helper()
	get := func(page byte) []byte {
		buf := make([]byte, 1024)
		var res sgio.Result
		if err := dev.Execute(context.Background(), &sgio.Request{CDB: scsi.InquiryCDB(true, page, 1024), Dir: sgio.DirFromDevice, Data: buf}, &res); err != nil || res.Status != scsi.Good {
			t.Fatalf("VPD %02x: %v %v", page, err, res.Status)
		}
		return buf[:res.Transferred(len(buf))]
	}
	return get(0)[4:], get(0x83)
}

// TestSenseFormat: the gateway presents one D_SENSE per logical unit,
// changed by MODE SELECT and shown by MODE SENSE, and converts every
// sense it sends to it, the device's and its own.
func TestSenseFormat(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	var selected []byte
	dev.inject = func(req *sgio.Request, res *sgio.Result) bool {
		switch scsi.Opcode(req.CDB[0]) {
		case scsi.OpModeSelect10:
			selected = append([]byte(nil), req.Data...) // the emulated disk has no MODE SELECT
			return true
		}
		return false
	}
	lu, tg := luWith(t, dev, PolicyConfig{})
	na, nb := nexusOf(iqnA, 1), nexusOf(iqnB, 2)
	tg.Attach(na, nil)
	tg.Attach(nb, nil)
	clearUAs(t, tg, na, 0)
	clearUAs(t, tg, nb, 0)
	// The control page with D_SENSE set.
	param := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	msel := []byte{byte(scsi.OpModeSelect10), 0x10, 0, 0, 0, 0, 0, 0, byte(len(param)), 0}
	wantSt(t, tg.Execute(context.Background(), &iscsi.Command{Nexus: na, LUN: iscsi.MakeLUN(0), CDB: msel, Write: true, WriteData: param}), scsi.Good)
	if !lu.dsense.Load() || selected == nil {
		t.Fatal("D_SENSE not taken from MODE SELECT")
	}
	// The other nexus: MODE PARAMETERS CHANGED, in descriptor format.
	r := run(t, tg, nb, 0, testinit.TUR(), 0)
	if !scsi.IsDescriptorSense(r.Sense) {
		t.Errorf("unit attention in fixed format: % x", r.Sense)
	}
	wantCheck(t, r, scsi.SenseUnitAttention, scsi.ASCModeParametersChanged)
	// The device's own sense (fixed) converted, INFORMATION kept.
	r = run(t, tg, na, 0, rw16(scsi.OpRead16, 4000, 1), 512)
	if !scsi.IsDescriptorSense(r.Sense) {
		t.Errorf("device sense not converted: % x", r.Sense)
	}
	wantCheck(t, r, scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	// MODE SENSE shows the gateway's D_SENSE (the disk's page says 0).
	r, ms := runData(t, tg, na, 0, []byte{byte(scsi.OpModeSense10), 0x08, 0x0a, 0, 0, 0, 0, 0, 255, 0}, 255)
	wantSt(t, r, scsi.Good)
	if off, ok := controlPage(ms, true); !ok || ms[off]&0x04 == 0 {
		t.Errorf("MODE SENSE control page without D_SENSE: % x", ms)
	}
	// And back to fixed.
	param[10] = 0
	wantSt(t, tg.Execute(context.Background(), &iscsi.Command{Nexus: na, LUN: iscsi.MakeLUN(0), CDB: msel, Write: true, WriteData: param}), scsi.Good)
	r = run(t, tg, na, 0, rw16(scsi.OpRead16, 4000, 1), 512)
	if scsi.IsDescriptorSense(r.Sense) {
		t.Errorf("sense still in descriptor format: % x", r.Sense)
	}
}

// TestCheckConditionWithoutSense: the gateway asks the device with
// REQUEST SENSE before answering.
func TestCheckConditionWithoutSense(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	_, tg := luWith(t, dev, PolicyConfig{})
	n := ready(t, tg)
	dev.setInject(func(req *sgio.Request, res *sgio.Result) bool {
		switch scsi.Opcode(req.CDB[0]) {
		case scsi.OpRead10:
			res.Status = scsi.CheckCondition // and no sense
			return true
		case scsi.OpRequestSense:
			s := scsi.NewSense(scsi.SenseMediumError, scsi.ASCUnrecoveredReadError)
			s.InfoValid, s.Info = true, 3
			res.Resid = len(req.Data) - copy(req.Data, s.AppendFixed(nil))
			return true
		}
		return false
	})
	r := run(t, tg, n, 0, testinit.Read10(3, 1), 512)
	wantCheck(t, r, scsi.SenseMediumError, scsi.ASCUnrecoveredReadError)
	if s := senseOf(t, r); s.Info != 3 {
		t.Errorf("INFORMATION %d", s.Info)
	}
}

// TestDevicePolicy: refused opcodes, allowed and denied ones, the LBA
// range of a disk, REPORT TARGET PORT GROUPS of an unshared logical unit.
func TestDevicePolicy(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	_, tg := luWith(t, dev, PolicyConfig{Allow: []byte{0x04}, Deny: []byte{0x2f}})
	n := ready(t, tg)
	dev.sent()
	for _, tc := range []struct {
		name string
		cdb  []byte
		key  scsi.SenseKey
		asc  scsi.ASC
	}{
		{"SANITIZE", []byte{0x48, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}, scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode},
		{"WRITE BUFFER", []byte{0x3b, 0x05, 0, 0, 0, 0, 0, 0, 0, 0}, scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode},
		{"SECURITY PROTOCOL OUT", []byte{0xb5, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode},
		{"ATA PASS-THROUGH(16)", make16(0x85), scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode},
		{"vendor C1h", []byte{0xc1, 0, 0, 0, 0, 0}, scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode},
		{"denied VERIFY(10)", []byte{0x2f, 0, 0, 0, 0, 0, 0, 0, 1, 0}, scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode},
		{"READ(16) beyond the end", rw16(scsi.OpRead16, 2047, 2), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange},
		{"WRITE(10) beyond the end", testinit.Write10(2048, 1), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange},
		{"GET LBA STATUS beyond the end", getLBAStatus(2048), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange},
		{"REPORT TARGET PORT GROUPS", []byte{0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB},
	} {
		cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: tc.cdb, Read: true, ReadBuf: make([]byte, 256), Write: true, WriteData: make([]byte, 1024)}
		r := tg.Execute(context.Background(), cmd)
		if s := senseOf(t, r); s.Key != tc.key || s.ASC != tc.asc {
			t.Errorf("%s: %v, want %v %v", tc.name, &s, tc.key, tc.asc)
		}
	}
	if q := dev.sent(); len(q) != 0 {
		t.Errorf("refused commands reached the device: %d", len(q))
	}
	// GET LBA STATUS on the last block, and an allowed FORMAT UNIT, pass.
	wantSt(t, run(t, tg, n, 0, getLBAStatus(2047), 32), scsi.Good)
	run(t, tg, n, 0, []byte{0x04, 0, 0, 0, 0, 0}, 0)
	if q := dev.sent(); len(q) != 2 || q[1].CDB[0] != 0x04 {
		t.Errorf("allowed FORMAT UNIT did not reach the device: %v", q)
	}
}

func make16(op byte) []byte {
	c := make([]byte, 16)
	c[0] = op
	return c
}

func getLBAStatus(lba uint64) []byte {
	c := make([]byte, 16)
	c[0], c[1] = byte(scsi.OpServiceActionIn16), byte(scsi.SAGetLBAStatus)
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], 32)
	return c
}

// TestCapacityChange: after CAPACITY DATA HAS CHANGED from the device,
// the gateway reads the capacity again before its next range check.
func TestCapacityChange(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	lu, tg := luWith(t, dev, PolicyConfig{})
	n := ready(t, tg)
	grown := false
	dev.setInject(func(req *sgio.Request, res *sgio.Result) bool {
		if scsi.Opcode(req.CDB[0]) == scsi.OpTestUnitReady && !grown {
			grown = true
			res.Status, res.Sense = scsi.CheckCondition, scsi.FixedSense(scsi.SenseUnitAttention, scsi.ASCCapacityDataChanged)
			return true
		}
		return false
	})
	dev.setPatch(func(req *sgio.Request, res *sgio.Result) {
		if c := req.CDB; grown && scsi.Opcode(c[0]) == scsi.OpServiceActionIn16 && c[1]&0x1f == byte(scsi.SAReadCapacity16) {
			binary.BigEndian.PutUint64(req.Data[0:8], 4095)
		}
	})
	wantCheck(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCCapacityDataChanged)
	dev.sent()
	r := run(t, tg, n, 0, rw16(scsi.OpRead16, 3000, 1), 512)
	// The gateway let it through (the emulated disk itself is still
	// 2048 blocks and refuses it).
	wantCheck(t, r, scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	if g := lu.Geometry(); g.Blocks != 4096 {
		t.Errorf("capacity %d after the change", g.Blocks)
	}
	if q := dev.sent(); len(q) != 2 {
		t.Errorf("%d requests, want READ CAPACITY then READ", len(q))
	}
}

// TestRetries: a command the transport requeued is sent again, unless
// it must not be sent twice.
func TestRetries(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	_, tg := luWith(t, dev, PolicyConfig{})
	n := ready(t, tg)
	requeue := 0
	dev.setInject(func(req *sgio.Request, res *sgio.Result) bool {
		if requeue > 0 {
			requeue--
			res.HostStatus = scsi.HostRequeue
			return true
		}
		return false
	})
	requeue = 1
	wantSt(t, run(t, tg, n, 0, testinit.Read10(0, 1), 512), scsi.Good)
	requeue = 5
	wantSt(t, run(t, tg, n, 0, testinit.Read10(0, 1), 512), scsi.Busy)
	if requeue != 5-1-maxRetries {
		t.Errorf("%d requeues left", requeue)
	}
	requeue = 1
	caw := rw16(scsi.OpCompareAndWrite, 0, 0)
	caw[13] = 1
	r := tg.Execute(context.Background(), &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: caw, Write: true, WriteData: make([]byte, 1024)})
	wantSt(t, r, scsi.Busy)
	if requeue != 0 {
		t.Error("COMPARE AND WRITE was retried")
	}
}

// tapeLU returns a target serving a tape at LUN 0 and an attached nexus.
func tapeLU(t *testing.T, d *tapeDev, c PolicyConfig) (*LU, *Target, *iscsi.Nexus) {
	t.Helper()
	lu, tg := luWith(t, d, c)
	n := ready(t, tg)
	return lu, tg, n
}

func read6(fixed bool, n int) []byte {
	c := []byte{byte(scsi.OpRead6), 0, byte(n >> 16), byte(n >> 8), byte(n), 0}
	if fixed {
		c[1] = 1
	}
	return c
}

func write6(fixed bool, n int) []byte {
	c := read6(fixed, n)
	c[0] = byte(scsi.OpWrite6)
	return c
}

// TestTape: a tape's ILI, FILEMARK and EOM with their INFORMATION reach
// the initiator intact (Linux st reads the residual from there), in the
// stream commands descriptor when D_SENSE is set; a short variable
// block reads with the right residual; timeouts and policy are a tape's.
func TestTape(t *testing.T) {
	d := newTape(64 << 10)
	lu, tg, n := tapeLU(t, d, PolicyConfig{})
	if g := lu.Geometry(); g.Type != scsi.TypeTape {
		t.Fatalf("type %v", g.Type)
	}
	exec := func(cdb, out []byte, in int) iscsi.Response {
		return tg.Execute(context.Background(), &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: cdb,
			Read: in > 0, ReadBuf: make([]byte, in), Write: out != nil, WriteData: out})
	}
	wantSt(t, exec(write6(false, 1000), bytes.Repeat([]byte{1}, 1000), 0), scsi.Good)
	wantSt(t, exec([]byte{byte(scsi.OpWriteFilemarks6), 0, 0, 0, 1, 0}, nil, 0), scsi.Good)
	wantSt(t, exec(write6(false, 3000), bytes.Repeat([]byte{2}, 3000), 0), scsi.Good)
	wantSt(t, exec([]byte{byte(scsi.OpRewind), 0, 0, 0, 0, 0}, nil, 0), scsi.Good)
	// A short block: 1000 bytes of the 4096 asked, ILI, INFORMATION 3096.
	r := exec(read6(false, 4096), nil, 4096)
	s := senseOf(t, r)
	if s.Key != scsi.SenseNoSense || !s.ILI || !s.InfoValid || s.Info != 3096 || r.ReadLen != 1000 {
		t.Errorf("short block: %+v, %d bytes", s, r.ReadLen)
	}
	// The filemark: FILEMARK, INFORMATION the whole request.
	r = exec(read6(false, 4096), nil, 4096)
	if s := senseOf(t, r); !s.Filemark || s.Info != 4096 || r.ReadLen != 0 {
		t.Errorf("filemark: %+v, %d bytes", s, r.ReadLen)
	}
	// D_SENSE: the stream commands descriptor carries ILI.
	lu.dsense.Store(true)
	r = exec(read6(false, 2000), nil, 2000)
	if !scsi.IsDescriptorSense(r.Sense) || !bytes.Contains(r.Sense[8:], []byte{0x04, 0x02, 0, 0x20}) {
		t.Errorf("long block in descriptor format: % x", r.Sense)
	}
	if s := senseOf(t, r); !s.ILI || s.Info != uint64(^uint64(999)) && int32(s.Info) != -1000 || r.ReadLen != 2000 {
		t.Errorf("long block: %+v, %d bytes", s, r.ReadLen)
	}
	lu.dsense.Store(false)
	// A block beyond the path: ILLEGAL REQUEST, pointing at TRANSFER LENGTH.
	r = exec(read6(false, 128<<10), nil, 128<<10)
	wantCheck(t, r, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	if s := senseOf(t, r); s.SKS[2] != 2 {
		t.Errorf("field pointer %+v", s.SKS)
	}
	// READ BLOCK LIMITS says what the path carries.
	_, bl := runData(t, tg, n, 0, []byte{byte(scsi.OpReadBlockLimits), 0, 0, 0, 0, 0}, 6)
	if got := int(bl[1])<<16 | int(bl[2])<<8 | int(bl[3]); got != 64<<10 {
		t.Errorf("MAXIMUM BLOCK LENGTH LIMIT %d", got)
	}
	// Fixed-block mode from MODE SELECT: the CDB's blocks count.
	sel := []byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0} // 512-byte blocks
	wantSt(t, exec([]byte{byte(scsi.OpModeSelect6), 0x10, 0, 0, 12, 0}, sel, 0), scsi.Good)
	if g := lu.Geometry(); g.BlockSize != 512 {
		t.Fatalf("fixed block length %d", g.BlockSize)
	}
	wantSt(t, exec(write6(true, 2), make([]byte, 4096), 0), scsi.Good) // EDTL larger than 2 blocks
	if got := len(d.recs[len(d.recs)-1]); got != 1024 {
		t.Errorf("fixed write of 2 blocks stored %d bytes", got)
	}
	// Timeouts: REWIND is long, INQUIRY is not.
	if d.timeouts[scsi.OpRewind] != DefaultTapeLongTimeout || d.timeouts[scsi.OpWrite6] != DefaultTapeLongTimeout || d.timeouts[scsi.OpWriteFilemarks6] != DefaultTapeLongTimeout {
		t.Errorf("timeouts %v", d.timeouts)
	}
	exec([]byte{byte(scsi.OpTestUnitReady), 0, 0, 0, 0, 0}, nil, 0)
	if d.timeouts[scsi.OpTestUnitReady] != DefaultTapeTimeout {
		t.Errorf("TEST UNIT READY timeout %v", d.timeouts[scsi.OpTestUnitReady])
	}
	// FORMAT MEDIUM is a tape's business, not refused.
	r = exec([]byte{0x04, 0, 0, 0, 0, 0}, nil, 0)
	if s := senseOf(t, r); s.ASC != scsi.ASCInvalidOpcode {
		t.Errorf("FORMAT MEDIUM: %v", &s)
	}
	if _, ok := d.timeouts[0x04]; !ok {
		t.Error("FORMAT MEDIUM did not reach the tape")
	}
}

// TestTapeConfigTimeouts: the configuration's timeouts replace the
// type's, and a read-only tape refuses writes and reports WP.
func TestTapeConfigTimeouts(t *testing.T) {
	d := newTape(64 << 10)
	_, tg, n := tapeLU(t, d, PolicyConfig{Timeout: time.Minute, LongTimeout: 9 * time.Hour})
	run(t, tg, n, 0, []byte{byte(scsi.OpRewind), 0, 0, 0, 0, 0}, 0)
	run(t, tg, n, 0, testinit.TUR(), 0)
	if d.timeouts[scsi.OpRewind] != 9*time.Hour || d.timeouts[scsi.OpTestUnitReady] != time.Minute {
		t.Errorf("timeouts %v", d.timeouts)
	}
	lu, _ := luWith(t, newTape(64<<10), PolicyConfig{})
	ro := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu, ReadOnly: true})), lu)
	ro.Attach(n, nil)
	clearUAs(t, ro, n, 0)
	for _, cdb := range [][]byte{write6(false, 10), {byte(scsi.OpWriteFilemarks6), 0, 0, 0, 1, 0}, {byte(scsi.OpErase6), 0, 0, 0, 0, 0}} {
		r := ro.Execute(context.Background(), &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: cdb, Write: true, WriteData: make([]byte, 10)})
		wantCheck(t, r, scsi.SenseDataProtect, scsi.ASCWriteProtected)
	}
	r, ms := runData(t, ro, n, 0, []byte{byte(scsi.OpModeSense6), 0, 0, 0, 12, 0}, 12)
	wantSt(t, r, scsi.Good)
	if ms[2]&0x80 == 0 {
		t.Errorf("no WP: % x", ms)
	}
}

// TestPolicyTables: what each type refuses, marks write-class, long and
// once, as SBC, SSC, SMC and MMC give the codes their meaning.
func TestPolicyTables(t *testing.T) {
	type q struct{ refuse, write, long, once bool }
	rows := []struct {
		dt scsi.DeviceType
		op byte
		q  q
	}{
		{scsi.TypeDisk, 0x04, q{true, true, true, true}},        // FORMAT UNIT
		{scsi.TypeDisk, 0x48, q{true, true, true, true}},        // SANITIZE
		{scsi.TypeDisk, 0x2a, q{false, true, false, false}},     // WRITE(10)
		{scsi.TypeDisk, 0x89, q{false, true, false, true}},      // COMPARE AND WRITE
		{scsi.TypeDisk, 0x28, q{}},                              // READ(10)
		{scsi.TypeDisk, 0xa1, q{true, false, false, true}},      // ATA PASS-THROUGH(12)
		{scsi.TypeTape, 0x04, q{false, true, true, true}},       // FORMAT MEDIUM
		{scsi.TypeTape, 0x01, q{false, false, true, false}},     // REWIND
		{scsi.TypeTape, 0x11, q{false, false, true, true}},      // SPACE(6)
		{scsi.TypeTape, 0x08, q{false, false, true, true}},      // READ(6)
		{scsi.TypeTape, 0x12, q{}},                              // INQUIRY
		{scsi.TypeTape, 0xb5, q{true, false, false, true}},      // SECURITY PROTOCOL OUT
		{scsi.TypeChanger, 0xa5, q{false, false, true, true}},   // MOVE MEDIUM
		{scsi.TypeChanger, 0x07, q{false, false, true, false}},  // INITIALIZE ELEMENT STATUS
		{scsi.TypeChanger, 0xb5, q{}},                           // REQUEST VOLUME ELEMENT ADDRESS
		{scsi.TypeCDROM, 0x04, q{true, true, true, true}},       // FORMAT UNIT
		{scsi.TypeCDROM, 0xa1, q{false, true, true, true}},      // BLANK
		{scsi.TypeCDROM, 0x28, q{}},                             // READ(10)
		{scsi.TypeEnclosure, 0x3b, q{true, false, true, true}},  // WRITE BUFFER
		{scsi.TypeEnclosure, 0xff, q{true, false, false, true}}, // vendor
	}
	for _, row := range rows {
		p, err := newPolicy(row.dt, PolicyConfig{})
		if err != nil {
			t.Fatal(err)
		}
		r := p.rule(row.op)
		if got := (q{r.refuse, r.write, r.long, r.once}); got != row.q {
			t.Errorf("%v %02xh: %+v, want %+v", row.dt, row.op, got, row.q)
		}
	}
	if _, err := newPolicy(scsi.TypeDisk, PolicyConfig{OpcodeTimeouts: map[byte]time.Duration{0x28: 0}}); err == nil {
		t.Error("zero opcode timeout accepted")
	}
	p, _ := newPolicy(scsi.TypeDisk, PolicyConfig{OpcodeTimeouts: map[byte]time.Duration{0x35: 5 * time.Minute}})
	if p.timeout[0x35] != 5*time.Minute || p.timeout[0x28] != 0 || p.timeout[0x04] != DefaultLongTimeout {
		t.Errorf("timeouts %v %v %v", p.timeout[0x35], p.timeout[0x28], p.timeout[0x04])
	}
}

// TestDevicesProbed: what NewLU learned is in the log line and the
// geometry; a device that answers nothing leaves it unknown.
func TestDevicesProbed(t *testing.T) {
	lu := newLU(t, "mute", &failingDevice{err: sgio.ErrGone})
	if g := lu.Geometry(); g.Blocks != 0 || lu.info.answered || lu.pol.dt != g.Type {
		t.Errorf("mute device: %+v %+v", g, lu.info)
	}
	d := newTape(1 << 20)
	lu = newLU(t, "tape", d)
	if g := lu.Geometry(); g.Type != scsi.TypeTape || lu.info.vendor != "TESTTAPE" || lu.info.product != "SMALL TAPE" || g.MaxTransfer != 1<<20 {
		t.Errorf("tape: %+v %+v", g, lu.info)
	}
}

// TestSupportedOpcodes: REPORT SUPPORTED OPERATION CODES agrees with the
// policy: a denied command is neither listed nor supported.
func TestSupportedOpcodes(t *testing.T) {
	dev := newSGDisk(t, 2048, 0, 0)
	_, tg := luWith(t, dev, PolicyConfig{Deny: []byte{0x28}})
	n := ready(t, tg)
	rsoc := func(opts, op byte, sa uint16, alloc uint32) []byte {
		c := []byte{byte(scsi.OpMaintenanceIn), byte(scsi.SAReportSupportedOpcodes), opts, op, byte(sa >> 8), byte(sa), 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(c[6:], alloc)
		return c
	}
	r, all := runData(t, tg, n, 0, rsoc(0, 0, 0, 8192), 8192)
	wantSt(t, r, scsi.Good)
	if int(binary.BigEndian.Uint32(all[0:4])) != len(all)-4 {
		t.Fatalf("COMMAND DATA LENGTH %d for %d bytes", binary.BigEndian.Uint32(all[0:4]), len(all)-4)
	}
	var ops []byte
	for p := 4; p+8 <= len(all); p += 8 + 12*int(all[p+5]>>1&1) {
		ops = append(ops, all[p])
	}
	if slices.Contains(ops, 0x28) || !slices.Contains(ops, 0x88) || len(ops) < 10 {
		t.Errorf("listed %x", ops)
	}
	r, one := runData(t, tg, n, 0, rsoc(1, 0x28, 0, 64), 64)
	wantSt(t, r, scsi.Good)
	if len(one) != 4 || one[1]&0x07 != 1 {
		t.Errorf("READ(10) reported % x", one)
	}
	_, one = runData(t, tg, n, 0, rsoc(1, 0x88, 0, 64), 64)
	if len(one) < 4 || one[1]&0x07 != 3 {
		t.Errorf("READ(16) reported % x", one)
	}
}

// TestQuirkNoDataBuffer: behind an adapter that fails every command
// without data (QEMU's megasas, the rig's CD-ROM), commands without data
// are sent with a data-in buffer: the listed drive, and an unlisted one
// whose TEST UNIT READY shows the symptom at NewLU. A drive that fails
// either way keeps its answer.
func TestQuirkNoDataBuffer(t *testing.T) {
	for _, tc := range []struct {
		product string
		broken  bool // fails also with a buffer
		quirk   bool
	}{
		{"DVDRAM GH24NSD1", false, true},
		{"BD-RE BH16NS40", false, true},
		{"BD-RE BH16NS40", true, false},
	} {
		dev := newSGDisk(t, 2048, 0, 0)
		dev.setPatch(func(req *sgio.Request, res *sgio.Result) {
			if c := req.CDB; scsi.Opcode(c[0]) == scsi.OpInquiry && c[1]&1 == 0 && len(req.Data) >= 32 {
				req.Data[0] = byte(scsi.TypeCDROM)
				copy(req.Data[8:16], "HL-DT-ST")
				copy(req.Data[16:32], fmt.Sprintf("%-16s", tc.product))
			}
		})
		dev.setInject(func(req *sgio.Request, res *sgio.Result) bool {
			switch scsi.Opcode(req.CDB[0]) {
			case scsi.OpTestUnitReady, scsi.OpPreventAllowMediumRemoval:
				if req.Dir == sgio.DirNone || tc.broken {
					res.Status, res.Sense = scsi.CheckCondition, scsi.FixedSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
				} else {
					res.Resid = len(req.Data) // nothing moved
				}
				return true
			}
			return false
		})
		lu, tg := luWith(t, dev, PolicyConfig{})
		if lu.pol.dt != scsi.TypeCDROM || (lu.quirks&quirkNoDataBuffer != 0) != tc.quirk {
			t.Fatalf("%s: type %v, quirks %b", tc.product, lu.pol.dt, lu.quirks)
		}
		n := nexusOf(iqnA, 1)
		tg.Attach(n, nil)
		tg.nexusOf(n).view.Load().itls[0].ua.take()
		dev.sent()
		for _, cdb := range [][]byte{testinit.TUR(), {byte(scsi.OpPreventAllowMediumRemoval), 0, 0, 0, 1, 0}} {
			r := run(t, tg, n, 0, cdb, 0)
			if tc.quirk {
				wantSt(t, r, scsi.Good)
				if r.ReadLen != 0 {
					t.Errorf("%s: %d bytes of scratch data went out", tc.product, r.ReadLen)
				}
			} else {
				wantCheck(t, r, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
			}
		}
		for _, q := range dev.sent() {
			if tc.quirk != (q.Dir == sgio.DirFromDevice && len(q.Data) == noDataBufferLen) {
				t.Errorf("%s: %x sent %v with %d bytes", tc.product, q.CDB[0], q.Dir, len(q.Data))
			}
		}
	}
}

// TestTapeMediumChange: a tape's NOT READY TO READY CHANGE (a cartridge
// loaded) reaches the initiator, and the gateway does not ask the tape
// READ CAPACITY afterwards.
func TestTapeMediumChange(t *testing.T) {
	d := newTape(64 << 10)
	ua := false
	lu, tg := luWith(t, &uaTape{tapeDev: d, ua: &ua}, PolicyConfig{})
	n := ready(t, tg)
	ua = true
	wantCheck(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.SenseUnitAttention, scsi.ASCNotReadyToReadyChange)
	if lu.capStale.Load() {
		t.Error("a tape's medium change marked the capacity stale")
	}
	d.timeouts = map[scsi.Opcode]time.Duration{}
	wantSt(t, run(t, tg, n, 0, testinit.TUR(), 0), scsi.Good)
	if _, asked := d.timeouts[scsi.OpReadCapacity10]; asked {
		t.Error("the tape was asked READ CAPACITY")
	}
}

// uaTape is a tape that reports NOT READY TO READY CHANGE once, on its
// first TEST UNIT READY after *ua is set.
type uaTape struct {
	*tapeDev
	ua *bool
}

func (u *uaTape) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	if scsi.Opcode(req.CDB[0]) == scsi.OpTestUnitReady && *u.ua {
		*u.ua = false
		*res = sgio.Result{Status: scsi.CheckCondition, Sense: scsi.FixedSense(scsi.SenseUnitAttention, scsi.ASCNotReadyToReadyChange)}
		return nil
	}
	return u.tapeDev.Execute(ctx, req, res)
}
