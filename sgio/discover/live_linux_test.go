//go:build linux

package discover

// Checks for the QEMU rig, run in the guest:
//
//	SANBRIDGE_RIG_HARDWARE=/path/hardware.json ./discover.test -test.run Live -test.v
//
// scans the running system (sysfs, and INQUIRY/VPD/READ CAPACITY through
// SG_IO) and compares every device with the configured truth. With
// SANBRIDGE_SCAN_JSON=/path/scan.json it checks that file, the output
// of "sanbridge scan --json --all", instead of scanning.

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/rs/zerolog"
)

func TestLiveHardware(t *testing.T) {
	hwPath := os.Getenv("SANBRIDGE_RIG_HARDWARE")
	if hwPath == "" {
		t.Skip("SANBRIDGE_RIG_HARDWARE not set: not in the rig")
	}
	hw := loadHardware(t, hwPath)
	var devs []Device
	if p := os.Getenv("SANBRIDGE_SCAN_JSON"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &devs); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	} else {
		var err error
		devs, err = Scan(context.Background(), Config{Open: OpenSG, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devs {
		t.Logf("%s %-6s %-8s %-16s %-10s %s size=%d/%d %v %q", d.HCTL, d.Type, d.Vendor, d.Product, d.Transport.Kind,
			d.StableName, d.SizeBytes, d.BlockSize, d.Identity.Source, d.Problems)
	}
	checkHardware(t, hw, devs, true)
}
