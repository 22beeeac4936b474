package bridge

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sanbridge/sanbridge/bridge/metrics"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/discover"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// fakeShelf is a machine's SCSI devices for hot-plug tests: an
// inventory that changes when the test says, and sg nodes backed by
// emulated disks that keep their data while they are unplugged (a disk
// pulled and pushed back).
type fakeShelf struct {
	t     *testing.T
	mu    sync.Mutex
	devs  []discover.Device
	disks map[string]*fakeDisk // by identity
}

type fakeDisk struct {
	d    *emul.Disk
	gone atomic.Bool
	// hold, when set, keeps READ(10) commands at the device until it is
	// closed; entered hears of each.
	hold    chan struct{}
	entered chan struct{}
}

// fakeSG is one open of a fake sg node.
type fakeSG struct{ fd *fakeDisk }

func (f *fakeSG) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	if f.fd.gone.Load() {
		return fmt.Errorf("fake sg: %w", sgio.ErrGone)
	}
	if f.fd.hold != nil && scsi.Opcode(req.CDB[0]) == scsi.OpRead10 {
		f.fd.entered <- struct{}{}
		<-f.fd.hold // a device does not stop for a cancelled context
	}
	return f.fd.d.Execute(ctx, req, res)
}
func (f *fakeSG) Limits() sgio.Limits { return f.fd.d.Limits() }
func (f *fakeSG) Close() error        { return nil }

func newFakeShelf(t *testing.T) *fakeShelf {
	return &fakeShelf{t: t, disks: map[string]*fakeDisk{}}
}

// plug adds a disk at sg node /dev/sgN; wwn or serial identifies it.
func (s *fakeShelf) plug(sg int, wwn, serial string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := discover.Device{HCTL: fmt.Sprintf("2:0:%d:0", sg), Type: discover.TypeDisk, Vendor: "SANBRIDG", Product: "SHELF DISK",
		Revision: "0001", SG: fmt.Sprintf("/dev/sg%d", sg), Identity: discover.Identity{WWN: wwn, Serial: serial},
		Transport: discover.Transport{Kind: discover.TransportSAS}}
	id := identityOf(&d)
	fd := s.disks[id]
	if fd == nil {
		disk, err := emul.New(emul.Config{SizeBytes: 4 << 20, BlockSize: 512, Serial: serial})
		if err != nil {
			s.t.Fatal(err)
		}
		fd = &fakeDisk{d: disk}
		s.disks[id] = fd
	}
	fd.gone.Store(false)
	s.devs = append(s.devs, d)
}

// add appends a device as discovery shows it, without a disk behind it.
func (s *fakeShelf) add(d discover.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devs = append(s.devs, d)
}

// unplug removes the device at /dev/sgN.
func (s *fakeShelf) unplug(sg int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := fmt.Sprintf("/dev/sg%d", sg)
	for i, d := range s.devs {
		if d.SG == node {
			s.disks[identityOf(&d)].gone.Store(true)
			s.devs = append(s.devs[:i], s.devs[i+1:]...)
			return
		}
	}
	s.t.Fatalf("no device at %s", node)
}

func (s *fakeShelf) inventory() *inventory {
	return &inventory{scan: func() ([]discover.Device, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return append([]discover.Device(nil), s.devs...), nil
	}}
}

func (s *fakeShelf) open(path string, _ ...sgio.Option) (sgio.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devs {
		if d.SG == path {
			return &fakeSG{fd: s.disks[identityOf(&d)]}, nil
		}
	}
	return nil, fmt.Errorf("open %s: %w", path, sgio.ErrGone)
}

// gateway starts a gateway for src on the shelf.
func (s *fakeShelf) gateway(t *testing.T, src string, opts Options) (*Bridge, string, func()) {
	t.Helper()
	b, err := newTestBridge(t, mustParse(t, src, "shelf.hcl"), opts, s.inventory(), s.open)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serveTestBridge(t, b)
	return b, addr, stop
}

const (
	wwnA = "naa.5000c50015ea71a0"
	wwnB = "naa.5000c50015ea71b0"
	wwnE = "naa.5000c50015ea71e0"
)

// counter reads a counter family of reg without labels.
func counter(t *testing.T, reg *metrics.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no family %s", name)
	return 0
}

// TestHotplugRemoveAndReturn: a device removed under its LUN answers NOT
// READY (INQUIRY: peripheral qualifier 001b) while the other LUN goes on;
// back under another sg node it is the same LUN with its data, and every
// session gets POWER ON OCCURRED once, without a relogin.
func TestHotplugRemoveAndReturn(t *testing.T) {
	shelf := newFakeShelf(t)
	shelf.plug(1, wwnA, "A1")
	shelf.plug(2, wwnB, "B1")
	reg := metrics.New("test")
	src := `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:shelf" {
  lun "0" {
    device {
      wwn = "` + wwnA + `"
    }
  }
  lun "1" {
    device {
      wwn = "` + wwnB + `"
    }
  }
}
`
	b, addr, _ := shelf.gateway(t, src, Options{Metrics: reg})
	const tgt = "iqn.2026-11.io.sanbridge:shelf"
	s1 := mustDial(t, addr, hostA, tgt, 1)
	s2 := mustDial(t, addr, hostB, tgt, 2)
	for _, s := range []*testinit.Session{s1, s2} {
		ready(t, s, 0)
		ready(t, s, 1)
	}
	data := bytes.Repeat([]byte{0xa5, 0x5a, 1, 2}, 1024)
	expect(t, "WRITE", s1.Do(0, testinit.Write10(100, 8), data, 0), scsi.Good)
	if got := counter(t, reg, "sanbridge_device_arrivals_total"); got != 2 {
		t.Fatalf("device arrivals %v, want 2", got)
	}

	// An initiator on this host logs in to the gateway: LUN 0 appears as
	// a local iSCSI device with A's identity. It is not A.
	twin := discover.Device{HCTL: "9:0:0:0", Type: discover.TypeDisk, SG: "/dev/sg20", Identity: discover.Identity{WWN: wwnA, Serial: "A1"},
		Transport: discover.Transport{Kind: discover.TransportISCSI, TargetName: "iqn.2026-11.io.sanbridge:shelf"}, Excluded: "iSCSI-backed"}
	shelf.add(twin)
	b.Reconcile()
	if st := luOf(t, b, "iqn.2026-11.io.sanbridge:shelf/lun/0"); st.State != "present" || st.SG != "/dev/sg1" {
		t.Fatalf("status with the LUN seen over iSCSI on this host: %+v", st)
	}

	shelf.unplug(1)
	b.Reconcile()
	for _, s := range []*testinit.Session{s1, s2} {
		expect(t, "TUR while gone", s.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseNotReady, ascGone)
		expect(t, "LUN 1 while LUN 0 is gone", s.Do(1, testinit.Read10(0, 8), nil, 4096), scsi.Good)
	}
	expect(t, "READ while gone", s1.Do(0, testinit.Read10(100, 8), nil, 4096), scsi.CheckCondition, scsi.SenseNotReady, ascGone)
	inq := s1.Do(0, testinit.Inquiry(96), nil, 96)
	expect(t, "INQUIRY while gone", inq, scsi.Good)
	if len(inq.Data) < 36 || inq.Data[0]>>5 != 1 || inq.Data[0]&0x1f != 0 {
		t.Fatalf("INQUIRY while gone: byte 0 %#x, want peripheral qualifier 001b, type 0", inq.Data[:1])
	}
	if got := luns(t, s1); got != "[0 1]" {
		t.Fatalf("REPORT LUNS while gone: %s", got)
	}
	if st := luOf(t, b, "iqn.2026-11.io.sanbridge:shelf/lun/0"); st.State != "gone" {
		t.Fatalf("status while gone: %+v", st)
	}
	if got := counter(t, reg, "sanbridge_device_removals_total"); got != 1 {
		t.Fatalf("device removals %v, want 1", got)
	}

	// Back, under another sg node.
	shelf.plug(7, wwnA, "A1")
	b.Reconcile()
	for i, s := range []*testinit.Session{s1, s2} {
		expect(t, fmt.Sprintf("session %d: first command after the return", i+1), s.Do(0, testinit.TUR(), nil, 0),
			scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCPowerOnOccurred)
		expect(t, fmt.Sprintf("session %d: TUR after the unit attention", i+1), s.Do(0, testinit.TUR(), nil, 0), scsi.Good)
	}
	rd := s2.Do(0, testinit.Read10(100, 8), nil, 4096)
	expect(t, "READ after the return", rd, scsi.Good)
	if !bytes.Equal(rd.Data, data) {
		t.Fatal("the data written before the removal is not there after the return")
	}
	if st := luOf(t, b, "iqn.2026-11.io.sanbridge:shelf/lun/0"); st.State != "reattached" || st.SG != "/dev/sg7" || st.Returns != 1 {
		t.Fatalf("status after the return: %+v", st)
	}
	expect(t, "LUN 1 never saw anything", s1.Do(1, testinit.TUR(), nil, 0), scsi.Good)
	if got := counter(t, reg, "sanbridge_device_arrivals_total"); got != 3 {
		t.Fatalf("device arrivals %v, want 3", got)
	}
}

// luOf returns the status of a backend's logical unit.
func luOf(t *testing.T, b *Bridge, backend string) LUStatus {
	t.Helper()
	for _, l := range b.Status().LUs {
		if l.Backend == backend {
			return l
		}
	}
	t.Fatalf("no logical unit %s", backend)
	return LUStatus{}
}

const autoConfig = `
portal "lo" {
  listen = "127.0.0.1:0"
}
auto_export "shelf" {
  target = "iqn.2026-11.io.sanbridge:auto"
  types  = ["disk"]
}
`

// TestAutoExport: every matching device gets a LUN, in-use and iSCSI
// devices excepted; a new device is exported live (REPORTED LUNS DATA HAS
// CHANGED); a removed one keeps its LUN; the numbers survive a restart
// with the sg nodes renumbered; a device the file maps itself is not
// auto-exported.
func TestAutoExport(t *testing.T) {
	dir := t.TempDir()
	shelf := newFakeShelf(t)
	shelf.plug(1, wwnA, "A1")
	shelf.plug(2, "", "B1") // serial only
	shelf.add(discover.Device{HCTL: "3:0:0:0", Type: discover.TypeDisk, SG: "/dev/sg3", Identity: discover.Identity{WWN: "naa.60000000000000c0"},
		Transport: discover.Transport{Kind: discover.TransportISCSI, TargetName: "iqn.2026-11.io.example:remote"}})
	shelf.add(discover.Device{HCTL: "4:0:0:0", Type: discover.TypeDisk, SG: "/dev/sg4", Identity: discover.Identity{WWN: "naa.60000000000000d0"},
		InUse: []discover.Use{{Kind: discover.UseMount}}, Excluded: "in use"})
	shelf.add(discover.Device{HCTL: "5:0:0:0", Type: discover.TypeTape, SG: "/dev/sg5", Identity: discover.Identity{WWN: "naa.60000000000000f0"}})
	b, addr, stop := shelf.gateway(t, autoConfig, Options{StateDir: dir})
	const tgt = "iqn.2026-11.io.sanbridge:auto"
	s := mustDial(t, addr, hostA, tgt, 1)
	// Sorted by identity: serial:... before wwn:...
	if got := luns(t, s); got != "[0 1]" {
		t.Fatalf("REPORT LUNS: %s", got)
	}
	ready(t, s, 0)
	ready(t, s, 1)

	shelf.plug(6, wwnE, "E1")
	b.Reconcile()
	expect(t, "after a new device", s.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCReportedLUNsDataChanged)
	if got := luns(t, s); got != "[0 1 2]" {
		t.Fatalf("REPORT LUNS after a new device: %s", got)
	}
	shelf.unplug(2)
	b.Reconcile()
	if got := luns(t, s); got != "[0 1 2]" {
		t.Fatalf("REPORT LUNS after a removal: %s", got)
	}
	expect(t, "the removed device's LUN", s.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseNotReady, ascGone)
	s.Close()
	stop()

	// Restart: B is back, under another node, E is gone, F is new.
	shelf2 := newFakeShelf(t)
	shelf2.plug(9, wwnE+"f", "F1") // sorts after A and before E
	shelf2.plug(4, wwnA, "A1")
	shelf2.plug(8, "", "B1")
	_, addr2, _ := shelf2.gateway(t, autoConfig, Options{StateDir: dir})
	s2 := mustDial(t, addr2, hostA, tgt, 2)
	if got := luns(t, s2); got != "[0 1 3]" {
		t.Fatalf("REPORT LUNS after the restart: %s (E keeps LUN 2 for when it returns)", got)
	}

	// The file maps A itself at LUN 0: it is not auto-exported, and B,
	// whose LUN 0 the file takes, gets the lowest number no other device
	// of the block had.
	shelf3 := newFakeShelf(t)
	shelf3.plug(1, wwnA, "A1")
	shelf3.plug(2, "", "B1")
	b3, addr3, _ := shelf3.gateway(t, autoConfig+`
target "iqn.2026-11.io.sanbridge:auto" {
  lun "0" {
    device {
      wwn = "`+wwnA+`"
    }
  }
}
`, Options{StateDir: dir})
	s3 := mustDial(t, addr3, hostA, tgt, 3)
	if got := luns(t, s3); got != "[0 4]" {
		t.Fatalf("REPORT LUNS with A mapped by the file: %s", got)
	}
	var backends []string
	for _, tg := range b3.Status().Targets {
		for _, l := range tg.LUNs {
			backends = append(backends, fmt.Sprintf("%d=%s", l.LUN, l.Backend))
		}
	}
	if got, want := strings.Join(backends, " "), "0=iqn.2026-11.io.sanbridge:auto/lun/0 4=auto/shelf/serial:SANBRIDG:SHELF DISK:B1"; got != want {
		t.Fatalf("maps: %s, want %s", got, want)
	}
}
