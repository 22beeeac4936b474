package bridge

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio/discover"
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
