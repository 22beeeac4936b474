package bridge

import (
	"strings"
	"testing"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

func TestResolveDevice(t *testing.T) {
	devs := []discover.Device{
		{HCTL: "0:2:0:0", SG: "/dev/sg0", Block: "/dev/sda", Identity: discover.Identity{WWN: "naa.5000c50015ea71a0", Serial: "Z1Z3R2K8"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:04.0-scsi-0:2:0:0"}},
		{HCTL: "0:2:1:0", SG: "/dev/sg1", Block: "/dev/sdb", Identity: discover.Identity{WWN: "naa.5000c50015ea71a1", Serial: "SAME"}},
		{HCTL: "1:0:0:0", SG: "/dev/sg2", Block: "/dev/sdc", Identity: discover.Identity{Serial: "SAME"}},
		{HCTL: "2:0:0:0", SG: "/dev/sg3", Block: "/dev/sdd", Identity: discover.Identity{Serial: "ROOT"}, Excluded: "in use"},
		{HCTL: "3:0:0:0", Block: "/dev/sde", Identity: discover.Identity{Serial: "NOSG"}},
	}
	cases := []struct {
		sel  conf.Device
		hctl string
		err  string
	}{
		{conf.Device{WWN: "NAA.5000C50015EA71A0"}, "0:2:0:0", ""},
		{conf.Device{Serial: "Z1Z3R2K8"}, "0:2:0:0", ""},
		{conf.Device{Path: "/dev/disk/by-path/pci-0000:00:04.0-scsi-0:2:0:0"}, "0:2:0:0", ""},
		{conf.Device{Path: "/dev/sdb"}, "0:2:1:0", ""},
		{conf.Device{Serial: "SAME"}, "", "2 devices match"},
		{conf.Device{Serial: "SAME", WWN: "naa.5000c50015ea71a1"}, "0:2:1:0", ""},
		{conf.Device{WWN: "naa.0000000000000000"}, "", "no local SCSI device matches"},
		{conf.Device{Serial: "ROOT"}, "", "in use"},
		{conf.Device{Serial: "ROOT", AllowInUse: true}, "2:0:0:0", ""},
		{conf.Device{Serial: "NOSG"}, "", "no sg node"},
	}
	for _, tc := range cases {
		d, err := resolveDevice(&tc.sel, devs)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: got %v, want error with %q", tc.sel, err, tc.err)
			}
		case err != nil:
			t.Errorf("%+v: %v", tc.sel, err)
		case d.HCTL != tc.hctl:
			t.Errorf("%+v: got %s, want %s", tc.sel, d.HCTL, tc.hctl)
		}
	}
}
