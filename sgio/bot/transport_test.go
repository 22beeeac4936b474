package bot

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// oneLUN starts a single-LUN transport (GET MAX LUN stalled) and returns
// its LUN 0.
func oneLUN(t *testing.T, s *scripted, opts ...Option) *Device {
	t.Helper()
	s.add(stall())
	tr := s.transport(opts...)
	d, err := tr.LUN(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	s.expect(lineMaxLUN)
	return d
}

func exec(t *testing.T, d *Device, req *sgio.Request) (*sgio.Result, error) {
	t.Helper()
	var res sgio.Result
	err := d.Execute(context.Background(), req, &res)
	return &res, err
}

func TestGoodCommand(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	inq := bytes.Repeat([]byte{0xab}, 36)
	s.add(ok(), send(inq), csw(CSWPassed, 0))
	req := inquiry()
	res, err := exec(t, d, req)
	if err != nil {
		t.Fatal(err)
	}
	s.expect(lineInquiryCBW, "in 36", lineCSW)
	if res.Status != scsi.Good || res.HostStatus != 0 || res.Resid != 0 || res.Sense != nil {
		t.Errorf("result %+v", res)
	}
	if !bytes.Equal(req.Data, inq) {
		t.Errorf("data %x", req.Data)
	}
}

func TestNoDataCommand(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(ok(), csw(CSWPassed, 0))
	res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)})
	if err != nil || res.Status != scsi.Good {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect("CBW lun=0 len=0 out cdb=000000000000", lineCSW)
}

func TestTagsAdvance(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	var tags []uint32
	for range 3 {
		s.add(ok(), csw(CSWPassed, 0))
		if _, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)}); err != nil {
			t.Fatal(err)
		}
		tags = append(tags, s.cbw.Tag)
	}
	if tags[0] == tags[1] || tags[1] == tags[2] {
		t.Errorf("tags %v repeat", tags)
	}
}

func TestResidue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dir     sgio.Direction
		dev     reply // the device's side of the data phase
		residue uint32
		want    int
	}{
		{"short data-in, residue agrees", sgio.DirFromDevice, send(make([]byte, 100)), 412, 412},
		{"short data-in, residue 0", sgio.DirFromDevice, send(make([]byte, 100)), 0, 412},
		{"full data-in, device processed less", sgio.DirFromDevice, send(make([]byte, 512)), 12, 12},
		{"data-out all taken, residue", sgio.DirToDevice, accept(512), 24, 24},
		{"data-out cut short", sgio.DirToDevice, accept(500), 0, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScripted(t)
			d := oneLUN(t, s)
			s.add(ok(), tc.dev, csw(CSWPassed, tc.residue))
			res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 10), Dir: tc.dir, Data: make([]byte, 512)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Resid != tc.want || res.Status != scsi.Good {
				t.Errorf("resid %d status %v, want %d good", res.Resid, res.Status, tc.want)
			}
			if n := res.Transferred(512); n != 512-tc.want {
				t.Errorf("transferred %d", n)
			}
		})
	}
}

// TestInvalidCSW: every CSW that is not valid or not meaningful (BOT
// 6.3) ends in a reset recovery and DID_ERROR.
func TestInvalidCSW(t *testing.T) {
	for _, tc := range []struct {
		name string
		csw  func(tag uint32) []byte
	}{
		{"short", func(tag uint32) []byte { return wireCSW(tag, 0, CSWPassed)[:12] }},
		{"overlong", func(tag uint32) []byte { return append(wireCSW(tag, 0, CSWPassed), 0) }},
		{"a whole packet", func(tag uint32) []byte { return append(wireCSW(tag, 0, CSWPassed), make([]byte, 499)...) }},
		{"wrong tag", func(tag uint32) []byte { return wireCSW(tag+1, 0, CSWPassed) }},
		{"wrong signature", func(tag uint32) []byte { b := wireCSW(tag, 0, CSWPassed); b[3] = 0x43; return b }},
		{"a CBW", func(tag uint32) []byte {
			b, _ := (&CBW{Tag: tag, CDB: []byte{0}}).AppendBinary(nil)
			return b
		}},
		{"reserved status", func(tag uint32) []byte { return wireCSW(tag, 0, 3) }},
		{"residue beyond the transfer", func(tag uint32) []byte { return wireCSW(tag, 37, CSWPassed) }},
		{"phase error", func(tag uint32) []byte { return wireCSW(tag, 0, CSWPhaseError) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScripted(t)
			d := oneLUN(t, s)
			s.add(replies(ok(), send(make([]byte, 36)), rawCSW(tc.csw), resetReplies())...)
			res, err := exec(t, d, inquiry())
			if err != nil {
				t.Fatalf("error %v; want DID_ERROR in the result", err)
			}
			s.expect(lines(lineInquiryCBW, "in 36", lineCSW, resetLines)...)
			if res.HostStatus != scsi.HostError {
				t.Errorf("host status %v, want DID_ERROR", res.HostStatus)
			}
			// The device is usable again.
			s.add(ok(), send(make([]byte, 36)), csw(CSWPassed, 0))
			if res, err := exec(t, d, inquiry()); err != nil || res.Status != scsi.Good || res.HostStatus != 0 {
				t.Errorf("after recovery: %+v %v", res, err)
			}
			s.expect(lineInquiryCBW, "in 36", lineCSW)
		})
	}
}

func TestStallDataIn(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	// Case 4 (Hi > Dn): the device STALLs bulk-in instead of data, then
	// fails the command; its sense comes with REQUEST SENSE.
	s.add(ok(), stall(), ok(), csw(CSWFailed, 36),
		ok(), send(fixedSense(0x05, 0x24, 0x00)), csw(CSWPassed, 0))
	res, err := exec(t, d, inquiry())
	if err != nil {
		t.Fatal(err)
	}
	s.expect(lineInquiryCBW, "in 36", lineHaltIn, lineCSW, lineSense0, lineSenseData, lineCSW)
	if res.Status != scsi.CheckCondition || res.Resid != 36 || res.DriverStatus != scsi.DriverSense {
		t.Errorf("result %+v", res)
	}
	if !bytes.Equal(res.Sense, fixedSense(0x05, 0x24, 0)) {
		t.Errorf("sense %x", res.Sense)
	}
}

func TestStallDataOut(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(ok(), fail(ErrStall), ok(), csw(CSWPassed, 4096))
	res, err := exec(t, d, &sgio.Request{CDB: []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0}, Dir: sgio.DirToDevice, Data: make([]byte, 4096)})
	if err != nil {
		t.Fatal(err)
	}
	s.expect("CBW lun=0 len=4096 out cdb=2a000000000000000800", "out 4096", lineHaltOut, lineCSW)
	if res.Status != scsi.Good || res.Resid != 4096 {
		t.Errorf("result %+v", res)
	}
}

func TestStallOnStatusRetriedOnce(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(ok(), send(make([]byte, 36)), stall(), ok(), csw(CSWPassed, 0))
	res, err := exec(t, d, inquiry())
	if err != nil || res.Status != scsi.Good || res.HostStatus != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lineInquiryCBW, "in 36", lineCSW, lineHaltIn, lineCSW)
}

func TestStallOnStatusTwice(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(replies(ok(), send(make([]byte, 36)), stall(), ok(), stall(), resetReplies())...)
	res, err := exec(t, d, inquiry())
	if err != nil || res.HostStatus != scsi.HostError {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lines(lineInquiryCBW, "in 36", lineCSW, lineHaltIn, lineCSW, resetLines)...)
}

func TestZeroLengthPacketBeforeCSW(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(ok(), send(make([]byte, 36)), send(nil), csw(CSWPassed, 0))
	res, err := exec(t, d, inquiry())
	if err != nil || res.Status != scsi.Good || res.HostStatus != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lineInquiryCBW, "in 36", lineCSW, lineCSW)
}

// TestSkippedDataPhase: a device that answers the data-in phase with its
// CSW (usb-storage's "device skipped data phase").
func TestSkippedDataPhase(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(ok(), rawCSW(func(tag uint32) []byte { return wireCSW(tag, 512, CSWPassed) }))
	res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 10), Dir: sgio.DirFromDevice, Data: make([]byte, 512)})
	if err != nil || res.Status != scsi.Good || res.Resid != 512 {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect("CBW lun=0 len=512 in cdb=00000000000000000000", "in 512")
}

func TestCBWStalled(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(replies(stall(), resetReplies())...)
	res, err := exec(t, d, inquiry())
	if err != nil || res.HostStatus != scsi.HostError {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lines(lineInquiryCBW, resetLines)...)
}

func TestDataInOverflow(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(replies(ok(), send(make([]byte, 64)), resetReplies())...)
	res, err := exec(t, d, inquiry())
	if err != nil || res.HostStatus != scsi.HostError {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lines(lineInquiryCBW, "in 36", resetLines)...)
}

func TestRequestSenseAfterFailure(t *testing.T) {
	s := newScripted(t)
	s.add(send([]byte{2})) // GET MAX LUN: three LUNs
	tr := s.transport()
	defer tr.Close()
	if tr.MaxLUN() != 2 {
		t.Fatalf("max LUN %d", tr.MaxLUN())
	}
	d, err := tr.LUN(2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s.expect(lineMaxLUN)
	sense := fixedSense(0x06, 0x28, 0x00)
	s.add(ok(), csw(CSWFailed, 0), ok(), send(sense[:14]), csw(CSWPassed, 4))
	res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)})
	if err != nil {
		t.Fatal(err)
	}
	s.expect("CBW lun=2 len=0 out cdb=000000000000", lineCSW, "CBW lun=2 len=18 in cdb=030000001200", lineSenseData, lineCSW)
	if res.Status != scsi.CheckCondition || !bytes.Equal(res.Sense, sense[:14]) {
		t.Errorf("status %v sense %x", res.Status, res.Sense)
	}

	// REQUEST SENSE that fails itself: CHECK CONDITION without sense.
	s.add(ok(), csw(CSWFailed, 0), ok(), send(nil), csw(CSWFailed, 18))
	res, err = exec(t, d, &sgio.Request{CDB: make([]byte, 6)})
	if err != nil || res.Status != scsi.CheckCondition || res.Sense != nil || res.HostStatus != 0 {
		t.Errorf("%+v %v", res, err)
	}
	s.expect("CBW lun=2 len=0 out cdb=000000000000", lineCSW, "CBW lun=2 len=18 in cdb=030000001200", lineSenseData, lineCSW)

	// A failed REQUEST SENSE of the caller's own gets no second one.
	s.add(ok(), send(nil), csw(CSWFailed, 252))
	res, err = exec(t, d, &sgio.Request{CDB: []byte{0x03, 0, 0, 0, 252, 0}, Dir: sgio.DirFromDevice, Data: make([]byte, 252)})
	if err != nil || res.Status != scsi.CheckCondition || res.Resid != 252 {
		t.Errorf("%+v %v", res, err)
	}
	s.expect("CBW lun=2 len=252 in cdb=03000000fc00", "in 252", lineCSW)
}

func TestRequestSenseTransportFailure(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(replies(ok(), csw(CSWFailed, 0), ok(), send(make([]byte, 18)), rawCSW(func(tag uint32) []byte { return wireCSW(tag^1, 0, 0) }), resetReplies())...)
	res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)})
	if err != nil || res.HostStatus != scsi.HostError {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lines("CBW lun=0 len=0 out cdb=000000000000", lineCSW, lineSense0, lineSenseData, lineCSW, resetLines)...)
}

func TestGetMaxLUN(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    reply
		want int
	}{
		{"stall", stall(), 0},
		{"one", send([]byte{0}), 0},
		{"eight", send([]byte{7}), 7},
		{"fifteen", send([]byte{15}), 15},
		{"out of range", send([]byte{16}), 0},
		{"no data", send(nil), 0},
		{"other failure", fail(errors.New("I/O error")), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScripted(t, tc.r)
			tr := s.transport()
			defer tr.Close()
			s.expect(lineMaxLUN)
			if tr.MaxLUN() != tc.want {
				t.Errorf("max LUN %d, want %d", tr.MaxLUN(), tc.want)
			}
			if _, err := tr.LUN(tc.want + 1); !errors.Is(err, sgio.ErrBadRequest) {
				t.Errorf("LUN(%d): %v", tc.want+1, err)
			}
		})
	}
	s := newScripted(t, fail(sgio.ErrGone))
	if _, err := New(s, "1-1:1.0"); !errors.Is(err, sgio.ErrGone) {
		t.Errorf("New on a vanished device: %v", err)
	}
	if s.closed != 1 {
		t.Errorf("link closed %d times", s.closed)
	}
}

// TestTimeout: a command that outlives its timeout is cut off with a
// reset recovery; the error says timeout and the device is usable.
func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t)
		d := oneLUN(t, s, WithTimeout(30*time.Second))
		s.add(replies(ok(), send(make([]byte, 36)), hang("csw"), resetReplies())...)
		start := time.Now()
		res, err := exec(t, d, inquiry())
		if !errors.Is(err, sgio.ErrTimeout) || res.HostStatus != scsi.HostTimeOut {
			t.Fatalf("%+v %v", res, err)
		}
		if took := time.Since(start); took != 30*time.Second {
			t.Errorf("took %v, want the 30 s default", took)
		}
		<-s.inFlow
		s.expect(lines(lineInquiryCBW, "in 36", lineCSW, resetLines)...)

		// Request.Timeout overrides the default.
		s.add(replies(ok(), hang("data"), resetReplies())...)
		start = time.Now()
		req := inquiry()
		req.Timeout = time.Second
		if _, err := exec(t, d, req); !errors.Is(err, sgio.ErrTimeout) {
			t.Fatal(err)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("took %v, want 1 s", took)
		}
		<-s.inFlow
		s.expect(lines(lineInquiryCBW, "in 36", resetLines)...)

		s.add(ok(), send(make([]byte, 36)), csw(CSWPassed, 0))
		if res, err := exec(t, d, inquiry()); err != nil || res.Status != scsi.Good {
			t.Errorf("after the timeout: %+v %v", res, err)
		}
		s.expect(lineInquiryCBW, "in 36", lineCSW)
		d.Close()
	})
}

// TestCancelMidTransfer: cancelling the context in the data phase ends
// the transfer and resets the device before Execute returns.
func TestCancelMidTransfer(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(replies(ok(), hang("data"), resetReplies())...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var res sgio.Result
	go func() {
		done <- d.Execute(ctx, &sgio.Request{CDB: make([]byte, 10), Dir: sgio.DirToDevice, Data: make([]byte, 4096)}, &res)
	}()
	if got := <-s.inFlow; got != "data" {
		t.Fatal(got)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || res.HostStatus != scsi.HostAbort {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lines("CBW lun=0 len=4096 out cdb=00000000000000000000", "out 4096", resetLines)...)

	// A context done before the command gets the interface: nothing is sent.
	if err := d.Execute(ctx, inquiry(), &res); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	s.expect()
}

// TestCancelWhileWaiting: a command waiting for the interface (another
// LUN's command is on the wire) leaves when its context is cancelled.
func TestCancelWhileWaiting(t *testing.T) {
	s := newScripted(t, send([]byte{1}))
	tr := s.transport()
	d0, _ := tr.LUN(0)
	d1, _ := tr.LUN(1)
	tr.Close()
	s.add(ok(), hang("csw"))
	ctx0, cancel0 := context.WithCancel(context.Background())
	done0 := make(chan error, 1)
	go func() {
		var res sgio.Result
		done0 <- d0.Execute(ctx0, &sgio.Request{CDB: make([]byte, 6)}, &res)
	}()
	<-s.inFlow
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() {
		var res sgio.Result
		done1 <- d1.Execute(ctx1, &sgio.Request{CDB: make([]byte, 6)}, &res)
	}()
	cancel1()
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Errorf("waiting command: %v", err)
	}
	s.add(resetReplies()...)
	cancel0()
	if err := <-done0; !errors.Is(err, context.Canceled) {
		t.Errorf("running command: %v", err)
	}
	s.expect(lines(lineMaxLUN, "CBW lun=0 len=0 out cdb=000000000000", lineCSW, resetLines)...)
	d0.Close()
	d1.Close()
}

func TestResetRecoveryFails(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	// The reset recovery after a phase error fails at its second step.
	s.add(ok(), csw(CSWPhaseError, 0), ok(), fail(errors.New("I/O error")))
	res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)})
	if err != nil || res.HostStatus != scsi.HostError {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect("CBW lun=0 len=0 out cdb=000000000000", lineCSW, lineReset, lineHaltIn)

	// The next command tries again first; failing, it is not sent.
	s.add(fail(ErrStall))
	if _, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)}); !errors.Is(err, ErrResetFailed) || !errors.Is(err, ErrStall) {
		t.Errorf("after a failed reset recovery: %v", err)
	}
	s.expect(lineReset)

	// Succeeding, the command goes.
	s.add(replies(resetReplies(), ok(), csw(CSWPassed, 0))...)
	if res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)}); err != nil || res.Status != scsi.Good {
		t.Errorf("%+v %v", res, err)
	}
	s.expect(lines(resetLines, "CBW lun=0 len=0 out cdb=000000000000", lineCSW)...)
	if n := d.Transport().Resets(); n != 3 {
		t.Errorf("%d resets counted", n)
	}
}

func TestDeviceGone(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(ok(), fail(sgio.ErrGone))
	res, err := exec(t, d, inquiry())
	if !errors.Is(err, sgio.ErrGone) || res.HostStatus != scsi.HostNoConnect {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect(lineInquiryCBW, "in 36")
	// Later commands fail at once, without touching the link.
	if res, err := exec(t, d, inquiry()); !errors.Is(err, sgio.ErrGone) || res.HostStatus != scsi.HostNoConnect {
		t.Errorf("%+v %v", res, err)
	}
	s.expect()

	// Gone during a reset recovery.
	s = newScripted(t)
	d = oneLUN(t, s)
	s.add(ok(), csw(CSWPhaseError, 0), fail(sgio.ErrGone))
	if res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)}); !errors.Is(err, sgio.ErrGone) || res.HostStatus != scsi.HostNoConnect {
		t.Errorf("%+v %v", res, err)
	}
	s.expect("CBW lun=0 len=0 out cdb=000000000000", lineCSW, lineReset)
}

func TestBadRequests(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s, WithMaxTransfer(4096))
	for _, tc := range []struct {
		name string
		req  *sgio.Request
		want error
	}{
		{"nil", nil, sgio.ErrBadRequest},
		{"no CDB", &sgio.Request{}, sgio.ErrBadRequest},
		{"17-byte CDB", &sgio.Request{CDB: make([]byte, 17)}, sgio.ErrBadRequest},
		{"bidirectional", &sgio.Request{CDB: make([]byte, 10), Dir: sgio.DirBidi, Data: make([]byte, 8), ReadData: make([]byte, 8)}, sgio.ErrBadRequest},
		{"data without direction", &sgio.Request{CDB: make([]byte, 10), Data: make([]byte, 8)}, sgio.ErrBadRequest},
		{"too large", &sgio.Request{CDB: make([]byte, 10), Dir: sgio.DirFromDevice, Data: make([]byte, 4097)}, sgio.ErrTooLarge},
		{"negative timeout", &sgio.Request{CDB: make([]byte, 6), Timeout: -1}, sgio.ErrBadRequest},
	} {
		if _, err := exec(t, d, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	s.expect()
	if l := d.Limits(); l.MaxTransferBytes != 4096 || l.QueueDepth != 1 {
		t.Errorf("limits %+v", l)
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []Option{WithMaxTransfer(0), WithMaxTransfer(MaxMaxTransfer + 1), WithTimeout(0), WithResetTimeout(-1), WithSenseLength(17), WithSenseLength(253)} {
		s := newScripted(t)
		if _, err := New(s, "x", o); !errors.Is(err, sgio.ErrBadRequest) {
			t.Errorf("%v", err)
		}
		if s.closed != 1 {
			t.Errorf("link not closed")
		}
	}
}

func TestSenseLength(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s, WithSenseLength(96))
	s.add(ok(), csw(CSWFailed, 0), ok(), send(fixedSense(3, 0x11, 0)), csw(CSWPassed, 78))
	res, err := exec(t, d, &sgio.Request{CDB: make([]byte, 6)})
	if err != nil || len(res.Sense) != 18 {
		t.Fatalf("%+v %v", res, err)
	}
	s.expect("CBW lun=0 len=0 out cdb=000000000000", lineCSW, "CBW lun=0 len=96 in cdb=030000006000", "in 96", lineCSW)
}

func TestCloseReleasesLinkOnce(t *testing.T) {
	s := newScripted(t, send([]byte{1}))
	tr := s.transport()
	d0, _ := tr.LUN(0)
	d1, _ := tr.LUN(1)
	if err := tr.Close(); err != nil || s.closed != 0 {
		t.Fatalf("closing the transport with open LUNs: %v, link closed %d", err, s.closed)
	}
	tr.Close() // idempotent
	d0.Close()
	d0.Close()
	if s.closed != 0 {
		t.Fatal("link closed while LUN 1 is open")
	}
	var res sgio.Result
	if err := d0.Execute(context.Background(), inquiry(), &res); !errors.Is(err, sgio.ErrClosed) {
		t.Errorf("closed LUN: %v", err)
	}
	d1.Close()
	if s.closed != 1 {
		t.Errorf("link closed %d times", s.closed)
	}
	if _, err := tr.LUN(0); !errors.Is(err, sgio.ErrClosed) {
		t.Errorf("LUN after close: %v", err)
	}
	s.expect(lineMaxLUN)
}

func TestCloseWaitsForCommand(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	release := make(chan struct{})
	s.add(ok(), func(s *scripted, ctx context.Context, buf []byte) (int, error) {
		s.inFlow <- "csw"
		<-release
		return csw(CSWPassed, 0)(s, ctx, buf)
	})
	done := make(chan error, 1)
	go func() {
		var res sgio.Result
		done <- d.Execute(context.Background(), &sgio.Request{CDB: make([]byte, 6)}, &res)
	}()
	<-s.inFlow
	closed := make(chan struct{})
	go func() {
		d.Close()
		close(closed)
	}()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-closed
	if s.closed != 1 {
		t.Errorf("link closed %d times", s.closed)
	}
}

func TestReset(t *testing.T) {
	s := newScripted(t)
	d := oneLUN(t, s)
	s.add(resetReplies()...)
	if err := d.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.expect(resetLines...)

	// Multi-LUN: the reset would hit the other LUNs.
	s = newScripted(t, send([]byte{1}))
	tr := s.transport()
	d1, _ := tr.LUN(1)
	tr.Close()
	if err := d1.Reset(context.Background()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("multi-LUN reset: %v", err)
	}
	s.expect(lineMaxLUN)
}
