package iscsi

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// memHandler is a tiny block device behind the Handler interface: READ(10)
// and WRITE(10) on 512-byte blocks, TEST UNIT READY, and a "block" opcode
// (0xC0) that waits until released, for abort tests. It is the engine's
// peer at its own boundary; the real disk is tested in sgio/emul.
type memHandler struct {
	mu      sync.Mutex
	data    []byte
	release chan struct{}
	started chan uint32
	ended   []Nexus
	tmfs    []TMFunction
	lent    atomic.Int32 // lent buffers released (opcodes 0xC1, 0xC2)
}

func newMemHandler(blocks int) *memHandler {
	return &memHandler{data: make([]byte, blocks*512), release: make(chan struct{}), started: make(chan uint32, 16)}
}

func (h *memHandler) Execute(ctx context.Context, cmd *Command) Response {
	cdb := cmd.CDB
	switch cdb[0] {
	case 0x00:
		return Response{}
	case 0x28, 0x2a:
		select {
		case <-ctx.Done(): // as a device backend looks (and the benchmark measures)
			return Response{Status: 2, Sense: []byte{0x70, 0, 0x0b, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
		default:
		}
		lba := int(binary.BigEndian.Uint32(cdb[2:6]))
		n := int(binary.BigEndian.Uint16(cdb[7:9])) * 512
		if (lba*512 + n) > len(h.data) {
			return Response{Status: 2, Sense: []byte{0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0}}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if cdb[0] == 0x28 {
			m := copy(cmd.ReadBuf, h.data[lba*512:lba*512+n])
			return Response{ReadLen: m, Wanted: n}
		}
		copy(h.data[lba*512:lba*512+n], cmd.WriteData[:min(n, len(cmd.WriteData))])
		return Response{Wanted: n}
	case 0xc1, 0xc2:
		// A read whose data the handler lends (Response.ReadData): the
		// CDB's bytes 2..5 give its length, the data is lentPattern.
		// 0xC2 first waits like 0xC0.
		if cdb[0] == 0xc2 {
			h.started <- cmd.Tag
			<-ctx.Done()
		}
		n := int(binary.BigEndian.Uint32(cdb[2:6]))
		return Response{ReadData: lentPattern(n), ReadLen: n, Release: func() { h.lent.Add(1) }}
	case 0xc0:
		h.started <- cmd.Tag
		select {
		case <-h.release:
		case <-ctx.Done():
		}
		return Response{}
	}
	return Response{Status: 2, Sense: []byte{0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0}}
}

func (h *memHandler) TaskManagement(_ context.Context, _ *Nexus, fn TMFunction, _ LUN) TMFResponse {
	h.mu.Lock()
	h.tmfs = append(h.tmfs, fn)
	h.mu.Unlock()
	return TMFComplete
}

func (h *memHandler) HasLUN(_ *Nexus, l LUN) bool { n, ok := l.Number(); return ok && n == 0 }

func (h *memHandler) Attach(*Nexus, NexusControl) {}

func (h *memHandler) Detach(n *Nexus) {
	h.mu.Lock()
	h.ended = append(h.ended, *n)
	h.mu.Unlock()
}

const testIQN = "iqn.2026-11.io.sanbridge:test"

// testTarget is a server on loopback with one target.
type testTarget struct {
	t    *testing.T
	srv  *Server
	addr string
	h    *memHandler
}

func newTestTarget(t *testing.T, mod func(*Config)) *testTarget {
	t.Helper()
	h := newMemHandler(2048)
	tt := startTarget(t, &Target{Name: testIQN, Alias: "test", Handler: h}, mod)
	tt.h = h
	return tt
}

// startTarget serves tg alone on a loopback portal (mod adjusts the
// configuration first) and shuts the server down when the test ends.
func startTarget(t *testing.T, tg *Target, mod func(*Config)) *testTarget {
	t.Helper()
	cfg := Config{
		Portals: []Portal{{Listen: "127.0.0.1:0", Group: 1}},
		Targets: StaticTargets{tg},
		Log:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := srv.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ls[0], &srv.cfg.Portals[0]); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return &testTarget{t: t, srv: srv, addr: ls[0].Addr().String()}
}

// rawInit is a raw-PDU test initiator.
type rawInit struct {
	t        *testing.T
	nc       net.Conn
	rd       *Reader
	cmdSN    uint32
	expStat  uint32
	itt      uint32
	maxCmdSN uint32
	params   map[string]string
}

func (tt *testTarget) dial() *rawInit {
	tt.t.Helper()
	nc, err := net.Dial("tcp", tt.addr)
	if err != nil {
		tt.t.Fatal(err)
	}
	tt.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawInit{t: tt.t, nc: nc, rd: NewReader(nc), cmdSN: 1, itt: 1}
}

func textKV(kv ...string) []byte {
	var b bytes.Buffer
	for _, s := range kv {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.Bytes()
}

func parseKV(d []byte) map[string]string {
	m := map[string]string{}
	for _, s := range strings.Split(string(d), "\x00") {
		if k, v, ok := strings.Cut(s, "="); ok {
			m[k] = v
		}
	}
	return m
}

// sendRaw writes a BHS with a data segment (padded).
func (in *rawInit) sendRaw(b *BHS, data []byte) {
	in.t.Helper()
	b.SetDataSegmentLength(uint32(len(data)))
	buf := append(append([]byte(nil), b[:]...), data...)
	buf = append(buf, make([]byte, padLen(len(data)))...)
	if _, err := in.nc.Write(buf); err != nil {
		in.t.Fatalf("write: %v", err)
	}
}

func (in *rawInit) read() *Frame {
	in.t.Helper()
	f := new(Frame)
	if err := in.rd.Read(f); err != nil {
		in.t.Fatalf("read: %v", err)
	}
	f.Data = append([]byte(nil), f.Data...)
	if f.BHS.Opcode() != OpR2T && f.BHS.Opcode() != OpSCSIDataIn || f.BHS[1]&0x01 != 0 {
		switch f.BHS.Opcode() {
		case OpSCSIResponse, OpSCSIDataIn, OpNOPIn, OpTaskMgmtResp, OpLogoutResp, OpTextResp, OpReject:
			if f.BHS.Opcode() != OpNOPIn || f.BHS.ITT() != reservedTag {
				in.expStat = f.BHS.u32(24) + 1
			}
		}
	}
	if f.BHS.Opcode() != OpLoginResp {
		in.maxCmdSN = f.BHS.u32(32)
	}
	return f
}

// login performs a one-PDU operational login to the test target.
func (in *rawInit) login(isid byte, keys ...string) map[string]string {
	in.t.Helper()
	var b BHS
	b[0] = byte(OpLoginReq) | immediateBit
	b[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	b[8] = 0x80
	b[13] = isid
	b.put32(16, in.itt)
	b.put32(24, in.cmdSN)
	kv := append([]string{"InitiatorName=iqn.2026-11.io.sanbridge:initiator", "TargetName=" + testIQN, "SessionType=Normal"}, keys...)
	in.sendRaw(&b, textKV(kv...))
	f := in.read()
	if f.BHS.Opcode() != OpLoginResp {
		in.t.Fatalf("login: got %s", f.BHS.Opcode())
	}
	if st := LoginStatus(f.BHS.u16(36)); st != LoginSuccess {
		in.t.Fatalf("login: status %s", st)
	}
	if f.BHS[1]&loginTransitBit == 0 {
		in.t.Fatalf("login: target did not transit to full feature phase: keys %q", f.Data)
	}
	in.itt++
	in.expStat = f.BHS.u32(24) + 1
	in.maxCmdSN = f.BHS.u32(32)
	in.params = parseKV(f.Data)
	return in.params
}

// scsi sends a SCSI command; data is immediate data.
func (in *rawInit) scsi(cdb []byte, read, write bool, edtl uint32, final bool, data []byte, immediate bool) uint32 {
	in.t.Helper()
	var b BHS
	b[0] = byte(OpSCSICommand)
	if immediate {
		b[0] |= immediateBit
	}
	if final {
		b[1] |= finalBit
	}
	if read {
		b[1] |= scsiCmdReadBit
	}
	if write {
		b[1] |= scsiCmdWriteBit
	}
	b[1] |= byte(AttrSimple)
	itt := in.itt
	in.itt++
	b.put32(16, itt)
	b.put32(20, edtl)
	b.put32(24, in.cmdSN)
	if !immediate {
		in.cmdSN++
	}
	b.put32(28, in.expStat)
	copy(b[32:], cdb)
	in.sendRaw(&b, data)
	return itt
}

func (in *rawInit) dataOut(itt, ttt, dataSN, offset uint32, final bool, data []byte) {
	in.t.Helper()
	var b BHS
	b[0] = byte(OpSCSIDataOut)
	if final {
		b[1] = finalBit
	}
	b.put32(16, itt)
	b.put32(20, ttt)
	b.put32(28, in.expStat)
	b.put32(36, dataSN)
	b.put32(40, offset)
	in.sendRaw(&b, data)
}

func read10(lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = 0x28
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func write10(lba uint32, blocks uint16) []byte {
	c := read10(lba, blocks)
	c[0] = 0x2a
	return c
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// readAll collects a read's Data-In PDUs and final status, checking
// DataSN, offsets and F bits against the negotiated limits.
func (in *rawInit) readAll(itt uint32, maxBurst int) (data []byte, status byte, resp *Frame) {
	in.t.Helper()
	var nextSN uint32
	burst := 0
	for {
		f := in.read()
		if f.BHS.ITT() != itt {
			in.t.Fatalf("unexpected %s for ITT %#x", f.BHS.Opcode(), f.BHS.ITT())
		}
		switch f.BHS.Opcode() {
		case OpSCSIDataIn:
			if sn := f.BHS.u32(36); sn != nextSN {
				in.t.Fatalf("DataSN %d, want %d", sn, nextSN)
			}
			nextSN++
			if off := f.BHS.u32(40); int(off) != len(data) {
				in.t.Fatalf("offset %d, want %d", off, len(data))
			}
			data = append(data, f.Data...)
			burst += len(f.Data)
			if burst > maxBurst {
				in.t.Fatalf("Data-In sequence of %d bytes exceeds MaxBurstLength %d", burst, maxBurst)
			}
			if f.BHS.Final() {
				burst = 0
			}
			if f.BHS[1]&0x01 != 0 {
				if !f.BHS.Final() {
					in.t.Fatal("S bit without F bit")
				}
				return data, f.BHS[3], f
			}
		case OpSCSIResponse:
			if got := f.BHS.u32(36); got != nextSN {
				in.t.Fatalf("ExpDataSN %d, want %d", got, nextSN)
			}
			return data, f.BHS[3], f
		default:
			in.t.Fatalf("unexpected %s", f.BHS.Opcode())
		}
	}
}

func TestReadSequencing(t *testing.T) {
	tt := newTestTarget(t, nil)
	copy(tt.h.data, pattern(len(tt.h.data), 3))
	in := tt.dial()
	p := in.login(1, "MaxRecvDataSegmentLength=8192", "MaxBurstLength=65536", "FirstBurstLength=65536")
	if p["MaxBurstLength"] != "65536" {
		t.Fatalf("MaxBurstLength negotiated to %q", p["MaxBurstLength"])
	}
	const blocks = 600 // 307200 bytes: several bursts, many PDUs
	itt := in.scsi(read10(10, blocks), true, false, blocks*512, true, nil, false)
	data, status, _ := in.readAll(itt, 65536)
	if status != 0 {
		t.Fatalf("status %#x", status)
	}
	if !bytes.Equal(data, tt.h.data[10*512:(10+blocks)*512]) {
		t.Fatal("read data differs")
	}
}

func TestReadResiduals(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	in.login(1)
	// EDTL larger than the CDB's transfer: underflow.
	itt := in.scsi(read10(0, 1), true, false, 10000, true, nil, false)
	data, _, f := in.readAll(itt, 1<<20)
	if len(data) != 512 || f.BHS[1]&0x02 == 0 || f.BHS.u32(44) != 10000-512 {
		t.Fatalf("underflow: %d bytes, flags %#x, residual %d", len(data), f.BHS[1], f.BHS.u32(44))
	}
	// EDTL smaller: overflow, only EDTL bytes move.
	itt = in.scsi(read10(0, 1), true, false, 200, true, nil, false)
	data, _, f = in.readAll(itt, 1<<20)
	if len(data) != 200 || f.BHS[1]&0x04 == 0 || f.BHS.u32(44) != 312 {
		t.Fatalf("overflow: %d bytes, flags %#x, residual %d", len(data), f.BHS[1], f.BHS.u32(44))
	}
	// EDTL zero: no data, overflow of a whole block.
	itt = in.scsi(read10(0, 1), true, false, 0, true, nil, false)
	data, _, f = in.readAll(itt, 1<<20)
	if len(data) != 0 || f.BHS.Opcode() != OpSCSIResponse || f.BHS[1]&0x04 == 0 || f.BHS.u32(44) != 512 {
		t.Fatalf("EDTL 0: %d bytes, %s flags %#x residual %d", len(data), f.BHS.Opcode(), f.BHS[1], f.BHS.u32(44))
	}
}

func TestWriteImmediateUnsolicitedAndR2T(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	p := in.login(1, "InitialR2T=No", "ImmediateData=Yes", "MaxRecvDataSegmentLength=8192",
		"FirstBurstLength=16384", "MaxBurstLength=32768", "MaxOutstandingR2T=2")
	if p["InitialR2T"] != "No" || p["ImmediateData"] != "Yes" {
		t.Fatalf("negotiated %v", p)
	}
	const blocks = 256 // 128 KiB
	want := pattern(blocks*512, 9)
	mrdsl := 8192
	if v, ok := p["MaxRecvDataSegmentLength"]; ok {
		fmt.Sscan(v, &mrdsl)
	}
	imm := min(mrdsl, 8192)
	itt := in.scsi(write10(4, blocks), false, true, blocks*512, false, want[:imm], false)
	// Unsolicited Data-Out up to FirstBurstLength.
	in.dataOut(itt, reservedTag, 0, uint32(imm), true, want[imm:16384])
	got := 16384
	r2tsn := uint32(0)
	for got < len(want) {
		f := in.read()
		if f.BHS.Opcode() != OpR2T {
			t.Fatalf("got %s, want R2T", f.BHS.Opcode())
		}
		if sn := f.BHS.u32(36); sn != r2tsn {
			t.Fatalf("R2TSN %d, want %d", sn, r2tsn)
		}
		r2tsn++
		off, n, ttt := f.BHS.u32(40), f.BHS.u32(44), f.BHS.u32(20)
		if n > 32768 {
			t.Fatalf("R2T for %d bytes exceeds MaxBurstLength", n)
		}
		var sn uint32
		for o := off; o < off+n; o += 8192 {
			end := min(o+8192, off+n)
			in.dataOut(itt, ttt, sn, o, end == off+n, want[o:end])
			sn++
		}
		got += int(n)
	}
	f := in.read()
	if f.BHS.Opcode() != OpSCSIResponse || f.BHS[3] != 0 {
		t.Fatalf("got %s status %#x", f.BHS.Opcode(), f.BHS[3])
	}
	if !bytes.Equal(tt.h.data[4*512:(4+blocks)*512], want) {
		t.Fatal("written data differs")
	}
}

func TestCmdSNOutsideWindowIgnored(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	in.login(1)
	in.cmdSN = in.maxCmdSN + 1
	in.scsi([]byte{0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	in.cmdSN = in.maxCmdSN - 200 // and one far behind
	in.scsi([]byte{0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	// Back in the window: only this one is answered.
	exp := in.maxCmdSN - tt.srv.cfg.CmdWindow + 1
	in.cmdSN = exp
	itt := in.scsi([]byte{0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	f := in.read()
	if f.BHS.Opcode() != OpSCSIResponse || f.BHS.ITT() != itt {
		t.Fatalf("got %s ITT %#x, want response to %#x", f.BHS.Opcode(), f.BHS.ITT(), itt)
	}
	if got := f.BHS.u32(28); got != exp+1 {
		t.Fatalf("ExpCmdSN %d, want %d", got, exp+1)
	}
}

func TestBadDataSNFailsTask(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	in.login(1, "ImmediateData=No", "InitialR2T=Yes")
	itt := in.scsi(write10(0, 2), false, true, 1024, true, nil, false)
	f := in.read()
	if f.BHS.Opcode() != OpR2T {
		t.Fatalf("got %s", f.BHS.Opcode())
	}
	ttt := f.BHS.u32(20)
	in.dataOut(itt, ttt, 27, 0, false, make([]byte, 512))
	in.dataOut(itt, ttt, 1, 512, true, make([]byte, 512)) // discarded
	f = in.read()
	if f.BHS.Opcode() != OpSCSIResponse || f.BHS.ITT() != itt || f.BHS[3] != 0x02 {
		t.Fatalf("got %s ITT %#x status %#x, want CHECK CONDITION for %#x", f.BHS.Opcode(), f.BHS.ITT(), f.BHS[3], itt)
	}
	if sense := f.Data; len(sense) < 16 || sense[2+2] != 0x0b || sense[2+12] != 0x4b {
		t.Fatalf("sense %x, want ABORTED COMMAND / DATA PHASE ERROR", sense)
	}
	// The connection survives: the next command works.
	tur := in.scsi([]byte{0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	if f = in.read(); f.BHS.ITT() != tur || f.BHS[3] != 0 {
		t.Fatalf("after the failed task: %s ITT %#x status %#x", f.BHS.Opcode(), f.BHS.ITT(), f.BHS[3])
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestAbortTask(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	in.login(1)
	blocked := in.scsi([]byte{0xc0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	<-tt.h.started
	var b BHS
	b[0] = byte(OpTaskMgmtReq) | immediateBit
	b[1] = finalBit | byte(TMFAbortTask)
	b.put32(16, 0x1000)
	b.put32(20, blocked)
	b.put32(24, in.cmdSN)
	b.put32(32, in.cmdSN-1)
	in.sendRaw(&b, nil)
	// The abort cancels the task's own context, which releases the
	// handler.
	f := in.read()
	if f.BHS.Opcode() != OpTaskMgmtResp || TMFResponse(f.BHS[2]) != TMFComplete {
		t.Fatalf("got %s response %d", f.BHS.Opcode(), f.BHS[2])
	}
	// No SCSI response for the aborted task: the next PDU answers a TUR.
	itt := in.scsi([]byte{0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	f = in.read()
	if f.BHS.ITT() != itt {
		t.Fatalf("got %s for ITT %#x, want TUR response %#x", f.BHS.Opcode(), f.BHS.ITT(), itt)
	}
	// Aborting a task that is gone: "task does not exist".
	b.put32(16, 0x1001)
	b.put32(24, in.cmdSN)
	in.sendRaw(&b, nil)
	f = in.read()
	if TMFResponse(f.BHS[2]) != TMFTaskNotExist {
		t.Fatalf("abort of finished task: %d", f.BHS[2])
	}
}

// logout sends an immediate Logout Request that closes the session.
func (in *rawInit) logout(itt uint32) {
	var b BHS
	b[0] = byte(OpLogoutReq) | immediateBit
	b[1] = finalBit | byte(LogoutCloseSession)
	b.put32(16, itt)
	b.put32(24, in.cmdSN)
	in.sendRaw(&b, nil)
}

func TestNopAndLogout(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	in.login(1)
	var b BHS
	b[0] = byte(OpNOPOut) | immediateBit
	b[1] = finalBit
	b.put32(16, 77)
	b.put32(20, reservedTag)
	b.put32(24, in.cmdSN)
	in.sendRaw(&b, []byte("ping"))
	f := in.read()
	if f.BHS.Opcode() != OpNOPIn || f.BHS.ITT() != 77 || string(f.Data) != "ping" {
		t.Fatalf("NOP: %s itt %d data %q", f.BHS.Opcode(), f.BHS.ITT(), f.Data)
	}
	in.logout(78)
	f = in.read()
	if f.BHS.Opcode() != OpLogoutResp || f.BHS[2] != byte(LogoutOK) {
		t.Fatalf("logout: %s %d", f.BHS.Opcode(), f.BHS[2])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tt.h.mu.Lock()
		n := len(tt.h.ended)
		tt.h.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("handler never told the session ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLogoutAnswersRunningTasksFirst: a logout that arrives while a
// command runs waits for it, and the command's response goes out before
// the Logout Response (after which the initiator hears nothing more).
func TestLogoutAnswersRunningTasksFirst(t *testing.T) {
	for i := 0; i < 20; i++ {
		tt := newTestTarget(t, nil)
		in := tt.dial()
		in.login(1)
		itt := in.scsi([]byte{0xc0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
		<-tt.h.started
		in.logout(0x2000)
		go func() { time.Sleep(time.Duration(i%4) * time.Millisecond); close(tt.h.release) }()
		f := in.read()
		if f.BHS.Opcode() != OpSCSIResponse || f.BHS.ITT() != itt {
			t.Fatalf("round %d: first PDU %s for ITT %#x, want the SCSI Response of %#x", i, f.BHS.Opcode(), f.BHS.ITT(), itt)
		}
		f = in.read()
		if f.BHS.Opcode() != OpLogoutResp || f.BHS[2] != byte(LogoutOK) {
			t.Fatalf("round %d: then %s, want the Logout Response", i, f.BHS.Opcode())
		}
	}
}

func lentPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// TestLentReadData: data-in a handler lends (Response.ReadData) is what
// goes out, small (copied into the writer's buffer) and large (sent
// from the lent buffer itself), and each lent buffer is released once,
// also when the task ends without a response.
func TestLentReadData(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	in.login(1)
	waitLent := func(want int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); tt.h.lent.Load() != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d lent buffers released, want %d", tt.h.lent.Load(), want)
			}
		}
	}
	for i, n := range []int{4096, 100 << 10} {
		cdb := []byte{0xc1, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(cdb[2:], uint32(n))
		// The initiator expects less than the handler lends: the engine
		// sends the expected length, with an overflow residual.
		edtl := uint32(n - 512)
		itt := in.scsi(cdb, true, false, edtl, true, nil, false)
		var got []byte
		for {
			f := in.read()
			if f.BHS.ITT() != itt {
				t.Fatalf("PDU %s for ITT %#x", f.BHS.Opcode(), f.BHS.ITT())
			}
			if f.BHS.Opcode() == OpSCSIDataIn {
				got = append(got, f.Data...)
				if f.BHS[1]&0x01 != 0 {
					break
				}
				continue
			}
			if f.BHS.Opcode() != OpSCSIResponse || f.BHS[3] != 0 {
				t.Fatalf("%s status %#x", f.BHS.Opcode(), f.BHS[3])
			}
			break
		}
		if !bytes.Equal(got, lentPattern(n)[:edtl]) {
			t.Fatalf("%d bytes lent: %d bytes of data-in, not the lent ones", n, len(got))
		}
		waitLent(int32(i + 1))
	}
	// A task that ends without a response: its connection is lost while
	// the handler waits; the handler then lends a buffer all the same.
	cdb := []byte{0xc2, 0, 0, 0, 16, 0}
	in.scsi(cdb, true, false, 4096, true, nil, false)
	<-tt.h.started
	in.nc.Close()
	waitLent(3)
}

func TestOversizedSegmentRejected(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	p := in.login(1)
	var mrdsl int
	fmt.Sscan(p["MaxRecvDataSegmentLength"], &mrdsl)
	if mrdsl == 0 {
		t.Fatalf("target did not declare MaxRecvDataSegmentLength: %v", p)
	}
	in.scsi(write10(0, 1), false, true, uint32(mrdsl+512), true, make([]byte, mrdsl+512), false)
	f := in.read()
	if f.BHS.Opcode() != OpReject {
		t.Fatalf("got %s, want Reject", f.BHS.Opcode())
	}
}

func TestSessionReinstatement(t *testing.T) {
	tt := newTestTarget(t, nil)
	a := tt.dial()
	a.login(5)
	b := tt.dial()
	b.login(5) // same rawInit name and ISID: reinstates
	var f Frame
	a.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := a.rd.Read(&f); err == nil {
		t.Fatalf("old connection still delivers %s", f.BHS.Opcode())
	}
	itt := b.scsi([]byte{0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	if g := b.read(); g.BHS.ITT() != itt || g.BHS[3] != 0 {
		t.Fatalf("new session: %s %#x", g.BHS.Opcode(), g.BHS[3])
	}
	if n := len(tt.srv.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

func TestHeaderDigestMismatchDrops(t *testing.T) {
	tt := newTestTarget(t, nil)
	in := tt.dial()
	p := in.login(1, "HeaderDigest=CRC32C", "DataDigest=CRC32C")
	if p["HeaderDigest"] != "CRC32C" || p["DataDigest"] != "CRC32C" {
		t.Fatalf("digests not negotiated: %v", p)
	}
	w := NewWriter(in.nc)
	w.HeaderDigest, w.DataDigest = true, true
	in.rd.HeaderDigest, in.rd.DataDigest = true, true
	// A correct command first.
	var b BHS
	b[0] = byte(OpSCSICommand)
	b[1] = finalBit | scsiCmdReadBit | byte(AttrSimple)
	b.put32(16, 9)
	b.put32(20, 512)
	b.put32(24, in.cmdSN)
	copy(b[32:], read10(0, 1))
	w.WriteRaw(&b, nil)
	w.Flush()
	if _, st, _ := in.readAll(9, 1<<20); st != 0 {
		t.Fatalf("status %#x", st)
	}
	// Then one whose header digest is wrong.
	in.cmdSN++
	b.put32(16, 10)
	b.put32(24, in.cmdSN)
	raw := append(b[:], 0xde, 0xad, 0xbe, 0xef)
	in.nc.Write(raw)
	var f Frame
	if err := in.rd.Read(&f); err == nil {
		t.Fatalf("got %s after a bad header digest", f.BHS.Opcode())
	}
}

// BenchmarkEngineRead4K drives 4 KiB READ(10)s through a real connection
// over loopback, 32 in flight, with a client that allocates nothing: the
// allocations reported are the engine's per command.
func BenchmarkEngineRead4K(b *testing.B) { benchEngineRead4K(b, newMemHandler(2048), 32) }

// BenchmarkEngineRead4KInlineQD1 is one command at a time with a handler
// that lets the reader run them (Inliner).
func BenchmarkEngineRead4KInlineQD1(b *testing.B) {
	benchEngineRead4K(b, inlineReads{newMemHandler(2048)}, 1)
}

func benchEngineRead4K(b *testing.B, h Handler, depth int) {
	srv, err := NewServer(Config{
		Portals: []Portal{{Listen: "127.0.0.1:0", Group: 1}},
		Targets: StaticTargets{{Name: testIQN, Handler: h}},
		Log:     zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ls, err := srv.Listen(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ls[0], &srv.cfg.Portals[0])
	defer srv.Shutdown(context.Background())
	nc, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	// Login (one PDU).
	var lb BHS
	lb[0] = byte(OpLoginReq) | immediateBit
	lb[1] = loginTransitBit | byte(StageOperational)<<2 | byte(StageFullFeature)
	lb[8] = 0x80
	lb.put32(24, 1)
	kv := textKV("InitiatorName=iqn.2026-11.io.sanbridge:bench", "TargetName="+testIQN, "SessionType=Normal")
	lb.SetDataSegmentLength(uint32(len(kv)))
	msg := append(append(lb[:], kv...), make([]byte, padLen(len(kv)))...)
	nc.Write(msg)
	rd := NewReader(nc)
	var f Frame
	if err := rd.Read(&f); err != nil || LoginStatus(f.BHS.u16(36)) != LoginSuccess {
		b.Fatalf("login: %v %v", err, LoginStatus(f.BHS.u16(36)))
	}
	cmdSN := uint32(1)
	var cmds [32]BHS
	w := NewWriter(nc)
	send := func(i int) {
		c := &cmds[i]
		*c = BHS{}
		c[0] = byte(OpSCSICommand)
		c[1] = finalBit | scsiCmdReadBit | byte(AttrSimple)
		c.put32(16, uint32(i))
		c.put32(20, 4096)
		c.put32(24, cmdSN)
		cmdSN++
		copy(c[32:], []byte{0x28, 0, 0, 0, byte(i), 0, 0, 0, 8, 0})
		w.WriteRaw(c, nil)
	}
	for i := 0; i < depth; i++ {
		send(i)
	}
	w.Flush()
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for {
			if err := rd.Read(&f); err != nil {
				b.Fatal(err)
			}
			if f.BHS.Opcode() == OpSCSIDataIn && f.BHS[1]&0x01 != 0 {
				break
			}
		}
		send(int(f.BHS.ITT()))
		w.Flush()
	}
}
