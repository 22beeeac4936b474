package passthrough

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func newTarget(t *testing.T, ids ...uint64) *Target {
	t.Helper()
	var lus []*LU
	for _, id := range ids {
		d, err := emul.New(emul.Config{SizeBytes: 1 << 20, BlockSize: 512, Serial: fmt.Sprintf("PT%04d", id)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		lus = append(lus, NewLU(id, d))
	}
	tg, err := NewTarget(lus, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func nexus(isid byte) *iscsi.Nexus {
	return &iscsi.Nexus{InitiatorName: "iqn.2026-11.io.sanbridge:pt", ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}, TargetName: "iqn.2026-11.io.sanbridge:t", TPGT: 1}
}

func run(t *testing.T, tg *Target, n *iscsi.Nexus, lun uint64, cdb []byte, alloc int) iscsi.Response {
	t.Helper()
	cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(lun), CDB: cdb, Read: alloc > 0, ReadBuf: make([]byte, alloc)}
	return tg.Execute(context.Background(), cmd)
}

func senseOf(t *testing.T, r iscsi.Response) scsi.Sense {
	t.Helper()
	if r.Status != scsi.CheckCondition {
		t.Fatalf("status %v, want CHECK CONDITION", r.Status)
	}
	s, err := scsi.ParseSense(r.Sense)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReportLUNs(t *testing.T) {
	tg := newTarget(t, 3, 0, 300)
	cdb := make([]byte, 12)
	cdb[0] = byte(scsi.OpReportLUNs)
	binary.BigEndian.PutUint32(cdb[6:], 4096)
	cmd := &iscsi.Command{Nexus: nexus(1), LUN: iscsi.MakeLUN(7), CDB: cdb, Read: true, ReadBuf: make([]byte, 4096)}
	r := tg.Execute(context.Background(), cmd)
	if r.Status != 0 || r.ReadLen != 8+3*8 {
		t.Fatalf("status %v len %d", r.Status, r.ReadLen)
	}
	if binary.BigEndian.Uint32(cmd.ReadBuf) != 24 {
		t.Fatalf("list length %d", binary.BigEndian.Uint32(cmd.ReadBuf))
	}
	var got []uint64
	for i := 8; i < r.ReadLen; i += 8 {
		var l iscsi.LUN
		copy(l[:], cmd.ReadBuf[i:])
		n, ok := l.Number()
		if !ok {
			t.Fatalf("bad LUN %x", l)
		}
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[0 3 300]" {
		t.Fatalf("LUNs %v", got)
	}
	// Truncated to the allocation length, Wanted says the full size.
	binary.BigEndian.PutUint32(cdb[6:], 16)
	cmd.ReadBuf = make([]byte, 16)
	r = tg.Execute(context.Background(), cmd)
	if r.ReadLen != 16 || r.Wanted != 16 {
		t.Fatalf("truncated: len %d wanted %d", r.ReadLen, r.Wanted)
	}
	// Allocation length below 16 and a bad SELECT REPORT are errors.
	binary.BigEndian.PutUint32(cdb[6:], 8)
	if s := senseOf(t, tg.Execute(context.Background(), cmd)); s.Key != scsi.SenseIllegalRequest || s.ASC != scsi.ASCInvalidFieldInCDB {
		t.Fatalf("alloc 8: %v", s)
	}
	binary.BigEndian.PutUint32(cdb[6:], 64)
	cdb[2] = 0x7
	if s := senseOf(t, tg.Execute(context.Background(), cmd)); s.ASC != scsi.ASCInvalidFieldInCDB {
		t.Fatalf("select report 7: %v", s)
	}
}

func TestMissingLUN(t *testing.T) {
	tg := newTarget(t, 0)
	inq := []byte{byte(scsi.OpInquiry), 0, 0, 0, 36, 0}
	r := run(t, tg, nexus(1), 5, inq, 36)
	if r.Status != 0 || r.ReadLen != 36 {
		t.Fatalf("INQUIRY to missing LUN: status %v len %d", r.Status, r.ReadLen)
	}
	cmd := &iscsi.Command{Nexus: nexus(1), LUN: iscsi.MakeLUN(5), CDB: inq, Read: true, ReadBuf: make([]byte, 36)}
	tg.Execute(context.Background(), cmd)
	if cmd.ReadBuf[0] != 0x7f {
		t.Fatalf("peripheral byte %#x, want 7f", cmd.ReadBuf[0])
	}
	s := senseOf(t, run(t, tg, nexus(1), 5, []byte{0, 0, 0, 0, 0, 0}, 0))
	if s.Key != scsi.SenseIllegalRequest || s.ASC != scsi.ASCLUNNotSupported {
		t.Fatalf("TUR to missing LUN: %v", s)
	}
	if !tg.HasLUN(nexus(1), iscsi.MakeLUN(0)) || tg.HasLUN(nexus(1), iscsi.MakeLUN(5)) {
		t.Fatal("HasLUN wrong")
	}
}

func TestUnitAttentionAfterLUNReset(t *testing.T) {
	tg := newTarget(t, 0, 1)
	a, b := nexus(1), nexus(2)
	tur := []byte{0, 0, 0, 0, 0, 0}
	for _, n := range []*iscsi.Nexus{a, b} {
		if r := run(t, tg, n, 0, tur, 0); r.Status != 0 {
			t.Fatalf("TUR before reset: %v", r.Status)
		}
	}
	if r := tg.TaskManagement(context.Background(), a, iscsi.TMFLogicalUnitReset, iscsi.MakeLUN(0)); r != iscsi.TMFComplete {
		t.Fatalf("LU reset: %v", r)
	}
	// INQUIRY does not consume the condition.
	if r := run(t, tg, b, 0, []byte{byte(scsi.OpInquiry), 0, 0, 0, 36, 0}, 36); r.Status != 0 {
		t.Fatalf("INQUIRY during UA: %v", r.Status)
	}
	for _, n := range []*iscsi.Nexus{a, b} {
		s := senseOf(t, run(t, tg, n, 0, tur, 0))
		if s.Key != scsi.SenseUnitAttention || s.ASC != scsi.ASCBusDeviceResetOccurred {
			t.Fatalf("after reset: %v", s)
		}
		if r := run(t, tg, n, 0, tur, 0); r.Status != 0 {
			t.Fatalf("UA reported twice: %v", r.Status)
		}
	}
	// The other LUN was not reset.
	if r := run(t, tg, a, 1, tur, 0); r.Status != 0 {
		t.Fatalf("LUN 1 got %v", r.Status)
	}
	// REQUEST SENSE returns and clears a pending condition.
	tg.TaskManagement(context.Background(), a, iscsi.TMFTargetWarmReset, iscsi.LUN{})
	cmd := &iscsi.Command{Nexus: b, LUN: iscsi.MakeLUN(1), CDB: []byte{byte(scsi.OpRequestSense), 0, 0, 0, 18, 0}, Read: true, ReadBuf: make([]byte, 18)}
	if r := tg.Execute(context.Background(), cmd); r.Status != 0 || r.ReadLen != 18 {
		t.Fatalf("REQUEST SENSE: %v %d", r.Status, r.ReadLen)
	}
	if s, _ := scsi.ParseSense(cmd.ReadBuf); s.Key != scsi.SenseUnitAttention || s.ASC != scsi.ASCPowerOnOrReset {
		t.Fatalf("REQUEST SENSE data %v", s)
	}
	if r := run(t, tg, b, 1, tur, 0); r.Status != 0 {
		t.Fatalf("UA not cleared by REQUEST SENSE: %v", r.Status)
	}
	// A session that ends loses its conditions.
	// Pending now: a has LUN 0 and 1 from the warm reset; b has LUN 0.
	// A LUN reset adds one more for LUN 0 on both.
	tg.TaskManagement(context.Background(), a, iscsi.TMFLogicalUnitReset, iscsi.MakeLUN(0))
	if n := tg.ua.count.Load(); n != 5 {
		t.Fatalf("%d conditions pending, want 5", n)
	}
	tg.Detach(b)
	if n := tg.ua.count.Load(); n != 3 {
		t.Fatalf("%d conditions pending after b left, want a's 3", n)
	}
}

// failingDevice is a device whose transport reports the given outcome.
type failingDevice struct {
	res *sgio.Result
	err error
}

func (f *failingDevice) Execute(_ context.Context, _ *sgio.Request, res *sgio.Result) error {
	*res = sgio.Result{}
	if f.res != nil {
		*res = *f.res
	}
	return f.err
}
func (f *failingDevice) Limits() sgio.Limits { return sgio.Limits{QueueDepth: 1} }
func (f *failingDevice) Close() error        { return nil }

func TestTransportErrorsBecomeSense(t *testing.T) {
	cases := []struct {
		name   string
		dev    *failingDevice
		status scsi.Status
		key    scsi.SenseKey
		asc    scsi.ASC
	}{
		{"gone", &failingDevice{err: fmt.Errorf("ioctl: %w", sgio.ErrGone)}, 2, scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported},
		{"queue full", &failingDevice{err: sgio.ErrQueueFull}, scsi.TaskSetFull, 0, 0},
		{"too large", &failingDevice{err: sgio.ErrTooLarge}, 2, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"timeout", &failingDevice{err: sgio.ErrTimeout}, 2, scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense},
		{"DID_NO_CONNECT", &failingDevice{res: &sgio.Result{HostStatus: scsi.HostNoConnect}}, 2, scsi.SenseNotReady, scsi.ASCLUCommunicationFailure},
		{"DID_BUS_BUSY", &failingDevice{res: &sgio.Result{HostStatus: scsi.HostBusBusy}}, scsi.Busy, 0, 0},
		{"DID_RESET", &failingDevice{res: &sgio.Result{HostStatus: scsi.HostReset}}, 2, scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset},
		{"check without sense", &failingDevice{res: &sgio.Result{Status: 2}}, 2, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := NewTarget([]*LU{NewLU(0, tc.dev)}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, tg, nexus(1), 0, []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512)
			if r.Status != tc.status {
				t.Fatalf("status %v, want %v", r.Status, tc.status)
			}
			if tc.status == 2 {
				s := senseOf(t, r)
				if s.Key != tc.key || s.ASC != tc.asc {
					t.Fatalf("sense %v, want %v %v", s, tc.key, tc.asc)
				}
			}
		})
	}
}

// cdbRecorder records the CDBs a device receives.
type cdbRecorder struct{ got [][]byte }

func (c *cdbRecorder) Execute(_ context.Context, r *sgio.Request, res *sgio.Result) error {
	c.got = append(c.got, append([]byte(nil), r.CDB...))
	*res = sgio.Result{}
	return nil
}
func (c *cdbRecorder) Limits() sgio.Limits { return sgio.Limits{QueueDepth: 1} }
func (c *cdbRecorder) Close() error        { return nil }

// TestCDBTrimmedToItsLength: the engine hands over the 16 CDB bytes of the
// BHS; the device gets the CDB's own length.
func TestCDBTrimmedToItsLength(t *testing.T) {
	rec := &cdbRecorder{}
	tg, err := NewTarget([]*LU{NewLU(0, rec)}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, cdb := range [][]byte{
		make([]byte, 16), // TEST UNIT READY: 6
		append([]byte{0x28}, make([]byte, 15)...), // READ(10): 10
		append([]byte{0xa8}, make([]byte, 15)...), // READ(12): 12
		append([]byte{0x88}, make([]byte, 15)...), // READ(16): 16
		append([]byte{0xc0}, make([]byte, 15)...), // vendor specific: as is
	} {
		run(t, tg, nexus(1), 0, cdb, 0)
	}
	var lens []int
	for _, c := range rec.got {
		lens = append(lens, len(c))
	}
	if fmt.Sprint(lens) != "[6 10 12 16 16]" {
		t.Fatalf("CDB lengths %v", lens)
	}
}

// lendingDevice lends its own buffer for data-in, as the SG backend's
// solo descriptor does, and counts the releases.
type lendingDevice struct {
	failingDevice
	buf      []byte
	released int
}

func (l *lendingDevice) ExecuteLent(ctx context.Context, req *sgio.Request, res *sgio.Result) ([]byte, func(), error) {
	if err := l.Execute(ctx, req, res); err != nil {
		return nil, nil, err
	}
	return l.buf[:min(res.Transferred(len(req.Data)), len(l.buf))], func() { l.released++ }, nil
}

// TestLentData: data a device lends goes into the response with its
// release, and is released at once when a transport failure replaces
// the data.
func TestLentData(t *testing.T) {
	dev := &lendingDevice{buf: []byte("lent data, not the engine's buffer")}
	dev.res = &sgio.Result{Resid: 512 - 9}
	tg, err := NewTarget([]*LU{NewLU(0, dev)}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	read10 := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	r := run(t, tg, nexus(1), 0, read10, 512)
	if r.Status != 0 || r.ReadLen != 9 || string(r.ReadData) != "lent data" || r.Release == nil {
		t.Fatalf("response %+v, want the 9 lent bytes and a release", r)
	}
	if dev.released != 0 {
		t.Fatal("released before the engine sent the data")
	}
	r.Release()
	dev.res = &sgio.Result{HostStatus: scsi.HostBusBusy}
	r = run(t, tg, nexus(1), 0, read10, 512)
	if r.Status != scsi.Busy || r.ReadData != nil || r.Release != nil || dev.released != 2 {
		t.Fatalf("transport failure: response %+v, %d releases; want BUSY, no data and both buffers released", r, dev.released)
	}
}
