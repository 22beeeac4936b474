package discover

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// hardware is the rig's configured truth (deploy/rig/hardware.json): the
// devices QEMU and scsi_debug were told to present.
type hardware struct {
	Controllers []struct {
		ID        string `json:"id"`
		Transport string `json:"transport"`
		Driver    string `json:"driver"`
	} `json:"controllers"`
	Devices []struct {
		ID                string  `json:"id"`
		Controller        string  `json:"controller"`
		ScsiID            *int    `json:"scsi_id"`
		LUN               *uint64 `json:"lun"`
		Type              string  `json:"type"`
		PeripheralType    int     `json:"peripheral_type"`
		Vendor            string  `json:"vendor"`
		Product           string  `json:"product"`
		Revision          string  `json:"revision"`
		Serial            *string `json:"serial"`
		WWN               *string `json:"wwn"`
		SizeBytes         *uint64 `json:"size_bytes"`
		LogicalBlockSize  uint32  `json:"logical_block_size"`
		Removable         bool    `json:"removable"`
		USBSerial         string  `json:"usb_serial"`
		PhysicalBlockSize uint32  `json:"physical_block_size"`
	} `json:"devices"`
	ScsiDebug struct {
		Params struct {
			InqVendor  string `json:"inq_vendor"`
			InqProduct string `json:"inq_product"`
			InqRev     string `json:"inq_rev"`
			SectorSize uint32 `json:"sector_size"`
		} `json:"params"`
		Devices []struct {
			ID        string  `json:"id"`
			Host      int     `json:"host"`
			Target    int     `json:"target"`
			LUN       uint64  `json:"lun"`
			Type      string  `json:"type"`
			SizeBytes *uint64 `json:"size_bytes"`
		} `json:"devices"`
	} `json:"scsi_debug"`
}

func loadHardware(t testing.TB, path string) *hardware {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var hw hardware
	if err := json.Unmarshal(b, &hw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(hw.Devices) == 0 {
		t.Fatalf("%s lists no devices", path)
	}
	return &hw
}

// transportOf maps the rig's transport names to ours.
var transportOf = map[string]TransportKind{
	"sas": TransportSAS, "virtio-scsi": TransportVirtual, "usb": TransportUSB, "fc": TransportFC, "iscsi": TransportISCSI,
}

// checkHardware compares what discovery found with the configured
// truth. live says the devices were queried (READ CAPACITY, VPD through
// SG_IO); without it, facts only the device knows (a CD's medium size)
// are not checked. Every configured device must be found exactly once;
// other devices are reported unless they are iSCSI-backed (LUNs the
// guest's initiator logged in to).
func checkHardware(t *testing.T, hw *hardware, devs []Device, live bool) {
	t.Helper()
	used := make([]bool, len(devs))
	claim := func(id string, match func(d *Device) bool) *Device {
		var found []int
		for i := range devs {
			if !used[i] && match(&devs[i]) {
				found = append(found, i)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d matching devices, want 1", id, len(found))
			return nil
		}
		used[found[0]] = true
		return &devs[found[0]]
	}
	ctrl := map[string]TransportKind{}
	drivers := map[string]string{}
	for _, c := range hw.Controllers {
		ctrl[c.ID] = transportOf[c.Transport]
		drivers[c.ID] = c.Driver
	}
	errorf := func(id, format string, args ...any) {
		t.Errorf("%s: %s", id, fmt.Sprintf(format, args...))
	}
	for _, want := range hw.Devices {
		d := claim(want.ID, func(d *Device) bool {
			if d.Vendor != want.Vendor || d.Product != want.Product {
				return false
			}
			if !strings.Contains("/"+drivers[want.Controller]+"/", "/"+d.Transport.HostDriver+"/") {
				return false
			}
			if want.ScsiID != nil && d.Address.Target != *want.ScsiID {
				return false
			}
			return want.LUN == nil || d.Address.LUN == *want.LUN
		})
		if d == nil {
			continue
		}
		if d.Type.String() != want.Type || int(d.Type) != want.PeripheralType {
			errorf(want.ID, "type %v (%d), want %s (%d)", d.Type, d.Type, want.Type, want.PeripheralType)
		}
		if d.Revision != want.Revision {
			errorf(want.ID, "revision %q, want %q", d.Revision, want.Revision)
		}
		if d.Transport.Kind != ctrl[want.Controller] {
			errorf(want.ID, "transport %v, want %v", d.Transport.Kind, ctrl[want.Controller])
		}
		wantSerial := ""
		if want.Serial != nil {
			wantSerial = *want.Serial
		}
		if d.Identity.Serial != wantSerial {
			errorf(want.ID, "serial %q, want %q", d.Identity.Serial, wantSerial)
		}
		wantWWN := ""
		if want.WWN != nil {
			wantWWN = "naa." + strings.TrimPrefix(*want.WWN, "0x")
		}
		if d.Identity.WWN != wantWWN {
			errorf(want.ID, "WWN %q, want %q", d.Identity.WWN, wantWWN)
		}
		if wantWWN != "" && d.StableName != wantWWN {
			errorf(want.ID, "stable name %q, want the WWN", d.StableName)
		}
		if d.Removable != want.Removable {
			errorf(want.ID, "removable %v, want %v", d.Removable, want.Removable)
		}
		if want.USBSerial != "" && d.Transport.USBSerial != want.USBSerial {
			errorf(want.ID, "USB serial %q, want %q", d.Transport.USBSerial, want.USBSerial)
		}
		if want.SizeBytes != nil && (live || d.Type == TypeDisk) {
			if d.SizeBytes != *want.SizeBytes || d.BlockSize != want.LogicalBlockSize {
				errorf(want.ID, "%d bytes in blocks of %d, want %d in %d", d.SizeBytes, d.BlockSize, *want.SizeBytes, want.LogicalBlockSize)
			}
		}
		if d.SG == "" {
			errorf(want.ID, "no sg node")
		}
		if live && d.Identity.Source != "device" && (wantSerial != "" || wantWWN != "") {
			errorf(want.ID, "identity from %q, want read from the device", d.Identity.Source)
		}
		if !d.Exportable() {
			errorf(want.ID, "excluded: %s", d.Excluded)
		}
	}

	// scsi_debug hosts, in order of their host numbers.
	var hosts []int
	for i := range devs {
		if devs[i].Transport.HostDriver == "scsi_debug" && !containsInt(hosts, devs[i].Address.Host) {
			hosts = append(hosts, devs[i].Address.Host)
		}
	}
	sort.Ints(hosts)
	p := hw.ScsiDebug.Params
	for _, want := range hw.ScsiDebug.Devices {
		if want.Host >= len(hosts) {
			t.Errorf("%s: scsi_debug host #%d missing (found %d hosts)", want.ID, want.Host, len(hosts))
			continue
		}
		d := claim(want.ID, func(d *Device) bool {
			return d.Transport.HostDriver == "scsi_debug" && d.Address.Host == hosts[want.Host] &&
				d.Address.Target == want.Target && d.Address.LUN == want.LUN
		})
		if d == nil {
			continue
		}
		if d.Type.String() != want.Type {
			errorf(want.ID, "type %v, want %s", d.Type, want.Type)
		}
		if d.Vendor != p.InqVendor || d.Product != p.InqProduct || d.Revision != p.InqRev {
			errorf(want.ID, "INQUIRY %q %q %q, want %q %q %q", d.Vendor, d.Product, d.Revision, p.InqVendor, p.InqProduct, p.InqRev)
		}
		if d.Transport.Kind != TransportPseudo {
			errorf(want.ID, "transport %v, want pseudo", d.Transport.Kind)
		}
		if want.SizeBytes != nil && (d.SizeBytes != *want.SizeBytes || d.BlockSize != p.SectorSize) {
			errorf(want.ID, "%d bytes in blocks of %d, want %d in %d", d.SizeBytes, d.BlockSize, *want.SizeBytes, p.SectorSize)
		}
		if want.Type == "tape" && d.Tape == "" {
			errorf(want.ID, "no tape node")
		}
		if d.Identity.WWN == "" || d.StableName != d.Identity.WWN {
			errorf(want.ID, "WWN %q, stable name %q", d.Identity.WWN, d.StableName)
		}
	}
	for i := range devs {
		if !used[i] && devs[i].Transport.Kind != TransportISCSI {
			t.Errorf("unexpected device %s %s %q %q", devs[i].HCTL, devs[i].Type, devs[i].Vendor, devs[i].Product)
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
