package conf

import (
	"testing"
)

// TestUSBDevice: a device block with a usb block selects a USB
// mass-storage logical unit; IDs are normalized to four hex digits.
func TestUSBDevice(t *testing.T) {
	src := `
portal "lo" {
  listen = "127.0.0.1:3260"
}
target "iqn.2026-11.io.sanbridge:usb" {
  lun "0" {
    device {
      read_only = true
      usb {
        vid  = "0x46F4"
        pid  = "1"
        path = "2-1:1.0"
      }
    }
  }
  lun "1" {
    device {
      usb {
        serial = "4C530001230913117134"
        lun    = 1
      }
    }
  }
}
`
	cfg, diags := Parse([]byte(src), "usb.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	luns := cfg.Targets[0].LUNs
	if len(luns) != 2 {
		t.Fatalf("%d LUNs", len(luns))
	}
	u := luns[0].Device.USB
	if u == nil || u.VendorID != "46f4" || u.ProductID != "0001" || u.Path != "2-1:1.0" || u.LUN != 0 || u.Serial != "" || !luns[0].ReadOnly {
		t.Errorf("LUN 0: %+v read-only %v", u, luns[0].ReadOnly)
	}
	u = luns[1].Device.USB
	if u == nil || u.Serial != "4C530001230913117134" || u.LUN != 1 || u.VendorID != "" {
		t.Errorf("LUN 1: %+v", u)
	}
	if luns[0].Device.WWN != "" || luns[0].Device.Path != "" {
		t.Errorf("SCSI selectors set: %+v", luns[0].Device)
	}
}
