package iscsi

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// blockHandler is a block device for the limit tests: the whole READ and
// WRITE family on 512-byte blocks (decoded with scsi.DecodeRW), INQUIRY
// and TEST UNIT READY. As an Admitter it bounds commands the way a
// pass-through LU does, with scsi.DataTransfer, its capacity and a
// transfer limit. slots, when set, bounds the commands it runs at once
// (a device queue).
type blockHandler struct {
	memHandler
	maxXfer uint32
	slots   chan struct{}
	execs   atomic.Int64
	// gates, when set, hold the reads of the session whose ISID ends
	// in the key until a value arrives.
	gates map[byte]chan struct{}
}

func newBlockHandler(size int, maxXfer uint32) *blockHandler {
	h := &blockHandler{maxXfer: maxXfer}
	h.memHandler = *newMemHandler(size / 512)
	return h
}

func (h *blockHandler) Admit(_ *Nexus, _ LUN, cdb []byte, _, _ bool) Admission {
	return AdmitCDB(cdb, scsi.TypeDisk, 512, uint64(len(h.data)/512), h.maxXfer)
}

func (h *blockHandler) Execute(ctx context.Context, cmd *Command) Response {
	h.execs.Add(1)
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			return Response{Status: scsi.TaskAborted}
		}
		defer func() { <-h.slots }()
	}
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpTestUnitReady:
		return Response{}
	case scsi.OpInquiry:
		inq := make([]byte, 36)
		inq[4] = 31
		copy(inq[8:], "SANBRIDG")
		want := int(binary.BigEndian.Uint16(cmd.CDB[3:5]))
		return Response{ReadLen: copy(cmd.ReadBuf, inq[:min(want, len(inq))]), Wanted: min(want, len(inq))}
	}
	r, err := scsi.DecodeRW(cmd.CDB)
	if err != nil || r.Kind != scsi.KindRead && r.Kind != scsi.KindWrite {
		return CheckConditionResponse(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	}
	off, n := int(r.LBA)*512, int(r.Blocks)*512
	if off+n > len(h.data) {
		return CheckConditionResponse(scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Kind == scsi.KindRead {
		if g := h.gates[cmd.Nexus.ISID[5]]; g != nil {
			h.mu.Unlock()
			<-g
			h.mu.Lock()
		}
		return Response{ReadLen: copy(cmd.ReadBuf, h.data[off:off+n]), Wanted: n}
	}
	copy(h.data[off:off+n], cmd.WriteData)
	return Response{Wanted: n}
}

// limitTarget is a server on loopback with one target served by h.
func limitTarget(t *testing.T, h Handler, mod func(*Config)) *testTarget {
	t.Helper()
	return startTarget(t, &Target{Name: testIQN, Handler: h}, mod)
}

// heapSampler records the peak of the heap's object bytes (live and not
// yet swept) while it runs.
type heapSampler struct {
	stop, done chan struct{}
	peak       uint64
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			h.peak = max(h.peak, s[0].Value.Uint64())
			select {
			case <-h.stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return h
}

func (h *heapSampler) finish() uint64 {
	close(h.stop)
	<-h.done
	return h.peak
}

// heapBaseline collects garbage and returns the heap then.
func heapBaseline() uint64 {
	runtime.GC()
	runtime.GC()
	return heapObjects()
}

// checkSense fails unless f is a SCSI Response with CHECK CONDITION and
// sense data of key and asc.
func checkSense(t *testing.T, what string, f *Frame, key scsi.SenseKey, asc scsi.ASC) {
	t.Helper()
	if f.BHS.Opcode() != OpSCSIResponse || f.BHS[3] != byte(scsi.CheckCondition) {
		t.Fatalf("%s: %s status %#x, want CHECK CONDITION", what, f.BHS.Opcode(), f.BHS[3])
	}
	s, err := scsi.ParseSense(f.Data[2:])
	if err != nil || s.Key != key || s.ASC != asc {
		t.Fatalf("%s: sense %x (%v), want %v %v", what, f.Data, err, key, asc)
	}
}

// residualOf returns the U/O flags and residual count of a final PDU.
func residualOf(f *Frame) (over, under bool, count uint32) {
	return f.BHS[1]&0x04 != 0, f.BHS[1]&0x02 != 0, f.BHS.u32(44)
}

func cdb16(op scsi.Opcode, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = byte(op)
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

// TestHostileTransferLengths: from several sessions at once, READ and
// WRITE commands whose EDTL goes up to 4 GiB - 1 and whose CDB asks for
// more than the LU's transfer limit, more than the medium, or something
// else than EDTL are answered promptly with the right status, sense and
// residual; the sessions stay usable; the heap stays under the budget
// plus a margin.
func TestHostileTransferLengths(t *testing.T) {
	const (
		size    = 64 << 20
		maxXfer = 1 << 20
		budget  = 64 << 20
		margin  = 32 << 20
		blocks  = size / 512
		edtlMax = 1<<32 - 1
	)
	h := newBlockHandler(size, maxXfer)
	copy(h.data, hostilePattern)
	tt := limitTarget(t, h, func(c *Config) { c.Limits.Memory = budget })
	base := heapBaseline()
	hs := startHeapSampler()
	start := time.Now()
	var slowest atomic.Int64
	t.Run("sessions", func(t *testing.T) {
		for s := 0; s < 4; s++ {
			t.Run(fmt.Sprint(s), func(t *testing.T) {
				t.Parallel()
				in := tt.dial()
				in.login(byte(10+s), "ImmediateData=Yes", "InitialR2T=No", "FirstBurstLength=65536",
					"MaxRecvDataSegmentLength=65536", "MaxBurstLength=262144")
				for round := 0; round < 10; round++ {
					t0 := time.Now()
					hostileRound(t, in, h, s, round)
					slowest.Store(max(slowest.Load(), int64(time.Since(t0))))
				}
			})
		}
	})
	peak := hs.finish()
	st := tt.srv.LimitStats()
	t.Logf("4 sessions x 10 rounds of 13 hostile commands in %v (slowest round %v); heap peak %d MiB over a %d MiB baseline; server peak %d MiB of %d MiB; %d refused before allocation",
		time.Since(start).Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond),
		(peak-base)>>20, base>>20, st.MemoryPeak>>20, st.MemoryLimit>>20, st.TransferRefused)
	if st.MemoryPeak > budget {
		t.Errorf("server held %d bytes, budget %d", st.MemoryPeak, budget)
	}
	if peak > base+budget+margin {
		t.Errorf("heap peaked at %d MiB, %d MiB above the baseline: more than the %d MiB budget + %d MiB", peak>>20, (peak-base)>>20, budget>>20, margin>>20)
	}
	if st.TransferRefused != 4*10*6 {
		t.Errorf("%d commands refused before allocation, want %d", st.TransferRefused, 4*10*6)
	}
}

// hostilePattern is the start of the hostile test's disk.
var hostilePattern = pattern(4096, 5)

// hostileRound sends one round of hostile commands on a logged-in
// session and checks each answer.
func hostileRound(t *testing.T, in *rawInit, h *blockHandler, s, round int) {
	t.Helper()
	const (
		size    = 64 << 20
		blocks  = size / 512
		edtlMax = 1<<32 - 1
	)
	// READ(16) of 4G-1 blocks, EDTL 4 GiB - 1: beyond the medium.
	itt := in.scsi(cdb16(scsi.OpRead16, 0, 0xffffffff), true, false, edtlMax, true, nil, false)
	checkSense(t, "READ(16) 4G blocks", in.expect(OpSCSIResponse, itt, "READ(16) 4G blocks"), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	// READ(16) crossing the end of the medium.
	itt = in.scsi(cdb16(scsi.OpRead16, blocks-4, 8), true, false, 4096, true, nil, false)
	checkSense(t, "READ(16) past the end", in.expect(OpSCSIResponse, itt, "READ(16) past the end"), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	// READ(16) of 2 MiB, in range, beyond the 1 MiB transfer limit.
	itt = in.scsi(cdb16(scsi.OpRead16, 0, 4096), true, false, edtlMax, true, nil, false)
	checkSense(t, "READ(16) 2 MiB", in.expect(OpSCSIResponse, itt, "READ(16) 2 MiB"), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	// READ(10) of 8 blocks with EDTL 4 GiB - 1: 4 KiB and an underflow.
	itt = in.scsi(read10(0, 8), true, false, edtlMax, true, nil, false)
	data, st, f := in.readAll(itt, 1<<30)
	if over, under, n := residualOf(f); st != 0 || len(data) != 4096 || over || !under || n != edtlMax-4096 {
		t.Fatalf("READ(10) EDTL 4G-1: status %#x, %d bytes, O=%v U=%v residual %d", st, len(data), over, under, n)
	}
	if string(data) != string(hostilePattern) {
		t.Fatal("READ(10) EDTL 4G-1: wrong data")
	}
	// READ(10) of 8 blocks with EDTL 1000: 1000 bytes and an overflow.
	itt = in.scsi(read10(0, 8), true, false, 1000, true, nil, false)
	data, st, f = in.readAll(itt, 1<<30)
	if over, under, n := residualOf(f); st != 0 || len(data) != 1000 || !over || under || n != 4096-1000 {
		t.Fatalf("READ(10) EDTL 1000: status %#x, %d bytes, O=%v U=%v residual %d", st, len(data), over, under, n)
	}
	// INQUIRY allocation length 36 with EDTL 4 GiB - 1.
	itt = in.scsi(scsi.InquiryCDB(false, 0, 36), true, false, edtlMax, true, nil, false)
	data, st, f = in.readAll(itt, 1<<30)
	if over, under, n := residualOf(f); st != 0 || len(data) != 36 || over || !under || n != edtlMax-36 {
		t.Fatalf("INQUIRY EDTL 4G-1: status %#x, %d bytes, O=%v U=%v residual %d", st, len(data), over, under, n)
	}
	// WRITE(16) of 4G-1 blocks with immediate and unsolicited data:
	// refused once the unsolicited burst has passed, no R2T.
	itt = in.scsi(cdb16(scsi.OpWrite16, 0, 0xffffffff), false, true, edtlMax, false, make([]byte, 8192), false)
	in.dataOut(itt, reservedTag, 0, 8192, true, make([]byte, 65536-8192))
	checkSense(t, "WRITE(16) 4G blocks", in.expect(OpSCSIResponse, itt, "WRITE(16) 4G blocks"), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	// WRITE(16) of 2 MiB without unsolicited data: refused at once.
	itt = in.scsi(cdb16(scsi.OpWrite16, 0, 4096), false, true, 2<<20, true, nil, false)
	checkSense(t, "WRITE(16) 2 MiB", in.expect(OpSCSIResponse, itt, "WRITE(16) 2 MiB"), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	// WRITE(16) crossing the end, EDTL matching.
	itt = in.scsi(cdb16(scsi.OpWrite16, blocks-1, 2), false, true, 1024, true, nil, false)
	checkSense(t, "WRITE(16) past the end", in.expect(OpSCSIResponse, itt, "WRITE(16) past the end"), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	// WRITE(10) of 8 blocks with EDTL 4 GiB - 1: the first 4 KiB of the
	// immediate data are kept, the rest of the unsolicited burst is
	// discarded, nothing is solicited; GOOD with an underflow.
	lba := uint32(4096 + 64*s + round%8*8)
	want := pattern(65536, byte(s*16+round))
	itt = in.scsi(write10(lba, 8), false, true, edtlMax, false, want[:8192], false)
	in.dataOut(itt, reservedTag, 0, 8192, true, want[8192:])
	f = in.expect(OpSCSIResponse, itt, "WRITE(10) EDTL 4G-1")
	if over, under, n := residualOf(f); f.BHS[3] != 0 || over || !under || n != edtlMax-4096 {
		t.Fatalf("WRITE(10) EDTL 4G-1: status %#x, O=%v U=%v residual %d", f.BHS[3], over, under, n)
	}
	h.mu.Lock()
	got := string(h.data[lba*512 : lba*512+4096])
	h.mu.Unlock()
	if got != string(want[:4096]) {
		t.Fatal("WRITE(10) EDTL 4G-1: wrong data written")
	}
	// WRITE(10) of 8 blocks with EDTL 2048: an overflow.
	itt = in.scsi(write10(lba, 8), false, true, 2048, true, want[:2048], false)
	f = in.expect(OpSCSIResponse, itt, "WRITE(10) EDTL 2048")
	if over, under, n := residualOf(f); f.BHS[3] != 0 || !over || under || n != 2048 {
		t.Fatalf("WRITE(10) EDTL 2048: status %#x, O=%v U=%v residual %d", f.BHS[3], over, under, n)
	}
	// A vendor-specific read the handler does not know, EDTL 4 GiB - 1:
	// bounded by the transfer limit, answered by the handler.
	itt = in.scsi([]byte{0xc5, 0, 0, 0, 0, 0}, true, false, edtlMax, true, nil, false)
	checkSense(t, "vendor command", in.expect(OpSCSIResponse, itt, "vendor command"), scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	// The session still works.
	itt = in.scsi(turCDB, false, false, 0, true, nil, false)
	if f := in.expect(OpSCSIResponse, itt, "TEST UNIT READY"); f.BHS[3] != 0 {
		t.Fatalf("TEST UNIT READY: status %#x", f.BHS[3])
	}
}

// TestNoAdmitterBoundedByMaxTransfer: a handler that does not implement
// Admitter gets no buffer larger than Limits.MaxTransfer: a larger EDTL
// is refused at once, a smaller one works as before.
func TestNoAdmitterBoundedByMaxTransfer(t *testing.T) {
	tt := newTestTarget(t, func(c *Config) { c.Limits.MaxTransfer = 1 << 20 })
	in := tt.dial()
	in.login(1)
	itt := in.scsi(read10(0, 8), true, false, 1<<32-1, true, nil, false)
	checkSense(t, "READ(10) EDTL 4G-1", in.expect(OpSCSIResponse, itt, "READ(10)"), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	itt = in.scsi(write10(0, 8), false, true, 2<<20, true, nil, false)
	checkSense(t, "WRITE(10) EDTL 2 MiB", in.expect(OpSCSIResponse, itt, "WRITE(10)"), scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	itt = in.scsi(read10(0, 8), true, false, 1<<20, true, nil, false)
	if data, st, _ := in.readAll(itt, 1<<30); st != 0 || len(data) != 4096 {
		t.Fatalf("READ(10) EDTL 1 MiB: status %#x, %d bytes", st, len(data))
	}
	if got := tt.srv.LimitStats().TransferRefused; got != 2 {
		t.Fatalf("TransferRefused %d, want 2", got)
	}
}

// pipeCmd is one command of a pipelined session.
type pipeCmd struct {
	write bool
	lba   uint32
	// data gives the expected (read) or sent (write) byte at offset i.
	data func(i int) byte
}

// pipeResult is what a pipelined session measured.
type pipeResult struct {
	done, taskSetFull int
	latencies         []time.Duration
}

// runPipeline logs a session in and runs cmds with up to qd in flight,
// respecting MaxCmdSN, answering R2Ts from cmd.data, checking read data
// against cmd.data as it arrives (nothing is buffered), and sending a
// command again when it gets TASK SET FULL. Each command moves blockLen
// bytes. It returns once every command completed with GOOD.
func runPipeline(t *testing.T, tt *testTarget, isid byte, name string, qd int, blockLen int, cmds []pipeCmd) pipeResult {
	t.Helper()
	nc, err := net.Dial("tcp", tt.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	in := &rawInit{t: t, nc: nc, rd: NewReader(nc), cmdSN: 1, itt: 1}
	nc.SetDeadline(time.Now().Add(120 * time.Second))
	var lb BHS
	lb[0] = byte(OpLoginReq) | immediateBit
	lb[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	lb[8] = 0x80
	lb[13] = isid
	lb.put32(24, 1)
	in.sendRaw(&lb, textKV("InitiatorName="+name, "TargetName="+testIQN, "SessionType=Normal",
		"ImmediateData=No", "InitialR2T=Yes", "MaxBurstLength=1048576", "MaxRecvDataSegmentLength=262144"))
	var f Frame
	if err := in.rd.Read(&f); err != nil || f.BHS.Opcode() != OpLoginResp || LoginStatus(f.BHS.u16(36)) != LoginSuccess {
		t.Fatalf("login: %v %s %v", err, f.BHS.Opcode(), LoginStatus(f.BHS.u16(36)))
	}
	kvs := parseKV(f.Data)
	mrdsl := 8192
	fmt.Sscan(kvs["MaxRecvDataSegmentLength"], &mrdsl)
	maxCmdSN := f.BHS.u32(32)
	expStat := f.BHS.u32(24) + 1
	rd := in.rd
	rd.MaxRecvDataSegmentLength = 262144
	w := NewWriter(nc)

	type op struct {
		idx   int
		start time.Time
		got   int
	}
	var res pipeResult
	inflight := map[uint32]*op{}
	todo := make([]int, len(cmds))
	for i := range todo {
		todo[i] = i
	}
	cmdSN := uint32(1)
	itt := uint32(1)
	starts := make([]time.Time, len(cmds))
	// After TASK SET FULL the client sends nothing new until one of its
	// commands completes (or waits a millisecond when none is in
	// flight), as the Linux SCSI midlayer does with a queue-full device.
	blocked := false
	chunk := make([]byte, mrdsl)
	var b BHS
	for res.done < len(cmds) {
		sent := false
		if blocked && len(inflight) == 0 {
			time.Sleep(time.Millisecond)
			blocked = false
		}
		for !blocked && len(inflight) < qd && len(todo) > 0 && !snLess(maxCmdSN, cmdSN) {
			i := todo[0]
			todo = todo[1:]
			c := &cmds[i]
			b = BHS{}
			b[0] = byte(OpSCSICommand)
			b[1] = finalBit | byte(AttrSimple)
			cdb := read10(c.lba, uint16(blockLen/512))
			if c.write {
				b[1] |= scsiCmdWriteBit
				cdb[0] = 0x2a
			} else {
				b[1] |= scsiCmdReadBit
			}
			b.put32(16, itt)
			b.put32(20, uint32(blockLen))
			b.put32(24, cmdSN)
			b.put32(28, expStat)
			copy(b[32:], cdb)
			if starts[i].IsZero() {
				starts[i] = time.Now()
			}
			inflight[itt] = &op{idx: i, start: starts[i]}
			itt++
			cmdSN++
			if err := w.WriteRaw(&b, nil); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
		if sent {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if err := rd.Read(&f); err != nil {
			t.Fatalf("read after %d of %d commands (%d in flight, CmdSN %d, MaxCmdSN %d): %v", res.done, len(cmds), len(inflight), cmdSN, maxCmdSN, err)
		}
		op := f.BHS.Opcode()
		if op != OpR2T && (op != OpSCSIDataIn || f.BHS[1]&0x01 != 0) && !(op == OpNOPIn && f.BHS.ITT() == reservedTag) {
			expStat = f.BHS.u32(24) + 1
		}
		if m := f.BHS.u32(32); snLess(maxCmdSN, m) {
			maxCmdSN = m
		}
		switch op {
		case OpNOPIn:
			if ttt := f.BHS.u32(20); ttt != reservedTag {
				b = BHS{}
				b[0] = byte(OpNOPOut) | immediateBit
				b[1] = finalBit
				b.put32(16, reservedTag)
				b.put32(20, ttt)
				b.put32(24, cmdSN)
				w.WriteRaw(&b, nil)
				w.Flush()
			}
			continue
		case OpR2T:
			o := inflight[f.BHS.ITT()]
			if o == nil || !cmds[o.idx].write {
				t.Fatalf("R2T for ITT %#x", f.BHS.ITT())
			}
			off, n, ttt := int(f.BHS.u32(40)), int(f.BHS.u32(44)), f.BHS.u32(20)
			var sn uint32
			for p := off; p < off+n; p += len(chunk) {
				end := min(p+len(chunk), off+n)
				for j := p; j < end; j++ {
					chunk[j-p] = cmds[o.idx].data(j)
				}
				b = BHS{}
				b[0] = byte(OpSCSIDataOut)
				if end == off+n {
					b[1] = finalBit
				}
				b.put32(16, f.BHS.ITT())
				b.put32(20, ttt)
				b.put32(28, expStat)
				b.put32(36, sn)
				b.put32(40, uint32(p))
				b.SetDataSegmentLength(uint32(end - p))
				if err := w.WriteRaw(&b, chunk[:end-p]); err != nil {
					t.Fatal(err)
				}
				sn++
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			continue
		case OpSCSIDataIn:
			o := inflight[f.BHS.ITT()]
			if o == nil {
				t.Fatalf("Data-In for ITT %#x", f.BHS.ITT())
			}
			off := int(f.BHS.u32(40))
			c := &cmds[o.idx]
			for j, v := range f.Data {
				if c.data(off+j) != v {
					t.Fatalf("command %d (LBA %d): byte %d is %#x, want %#x", o.idx, c.lba, off+j, v, c.data(off+j))
				}
			}
			o.got += len(f.Data)
			if f.BHS[1]&0x01 == 0 {
				continue
			}
		case OpSCSIResponse:
		default:
			t.Fatalf("unexpected %s", op)
		}
		o := inflight[f.BHS.ITT()]
		if o == nil {
			t.Fatalf("response for ITT %#x", f.BHS.ITT())
		}
		delete(inflight, f.BHS.ITT())
		switch scsi.Status(f.BHS[3]) {
		case scsi.Good:
			if !cmds[o.idx].write && o.got != blockLen {
				t.Fatalf("command %d: %d bytes read, want %d", o.idx, o.got, blockLen)
			}
			res.done++
			res.latencies = append(res.latencies, time.Since(o.start))
			blocked = false
		case scsi.TaskSetFull:
			res.taskSetFull++
			todo = append(todo, o.idx)
			blocked = true
		default:
			t.Fatalf("command %d: status %#x data %x", o.idx, f.BHS[3], f.Data)
		}
	}
	return res
}

// TestMemoryBudgetManySessions: with a 64 MiB budget, 8 sessions each
// running 128 commands of 1 MiB (reads of shared data, writes of their
// own) at once all complete with correct data, the server never holds
// more than the budget, and the heap stays under it plus a margin.
func TestMemoryBudgetManySessions(t *testing.T) {
	const (
		budget = 64 << 20
		// margin: the connections' own buffers (about 0.8 MiB each on
		// either side: bufio, PDU and writer buffers, queues), the
		// client's, and what the garbage collector has not swept yet.
		margin   = 48 << 20
		mib      = 1 << 20
		sessions = 8
		perSess  = 128
		shared   = 8 // 1 MiB slots of read-only data
	)
	h := newBlockHandler((shared+sessions)*mib, 4*mib)
	diskByte := func(o int) byte { return byte(o*7 + o>>10) }
	for i := 0; i < shared*mib; i++ {
		h.data[i] = diskByte(i)
	}
	tt := limitTarget(t, h, func(c *Config) { c.Limits.Memory = budget })
	base := heapBaseline()
	hs := startHeapSampler()
	start := time.Now()
	var tsf atomic.Int64
	t.Run("sessions", func(t *testing.T) {
		for s := 0; s < sessions; s++ {
			t.Run(fmt.Sprint(s), func(t *testing.T) {
				t.Parallel()
				own := func(i int) byte { return byte(i*13 + s) }
				cmds := make([]pipeCmd, perSess)
				for k := range cmds {
					if k%4 == 3 {
						cmds[k] = pipeCmd{write: true, lba: uint32((shared + s) * mib / 512), data: own}
						continue
					}
					slot := (s + k) % shared
					cmds[k] = pipeCmd{lba: uint32(slot * mib / 512), data: func(i int) byte { return diskByte(slot*mib + i) }}
				}
				r := runPipeline(t, tt, byte(s+1), fmt.Sprintf("iqn.2026-11.io.sanbridge:budget%d", s), 128, mib, cmds)
				tsf.Add(int64(r.taskSetFull))
				// The session's own slot holds what it wrote.
				back := runPipeline(t, tt, byte(s+100), fmt.Sprintf("iqn.2026-11.io.sanbridge:check%d", s), 1, mib,
					[]pipeCmd{{lba: uint32((shared + s) * mib / 512), data: own}})
				if back.done != 1 {
					t.Fatal("read-back failed")
				}
			})
		}
	})
	peak := hs.finish()
	st := tt.srv.LimitStats()
	t.Logf("%d sessions x %d commands of 1 MiB in %v: %d TASK SET FULL answers, %d window openings withheld; server peak %d MiB of the %d MiB budget; heap peak %d MiB above a %d MiB baseline",
		sessions, perSess, time.Since(start).Round(time.Millisecond), tsf.Load(), st.WindowWithheld,
		st.MemoryPeak>>20, budget>>20, (peak-base)>>20, base>>20)
	if st.MemoryPeak > budget {
		t.Errorf("server held %d bytes at its peak, budget %d", st.MemoryPeak, budget)
	}
	if peak > base+budget+margin {
		t.Errorf("heap peaked %d MiB above the baseline: more than the %d MiB budget + %d MiB", (peak-base)>>20, budget>>20, margin>>20)
	}
	if st.MemoryInFlight != 0 {
		t.Errorf("%d bytes still reserved after every command completed", st.MemoryInFlight)
	}
}

// percentile returns the p-th percentile of d (sorted in place).
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, len(d)*p/100)]
}

// TestMemoryFairness: initiator A keeps 128 reads of 1 MiB in flight
// against a 64 MiB budget while initiator B reads 1 MiB at a time; B's
// commands keep completing (the budget above its high-water mark is
// left to sessions under their fair share, and A's window closes). The
// latency bound is generous; the measured values are logged.
func TestMemoryFairness(t *testing.T) {
	const (
		budget = 64 << 20
		mib    = 1 << 20
		bound  = 20 * time.Second
	)
	h := newBlockHandler(16*mib, 4*mib)
	diskByte := func(o int) byte { return byte(o*5 + o>>12) }
	for i := range h.data {
		h.data[i] = diskByte(i)
	}
	tt := limitTarget(t, h, func(c *Config) { c.Limits.Memory = budget })
	read := func(slot int) pipeCmd {
		return pipeCmd{lba: uint32(slot * mib / 512), data: func(i int) byte { return diskByte(slot*mib + i) }}
	}
	var resA, resB pipeResult
	var bAlone pipeResult
	{
		cmds := make([]pipeCmd, 64)
		for k := range cmds {
			cmds[k] = read(k % 16)
		}
		bAlone = runPipeline(t, tt, 3, "iqn.2026-11.io.sanbridge:b", 1, mib, cmds)
	}
	t.Run("pair", func(t *testing.T) {
		stopA := make(chan struct{})
		t.Run("A", func(t *testing.T) {
			t.Parallel()
			cmds := make([]pipeCmd, 768)
			for k := range cmds {
				cmds[k] = read(k % 16)
			}
			resA = runPipeline(t, tt, 1, "iqn.2026-11.io.sanbridge:a", 128, mib, cmds)
			<-stopA
		})
		t.Run("B", func(t *testing.T) {
			t.Parallel()
			defer close(stopA)
			time.Sleep(200 * time.Millisecond) // A fills the budget first
			cmds := make([]pipeCmd, 128)
			for k := range cmds {
				cmds[k] = read(k % 16)
			}
			resB = runPipeline(t, tt, 2, "iqn.2026-11.io.sanbridge:b", 1, mib, cmds)
		})
	})
	st := tt.srv.LimitStats()
	maxB := percentile(resB.latencies, 100)
	t.Logf("B alone: p50 %v max %v; B next to A at QD128: p50 %v p99 %v max %v, %d TASK SET FULL; A: %d commands, %d TASK SET FULL, p50 %v; %d window openings withheld; server peak %d MiB",
		percentile(bAlone.latencies, 50), percentile(bAlone.latencies, 100),
		percentile(resB.latencies, 50), percentile(resB.latencies, 99), maxB, resB.taskSetFull,
		resA.done, resA.taskSetFull, percentile(resA.latencies, 50), st.WindowWithheld, st.MemoryPeak>>20)
	if maxB > bound {
		t.Errorf("B's slowest command took %v, beyond the %v bound", maxB, bound)
	}
	if st.MemoryPeak > budget {
		t.Errorf("server held %d bytes, budget %d", st.MemoryPeak, budget)
	}
}

// TestMemBudgetRules checks the reservation rules directly: budget 64,
// high-water mark 48, floor 8.
func TestMemBudgetRules(t *testing.T) {
	l := Limits{Memory: 64, SessionMemoryMin: 8}
	b := newMemBudget(&l)
	var a, c, d, e, f sessionMem
	if r := b.reserve(&a, 65); r != refusedNever {
		t.Fatalf("more than the budget: %v", r)
	}
	// Alone, a fills up to the high-water mark, then must hold no more
	// than the share a second session would leave it (32).
	for i := 0; i < 6; i++ {
		if r := b.reserve(&a, 8); r != refusedNone {
			t.Fatalf("a's reservation %d: %v", i, r)
		}
	}
	if r := b.reserve(&a, 8); r != refusedHigh {
		t.Fatalf("a above the high-water mark: %v", r)
	}
	// The last quarter is there for c, which holds nothing.
	if r := b.reserve(&c, 4); r != refusedNone {
		t.Fatalf("c above the high-water mark: %v", r)
	}
	if !b.squeezed(&a) {
		t.Fatal("a holds more than its fair share above the high-water mark but is not squeezed")
	}
	if b.squeezed(&c) {
		t.Fatal("c is squeezed")
	}
	if r := b.reserve(&e, 8); r != refusedNone { // 60 of 64
		t.Fatalf("e: %v", r)
	}
	if r := b.reserve(&f, 8); r != refusedTotal {
		t.Fatalf("f beyond the budget: %v", r)
	}
	b.unreserve(&e, 8)
	b.leave(&e)
	b.leave(&f)
	// The session share: max(fair, floor) with a (wanting), c and d.
	b.unreserve(&a, 48)
	if r := b.reserve(&d, 4); r != refusedNone {
		t.Fatalf("d: %v", r)
	}
	if r := b.reserve(&c, 20); r != refusedShare { // fair 64/3 = 21, c would hold 24
		t.Fatalf("c beyond its share: %v", r)
	}
	if r := b.reserve(&c, 16); r != refusedNone {
		t.Fatalf("c within its share: %v", r)
	}
	b.unreserve(&c, 20)
	b.unreserve(&d, 4)
	for _, s := range []*sessionMem{&a, &c, &d} {
		b.leave(s)
	}
	if b.inflight.Load() != 0 || b.active.Load() != 0 {
		t.Fatalf("inflight %d active %d after everything was given back", b.inflight.Load(), b.active.Load())
	}
}

// TestBufPoolBudget: idle buffers count against the budget, are evicted
// for new allocations and trimmed when unused.
func TestBufPoolBudget(t *testing.T) {
	const mib = 1 << 20
	l := Limits{Memory: 8 * mib, SessionMemoryMin: mib}
	b := newMemBudget(&l)
	p := bufPool{mem: b}
	defer p.stop()
	var s, s2 sessionMem
	var bufs []*pbuf
	for i := 0; i < 6; i++ {
		if r := b.reserve(&s, mib); r != refusedNone {
			t.Fatal(r)
		}
		bufs = append(bufs, p.get(mib))
	}
	for _, pb := range bufs {
		b.unreserve(&s, mib)
		p.put(pb)
	}
	if p.cached.Load() != 6*mib {
		t.Fatalf("%d bytes idle, want 6 MiB", p.cached.Load())
	}
	// A 4 MiB buffer: two idle 1 MiB buffers must go.
	if r := b.reserve(&s2, 4*mib); r != refusedNone {
		t.Fatal(r)
	}
	big := p.get(4 * mib)
	if busy, idle := b.inflight.Load(), p.cached.Load(); busy+idle > 8*mib || idle != 4*mib {
		t.Fatalf("busy %d + idle %d: beyond the budget, or more evicted than needed", busy, idle)
	}
	// A reused buffer comes from the idle ones.
	if r := b.reserve(&s, mib); r != refusedNone {
		t.Fatal(r)
	}
	small := p.get(mib)
	if p.cached.Load() != 3*mib {
		t.Fatalf("%d bytes idle after reusing one, want 3 MiB", p.cached.Load())
	}
	b.unreserve(&s, mib)
	p.put(small)
	b.unreserve(&s2, 4*mib)
	p.put(big)
	// Nothing uses them: two trims drop them all.
	p.trim()
	p.trim()
	if n := p.cached.Load(); n != 0 {
		t.Fatalf("%d bytes idle after two idle trim periods", n)
	}
}

// TestAdmitCDB checks the ready-made admission of a block device.
func TestAdmitCDB(t *testing.T) {
	const blocks, max = 2048, 64 << 10
	caw := make([]byte, 16)
	caw[0] = byte(scsi.OpCompareAndWrite)
	for _, tc := range []struct {
		name        string
		cdb         []byte
		read, write uint32
		refuse      scsi.ASC
	}{
		{"READ(10) 8 blocks", read10(0, 8), 4096, 0, 0},
		{"WRITE(10) 128 blocks", write10(0, 128), 0, max, 0},
		{"READ(10) 129 blocks", read10(0, 129), 0, 0, scsi.ASCInvalidFieldInCDB},
		{"READ(16) past the end", cdb16(scsi.OpRead16, blocks-1, 2), 0, 0, scsi.ASCLBAOutOfRange},
		{"READ(16) beyond the limit and the end", cdb16(scsi.OpRead16, 0, 0xffffffff), 0, 0, scsi.ASCLBAOutOfRange},
		// The device checks COMPARE AND WRITE's buffer against its CDB.
		{"COMPARE AND WRITE", caw, 0, max, 0},
		{"vendor specific", []byte{0xc0, 0, 0, 0, 0, 0}, max, max, 0},
	} {
		a := AdmitCDB(tc.cdb, scsi.TypeDisk, 512, blocks, max)
		switch {
		case tc.refuse != 0:
			s, err := scsi.ParseSense(a.Response.Sense)
			if !a.Refuse || a.Response.Status != scsi.CheckCondition || err != nil || s.ASC != tc.refuse {
				t.Errorf("%s: %+v, want refused with %v", tc.name, a, tc.refuse)
			}
		case a.Refuse || a.ReadLen != tc.read || a.WriteLen != tc.write:
			t.Errorf("%s: %+v, want read %d write %d", tc.name, a, tc.read, tc.write)
		}
	}
}

// TestWindowWithheldAndReopened: above the high-water mark, a completion
// of a session holding more than its fair share does not open its CmdSN
// window; once the budget is below the mark again the credit comes back
// at once, announced by a NOP-In.
func TestWindowWithheldAndReopened(t *testing.T) {
	const mib = 1 << 20
	h := newBlockHandler(8*mib, 4*mib)
	h.gates = map[byte]chan struct{}{1: make(chan struct{}), 2: make(chan struct{})}
	tt := limitTarget(t, h, func(c *Config) { c.Limits.Memory = 8 * mib })
	a, b := tt.dial(), tt.dial()
	a.login(1)
	b.login(2)
	maxBefore := a.maxCmdSN
	for i := 0; i < 6; i++ { // 6 MiB: at the high-water mark
		a.scsi(read10(uint32(i*2048), 2048), true, false, mib, true, nil, false)
	}
	for h.execs.Load() != 6 {
		time.Sleep(time.Millisecond)
	}
	b.scsi(read10(0, 2048), true, false, mib, true, nil, false) // 7 MiB: above it
	for h.execs.Load() != 7 {
		time.Sleep(time.Millisecond)
	}
	// A (6 of 7 MiB, fair share 4) completes one command: no credit.
	h.gates[1] <- struct{}{}
	var f *Frame
	for f = a.read(); f.BHS.Opcode() == OpSCSIDataIn && f.BHS[1]&0x01 == 0; f = a.read() {
	}
	if got := f.BHS.u32(32); got != maxBefore {
		t.Fatalf("MaxCmdSN %d in the response, want %d (withheld)", got, maxBefore)
	}
	// Its memory given back, the budget is at the mark: the credit comes
	// back with a NOP-In.
	f = a.read()
	if f.BHS.Opcode() != OpNOPIn || f.BHS.ITT() != reservedTag || f.BHS.u32(20) != reservedTag {
		t.Fatalf("got %s ITT %#x TTT %#x, want an unsolicited NOP-In", f.BHS.Opcode(), f.BHS.ITT(), f.BHS.u32(20))
	}
	if got := f.BHS.u32(32); got != maxBefore+1 {
		t.Fatalf("MaxCmdSN %d in the NOP-In, want %d", got, maxBefore+1)
	}
	if st := tt.srv.LimitStats(); st.WindowWithheld != 1 {
		t.Fatalf("WindowWithheld %d", st.WindowWithheld)
	}
	close(h.gates[1])
	close(h.gates[2])
	for i := 0; i < 5; i++ {
		for f = a.read(); f.BHS.Opcode() == OpSCSIDataIn && f.BHS[1]&0x01 == 0; f = a.read() {
		}
	}
	if got := f.BHS.u32(32); got != maxBefore+6 {
		t.Fatalf("MaxCmdSN %d after every command, want %d", got, maxBefore+6)
	}
}
