package bridge

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/discover"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// usbFixture: a card reader on usb-storage, two identical sticks without
// serial numbers, a UFI floppy (not Bulk-Only).
var usbFixture = []discover.USBInterface{
	{Name: "1-1:1.0", BusPath: "1-1", VendorID: "05e3", ProductID: "0751", Serial: "000000000819", BulkOnly: true, Driver: "usb-storage",
		LUNs: []discover.USBLUN{{HCTL: "3:0:0:0"}, {HCTL: "3:0:0:1", LUN: 1}}},
	{Name: "1-2:1.0", BusPath: "1-2", VendorID: "0781", ProductID: "5567", BulkOnly: true},
	{Name: "1-3:1.0", BusPath: "1-3", VendorID: "0781", ProductID: "5567", BulkOnly: true},
	{Name: "1-4:1.0", BusPath: "1-4", VendorID: "0644", ProductID: "0000", Driver: "usb-storage"},
}

func TestResolveUSB(t *testing.T) {
	for _, tc := range []struct {
		sel  conf.USB
		want string // interface, or a piece of the error
	}{
		{conf.USB{VendorID: "05e3"}, "1-1:1.0"},
		{conf.USB{Serial: "000000000819"}, "1-1:1.0"},
		{conf.USB{VendorID: "05E3", ProductID: "0751", Serial: "000000000819", Path: "1-1"}, "1-1:1.0"},
		{conf.USB{Path: "1-3:1.0"}, "1-3:1.0"},
		{conf.USB{Path: "1-3"}, "1-3:1.0"},
		{conf.USB{VendorID: "0781"}, "2 USB interfaces match usb vid 0781 (1-2:1.0, 1-3:1.0)"},
		{conf.USB{VendorID: "0781", Serial: "X"}, "no USB Bulk-Only interface matches usb vid 0781, serial X"},
		{conf.USB{VendorID: "0644"}, "no USB Bulk-Only interface"}, // CBI, not Bulk-Only
		{conf.USB{Path: "1-1:1.1"}, "no USB Bulk-Only interface"},
	} {
		f, err := resolveUSB(&tc.sel, usbFixture)
		switch {
		case err != nil && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%+v: %v, want %q", tc.sel, err, tc.want)
		case err == nil && f.Name != tc.want:
			t.Errorf("%+v: %s, want %s", tc.sel, f.Name, tc.want)
		}
	}
}

func TestUSBInUse(t *testing.T) {
	devs := []discover.Device{
		{HCTL: "3:0:0:0"},
		{HCTL: "3:0:0:1", InUse: []discover.Use{{Kind: discover.UseMount, Block: "sdc1", What: "/media/card (vfat)"}}},
	}
	if got := usbInUse(&usbFixture[0], devs); got != "sdc1 mounted on /media/card (vfat)" {
		t.Errorf("in use: %q", got)
	}
	if got := usbInUse(&usbFixture[0], devs[:1]); got != "" {
		t.Errorf("free reader: %q", got)
	}
}

// TestUSBNotBothWays: an interface opened through an sg node is not
// opened over BOT as well (and the other way, see claimSG).
func TestUSBNotBothWays(t *testing.T) {
	inv := &inventory{}
	if err := inv.claimSG("1-1:1.0"); err != nil {
		t.Fatal(err)
	}
	if err := inv.claimSG("1-1:1.0"); err != nil {
		t.Errorf("a second LUN through sg: %v", err)
	}
	if _, err := inv.openBOT(&usbFixture[0], 0, zerolog.New(zerolog.NewTestWriter(t))); err == nil || !strings.Contains(err.Error(), "already opened through its sg node") {
		t.Errorf("BOT after sg: %v", err)
	}
}

// usbStick is a USB logical unit that can be pulled: an emulated disk
// whose commands fail with sgio.ErrGone once gone is set, as the
// Bulk-Only backend's do.
type usbStick struct {
	sgio.Device
	gone atomic.Bool
}

func (s *usbStick) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	if s.gone.Load() {
		*res = sgio.Result{HostStatus: scsi.HostNoConnect}
		return &sgio.OpError{Op: "submit", Path: "usb 1-1:1.0 lun 0", Err: sgio.ErrGone}
	}
	return s.Device.Execute(ctx, req, res)
}

func newUSBStick(t *testing.T) *usbStick {
	d, err := emul.New(emul.Config{SizeBytes: 1 << 20, Vendor: "QEMU", Product: "QEMU HARDDISK", Serial: "1-0000:00:04.0-1"})
	if err != nil {
		t.Fatal(err)
	}
	return &usbStick{Device: d}
}

// TestUSBDeviceRemoval: a USB logical unit whose device is removed
// answers NOT READY 04/03 (INQUIRY: peripheral qualifier 001b) instead of
// the backend's error, is put back only under a device of its own
// identity, and reports POWER ON OCCURRED once when it is.
func TestUSBDeviceRemoval(t *testing.T) {
	const key = "usb:46f4:0001:1-0000:00:04.0-1:0"
	stick := newUSBStick(t)
	u := newUSBDevice(stick, key, zerolog.New(zerolog.NewTestWriter(t)))
	u.every = 0
	defer u.Close()
	ctx := context.Background()
	tur := func() *sgio.Result {
		t.Helper()
		var res sgio.Result
		if err := u.Execute(ctx, &sgio.Request{CDB: make([]byte, 6)}, &res); err != nil {
			t.Fatalf("TEST UNIT READY: %v", err)
		}
		return &res
	}
	senseOf := func(res *sgio.Result) scsi.Sense {
		t.Helper()
		s, err := scsi.ParseSense(res.Sense)
		if res.Status != scsi.CheckCondition || err != nil {
			t.Fatalf("status %v sense %x: want CHECK CONDITION", res.Status, res.Sense)
		}
		return s
	}
	if res := tur(); res.Status != scsi.Good {
		t.Fatalf("present: %v %x", res.Status, res.Sense)
	}

	stick.gone.Store(true)
	var reopened []string
	u.reopen = func() (sgio.Device, string, error) {
		reopened = append(reopened, "try")
		return nil, "", fmt.Errorf("no USB Bulk-Only interface matches")
	}
	for i := range 2 {
		if s := senseOf(tur()); s.Key != scsi.SenseNotReady || s.ASC != ascGone {
			t.Errorf("gone, command %d: sense %v, want NOT READY %v", i, s, ascGone)
		}
	}
	if st, _ := u.State(); st != "gone" {
		t.Errorf("state %q", st)
	}
	inq := make([]byte, 36)
	var res sgio.Result
	if err := u.Execute(ctx, &sgio.Request{CDB: scsi.InquiryCDB(false, 0, 36), Dir: sgio.DirFromDevice, Data: inq}, &res); err != nil || res.Status != scsi.Good {
		t.Fatalf("INQUIRY while gone: %v %v", err, res.Status)
	}
	if inq[0]>>5 != 1 || string(inq[8:12]) != "QEMU" {
		t.Errorf("INQUIRY while gone: % x", inq[:16])
	}
	if len(reopened) == 0 {
		t.Error("no attempt to find the device again")
	}

	// Another stick that matches the selectors is not this LUN's.
	other := newUSBStick(t)
	u.reopen = func() (sgio.Device, string, error) { return other, "usb:46f4:0001:OTHER:0", nil }
	if s := senseOf(tur()); s.Key != scsi.SenseNotReady {
		t.Errorf("another device: sense %v", s)
	}

	back := newUSBStick(t)
	u.reopen = func() (sgio.Device, string, error) { return back, key, nil }
	if s := senseOf(tur()); s.Key != scsi.SenseUnitAttention || s.ASC != scsi.ASCPowerOnOccurred {
		t.Errorf("back: sense %v, want UNIT ATTENTION POWER ON OCCURRED", s)
	}
	if res := tur(); res.Status != scsi.Good {
		t.Errorf("back, second command: %v %x", res.Status, res.Sense)
	}
	if st, n := u.State(); st != "reattached" || n != 1 {
		t.Errorf("state %q, returns %d", st, n)
	}
}
