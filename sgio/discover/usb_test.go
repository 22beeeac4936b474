package discover

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestScanUSBHandbuilt(t *testing.T) {
	root := materialize(t, "testdata/handbuilt/usb.txtar")
	got, err := ScanUSB(Config{SysfsRoot: filepath.Join(root, "sys")})
	if err != nil {
		t.Fatal(err)
	}
	want := []USBInterface{
		{Name: "1-1:1.0", BusPath: "1-1", Bus: 1, DevNum: 3, Config: 1, Interface: 0, VendorID: "05e3", ProductID: "0751",
			Serial: "000000000819", Manufacturer: "Generic", Product: "USB Storage", Speed: "480",
			Subclass: 6, Protocol: 0x50, BulkOnly: true, Driver: "usb-storage", SCSIHost: "host3",
			LUNs: []USBLUN{
				{HCTL: "3:0:0:0", Type: TypeDisk, Vendor: "Generic-", Product: "SD/MMC", SG: "/dev/sg1", Block: "/dev/sdb"},
				{HCTL: "3:0:0:1", LUN: 1, Type: TypeDisk, Vendor: "Generic-", Product: "Micro SD/M2", SG: "/dev/sg2"},
			}},
		{Name: "1-2:1.1", BusPath: "1-2", Bus: 1, DevNum: 4, Config: 1, Interface: 1, VendorID: "1234", ProductID: "5678",
			Manufacturer: "Acme", Product: "Keyboard with storage", Speed: "12", Subclass: 6, Protocol: 0x50, BulkOnly: true},
		{Name: "1-3:1.0", BusPath: "1-3", Bus: 1, DevNum: 5, Config: 1, VendorID: "0644", ProductID: "0000",
			Manufacturer: "TEAC", Product: "USB FDD", Speed: "12", Subclass: 4, Protocol: 0, Driver: "usb-storage", SCSIHost: "host4",
			LUNs: []USBLUN{{HCTL: "4:0:0:0", Type: TypeDisk, Vendor: "TEAC", Product: "FD-05PUB", SG: "/dev/sg3", Block: "/dev/sdc"}}},
		{Name: "1-4.2:1.0", BusPath: "1-4.2", Bus: 1, DevNum: 7, Config: 1, VendorID: "0781", ProductID: "5567",
			Serial: "4C530001230913117134", Manufacturer: "SanDisk", Product: "Cruzer Blade", Speed: "480",
			Subclass: 6, Protocol: 0x50, BulkOnly: true, Driver: "usbfs"},
		{Name: "4-2:1.0", BusPath: "4-2", Bus: 4, DevNum: 2, Config: 1, AltSetting: 1, VendorID: "04e8", ProductID: "4001",
			Serial: "S5SXNS0R123456", Manufacturer: "Samsung", Product: "PSSD T7", Speed: "10000",
			Subclass: 6, Protocol: 0x62, BulkOnly: true, Driver: "uas", SCSIHost: "host7",
			LUNs: []USBLUN{{HCTL: "7:0:0:0", Type: TypeDisk, Vendor: "Samsung", Product: "PSSD T7", SG: "/dev/sg0", Block: "/dev/sde"}}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d interfaces, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("interface %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	kernel := map[string]bool{}
	for _, u := range got {
		kernel[u.Name] = u.KernelDriven()
	}
	if !kernel["1-1:1.0"] || !kernel["4-2:1.0"] || kernel["1-2:1.1"] || kernel["1-4.2:1.0"] {
		t.Errorf("kernel-driven: %v", kernel)
	}
	if a := got[0].Address(); a != "05e3:0751:000000000819" {
		t.Errorf("address %s", a)
	}
	if a := got[1].Address(); a != "1234:5678" {
		t.Errorf("address %s", a)
	}
	// JSON round trip (sanbridge scan --usb --json).
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back []USBInterface
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, got) {
		t.Errorf("JSON round trip: %v\n%s", err, b)
	}
}

// TestScanUSBRigCapture: the QEMU usb-storage stick of the rig. The
// capture holds the devices/ tree but not bus/usb/devices, whose links
// are added here as the kernel has them.
func TestScanUSBRigCapture(t *testing.T) {
	root := extractTarGz(t, "testdata/rig-capture/sysfs.tar.gz")
	bus := filepath.Join(root, "bus", "usb", "devices")
	if err := os.MkdirAll(bus, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"2-1", "2-1/2-1:1.0"} {
		if err := os.Symlink("../../../devices/pci0000:00/0000:00:05.0/usb2/"+n, filepath.Join(bus, filepath.Base(n))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ScanUSB(Config{SysfsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d interfaces: %+v", len(got), got)
	}
	hw := loadHardware(t, "testdata/rig-capture/hardware.json")
	var serial, vendor, product string
	for _, d := range hw.Devices {
		if d.USBSerial != "" {
			serial, vendor, product = d.USBSerial, d.Vendor, d.Product
		}
	}
	u := got[0]
	if u.Name != "2-1:1.0" || u.BusPath != "2-1" || u.Bus != 2 || u.DevNum != 2 || u.VendorID != "46f4" || u.ProductID != "0001" ||
		u.Serial != serial || !u.BulkOnly || u.Driver != "usb-storage" || u.SCSIHost != "host2" || len(u.Problems) != 0 {
		t.Errorf("rig stick: %+v", u)
	}
	if len(u.LUNs) != 1 || u.LUNs[0].HCTL != "2:0:0:0" || u.LUNs[0].SG != "/dev/sg4" || u.LUNs[0].Block != "/dev/sdd" ||
		u.LUNs[0].Vendor != vendor || u.LUNs[0].Product != product {
		t.Errorf("rig stick LUNs: %+v (want %s %s)", u.LUNs, vendor, product)
	}
}

func TestScanUSBNone(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bus"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := ScanUSB(Config{SysfsRoot: root}); err != nil || got != nil {
		t.Errorf("no USB: %v %v", got, err)
	}
	if _, err := ScanUSB(Config{SysfsRoot: filepath.Join(root, "nothing")}); err == nil {
		t.Error("no sysfs: no error")
	}
}

// rigStickDescriptors is the QEMU usb-storage stick's descriptors
// attribute in the rig capture: device, SuperSpeed configuration, one
// Bulk-Only interface with two bulk endpoints and their companions.
const rigStickDescriptors = "12010003000000 09f4460100000001020301" +
	"09022c00010106c000 090400000208065000 0705810200040006300f000000 0705020200040006300f000000"

func TestParseUSBDescriptors(t *testing.T) {
	alts, err := ParseUSBDescriptors(unhex(t, rigStickDescriptors))
	if err != nil {
		t.Fatal(err)
	}
	want := []USBAltSetting{{Config: 1, Interface: 0, Alt: 0, Class: 8, Subclass: 6, Protocol: 0x50, BulkIn: 1, BulkOut: 1}}
	if !reflect.DeepEqual(alts, want) || !alts[0].BulkOnly() {
		t.Errorf("got %+v", alts)
	}
	for _, bad := range []string{
		"12",                              // cut header
		"1201000300",                      // device descriptor longer than the data
		"0001",                            // zero length
		"09022c00010106c000 0904000002",   // interface descriptor cut short
		"09022c00010106c000 050400000208", // interface descriptor of 5 bytes
		"0902 2c00",                       // configuration descriptor of 4 bytes
		"09022c00010106c000 0305810200",   // endpoint descriptor of 3 bytes
		"09022c00010106c000 12010003000000 09f4460100000001020301", // device descriptor after the start
	} {
		if _, err := ParseUSBDescriptors(unhex(t, bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	// A Bulk-Only interface without its endpoints is not usable.
	alts, err = ParseUSBDescriptors(unhex(t, "09022000010106c000 090400000208065000"))
	if err != nil || len(alts) != 1 || alts[0].BulkOnly() {
		t.Errorf("endpoint-less interface: %+v %v", alts, err)
	}
}

// FuzzParseUSBDescriptors: the descriptor walker never panics and every
// setting it returns came from an interface descriptor in the input.
func FuzzParseUSBDescriptors(f *testing.F) {
	f.Add(unhex(f, rigStickDescriptors))
	f.Fuzz(func(t *testing.T, b []byte) {
		alts, _ := ParseUSBDescriptors(b)
		if len(alts) > len(b)/9 {
			t.Fatalf("%d settings from %d bytes", len(alts), len(b))
		}
	})
}
