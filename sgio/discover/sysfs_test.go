package discover

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// scanFixture scans a fixture tree (sys/, proc/, dev/ under root) from
// sysfs only.
func scanFixture(t *testing.T, root string) []Device {
	t.Helper()
	devs, err := Scan(context.Background(), Config{
		SysfsRoot: filepath.Join(root, "sys"),
		ProcRoot:  filepath.Join(root, "proc"),
		DevRoot:   filepath.Join(root, "dev"),
		Logger:    zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return devs
}

func byHCTL(t *testing.T, devs []Device, hctl string) *Device {
	t.Helper()
	for i := range devs {
		if devs[i].HCTL == hctl {
			return &devs[i]
		}
	}
	t.Fatalf("no device %s", hctl)
	return nil
}

// TestRigCapture scans the sysfs tree captured in the QEMU rig and checks
// it against the hardware the rig configured.
func TestRigCapture(t *testing.T) {
	root := extractTarGz(t, "testdata/rig-capture/sysfs.tar.gz")
	devs, err := Scan(context.Background(), Config{SysfsRoot: root, ProcRoot: t.TempDir(), DevRoot: "/dev"})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 10 {
		t.Fatalf("%d devices, want 10", len(devs))
	}
	hw := loadHardware(t, "testdata/rig-capture/hardware.json")
	checkHardware(t, hw, devs, false)
	// What "sanbridge scan --json" prints decodes to the same facts.
	b, err := json.Marshal(devs)
	if err != nil {
		t.Fatal(err)
	}
	var back []Device
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	checkHardware(t, hw, back, false)

	// Facts of the capture beyond the truth file.
	sda := byHCTL(t, devs, "0:2:0:0")
	if sda.SG != "/dev/sg0" || sda.Block != "/dev/sda" || sda.UpperDriver != "sd" || sda.Identity.Source != "sysfs" ||
		sda.Transport.HostPath != "0000:00:03.0" || sda.Path != "pci-0000:00:03.0-scsi-0:2:0:0" {
		t.Errorf("sas-hd0: %+v", sda)
	}
	cd := byHCTL(t, devs, "0:2:2:0")
	if cd.Block != "/dev/sr0" || cd.SizeBytes != 0 || cd.StableName != "path:pci-0000:00:03.0-scsi-0:2:2:0" {
		t.Errorf("cd: block %q size %d (sr's sysfs size must not be trusted) stable %q", cd.Block, cd.SizeBytes, cd.StableName)
	}
	usb := byHCTL(t, devs, "2:0:0:0")
	tr := usb.Transport
	if tr.USBVendorID != "46f4" || tr.USBProductID != "0001" || tr.USBDriver != "usb-storage" || tr.USBPath != "2-1" ||
		tr.Address() != "46f4:0001:USB0123456789" || usb.Path != "pci-0000:00:05.0-usb-0:1:1.0-scsi-0:0:0:0" {
		t.Errorf("usb transport %+v path %q", tr, usb.Path)
	}
	tape := byHCTL(t, devs, "4:0:0:0")
	if tape.Tape != "/dev/nst0" || tape.Block != "" || tape.UpperDriver != "st" || tape.SizeBytes != 0 {
		t.Errorf("tape: %+v", tape)
	}
	sdbg := byHCTL(t, devs, "3:0:1:1")
	if sdbg.Identity.Serial != "9001" || sdbg.Identity.WWN != "naa.3333333000002329" || sdbg.Path != "adapter0-scsi-0:0:1:1" {
		t.Errorf("scsi_debug identity %+v path %q", sdbg.Identity, sdbg.Path)
	}
	for _, d := range devs {
		if len(d.InUse) != 0 || d.Excluded != "" {
			t.Errorf("%s: in use %v, excluded %q", d.HCTL, d.InUse, d.Excluded)
		}
	}
}

func TestHandbuiltFC(t *testing.T) {
	devs := scanFixture(t, materialize(t, "testdata/handbuilt/fc.txtar"))
	if len(devs) != 3 {
		t.Fatalf("%d devices", len(devs))
	}
	tape := byHCTL(t, devs, "5:0:0:0")
	want := Transport{Kind: TransportFC, HostDriver: "qla2xxx", HostPath: "0000:05:00.0",
		NodeName: "0x500104f000aa0001", PortName: "0x500104f000aa0002", PortID: "0x010200",
		HostNodeName: "0x20000024ff7a1b2c", HostPortName: "0x21000024ff7a1b2c"}
	if !reflect.DeepEqual(tape.Transport, want) {
		t.Errorf("tape transport\n got %+v\nwant %+v", tape.Transport, want)
	}
	if tape.Type != TypeTape || !strings.HasSuffix(tape.Tape, "/dev/nst0") {
		t.Errorf("tape node %q type %v", tape.Tape, tape.Type)
	}
	if tape.Identity.Serial != "1068012345" || tape.Identity.WWN != "t10.IBM     ULT3580-TD8" || tape.Path != "pci-0000:05:00.0-fc-0x500104f000aa0002-lun-0" {
		t.Errorf("tape identity %+v path %q", tape.Identity, tape.Path)
	}
	if got := portAddress(tape.Identity.Designators, ProtoFC); got != "0x500104f000aa0002" {
		t.Errorf("tape FC port designator %q", got)
	}
	ch := byHCTL(t, devs, "5:0:0:1")
	if ch.Type != TypeChanger || ch.UpperDriver != "ch" || ch.Block != "" || ch.Identity.WWN != "naa.5000e11123456789" {
		t.Errorf("changer %+v", ch)
	}
	vv := byHCTL(t, devs, "5:0:1:0")
	if vv.Transport.PortName != "0x20010002ac01e3f4" || vv.Identity.WWN != "naa.60002ac0000000000000001d0001e3f4" ||
		vv.SizeBytes != 2147483648*512 || vv.Blocks != 2147483648 || vv.BlockSize != 512 || !vv.Exportable() {
		t.Errorf("3PAR VV %+v", vv)
	}
}

func TestHandbuiltSAS(t *testing.T) {
	devs := scanFixture(t, materialize(t, "testdata/handbuilt/sas.txtar"))
	if len(devs) != 3 {
		t.Fatalf("%d devices", len(devs))
	}
	direct := byHCTL(t, devs, "0:0:0:0")
	if direct.Transport.Kind != TransportSAS || direct.Transport.SASAddress != "0x5000c500a1b2c3e5" ||
		direct.Path != "pci-0000:03:00.0-sas-0x5000c500a1b2c3e5-lun-0" {
		t.Errorf("direct %+v path %q", direct.Transport, direct.Path)
	}
	// No VPD page 83h and no wwid: the serial is the stable name.
	if direct.Identity.WWN != "" || direct.StableName != "serial:SEAGATE:ST8000NM0075:ZA1A2B3C0000C8011234" {
		t.Errorf("direct identity %+v stable %q", direct.Identity, direct.StableName)
	}
	exp := byHCTL(t, devs, "0:0:1:0")
	if exp.Transport.SASAddress != "0x5000cca25e123456" || exp.Identity.WWN != "naa.5000cca25e123457" ||
		exp.BlockSize != 4096 || exp.Blocks != 2929721344*512/4096 || exp.Identity.Serial != "8HGAB1CD" {
		t.Errorf("behind expander %+v", exp)
	}
	enc := byHCTL(t, devs, "0:0:12:0")
	if enc.Type != TypeEnclosure || enc.UpperDriver != "ses" || enc.Block != "" || enc.Transport.SASAddress != "0x500304801234567d" {
		t.Errorf("enclosure %+v", enc)
	}
}

func TestHandbuiltISCSI(t *testing.T) {
	devs := scanFixture(t, materialize(t, "testdata/handbuilt/iscsi.txtar"))
	if len(devs) != 1 {
		t.Fatalf("%d devices", len(devs))
	}
	d := &devs[0]
	tr := d.Transport
	if tr.Kind != TransportISCSI || tr.TargetName != "iqn.2003-01.org.linux-iscsi.storage.x8664:sn.4a1b2c3d4e5f" ||
		tr.Portal != "192.0.2.10:3260" || tr.TPGT != "1" || tr.Session != "session1" || tr.HostDriver != "iscsi_tcp" {
		t.Errorf("transport %+v", tr)
	}
	if d.Exportable() || d.Excluded != "iSCSI-backed" {
		t.Errorf("an iSCSI LUN must not be exportable by default: %q", d.Excluded)
	}
	if d.Path != "ip-192.0.2.10:3260-iscsi-iqn.2003-01.org.linux-iscsi.storage.x8664:sn.4a1b2c3d4e5f-lun-0" {
		t.Errorf("path %q", d.Path)
	}
	if d.Identity.WWN != "naa.60014054a1b2c3d4e5f60718293a4b5c" || d.Identity.Serial != "4a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9" {
		t.Errorf("identity %+v", d.Identity)
	}
	if got := portAddress(d.Identity.Designators, ProtoISCSI); got != "iqn.2003-01.org.linux-iscsi.storage.x8664:sn.4a1b2c3d4e5f,t,0x0001" {
		t.Errorf("iSCSI port designator %q", got)
	}
}

func TestHandbuiltInUse(t *testing.T) {
	root := materialize(t, "testdata/handbuilt/inuse.txtar")
	devs := scanFixture(t, root)
	if len(devs) != 3 {
		t.Fatalf("%d devices", len(devs))
	}
	uses := func(d *Device) []string {
		var s []string
		for _, u := range d.InUse {
			s = append(s, u.String())
		}
		return s
	}
	sda := byHCTL(t, devs, "0:0:0:0")
	want := []string{"sda1 mounted on /boot (ext4)", "sda3 is swap", "sda2 held by dm-0 (vg0-root)"}
	if got := uses(sda); !reflect.DeepEqual(got, want) {
		t.Errorf("sda uses %q, want %q", got, want)
	}
	if sda.Exportable() || sda.Excluded != "in use" {
		t.Errorf("sda excluded %q", sda.Excluded)
	}
	dev := filepath.Join(root, "dev", "disk")
	wantID := []string{filepath.Join(dev, "by-id", "ata-Samsung_SSD_860_EVO_500GB_S3Z1NB0K123456X"), filepath.Join(dev, "by-id", "wwn-0x5002538e40a1b2c3")}
	wantPath := []string{filepath.Join(dev, "by-path", "pci-0000:00:1f.2-ata-1"), filepath.Join(dev, "by-path", "pci-0000:00:1f.2-ata-1.0")}
	if !reflect.DeepEqual(sda.ByID, wantID) || !reflect.DeepEqual(sda.ByPath, wantPath) {
		t.Errorf("sda links %q %q", sda.ByID, sda.ByPath)
	}
	if sda.Transport.Kind != TransportATA || sda.Transport.ATAPort != "ata1" || sda.Transport.HostPath != "0000:00:1f.2" {
		t.Errorf("sda transport %+v", sda.Transport)
	}
	if n := sda.Names(); len(n) < 4 || n[0] != "naa.5002538e40a1b2c3" || n[1] != "serial:ATA:Samsung SSD 860:S3Z1NB0K123456X" {
		t.Errorf("sda names %q", n)
	}
	sdb := byHCTL(t, devs, "1:0:0:0")
	if got := uses(sdb); !reflect.DeepEqual(got, []string{"sdb held by md127 (raid1)"}) {
		t.Errorf("sdb uses %q", got)
	}
	sdc := byHCTL(t, devs, "2:0:0:0")
	if len(sdc.InUse) != 0 || !sdc.Exportable() || sdc.Identity.WWN != "" || sdc.StableName != "serial:ATA:ST2000DM008-2FR1:ZFL0ABCD" {
		t.Errorf("sdc %+v", sdc)
	}
}

func TestHandbuiltMisc(t *testing.T) {
	devs := scanFixture(t, materialize(t, "testdata/handbuilt/misc.txtar"))
	if len(devs) != 3 {
		t.Fatalf("%d devices", len(devs))
	}
	uas := byHCTL(t, devs, "7:0:0:0")
	tr := uas.Transport
	if tr.Kind != TransportUSB || tr.USBDriver != "uas" || tr.HostDriver != "uas" || tr.Address() != "04e8:4001:S5SXNS0R123456" ||
		tr.HostPath != "4-2:1.0" || uas.Path != "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0" {
		t.Errorf("uas %+v path %q", tr, uas.Path)
	}
	tape := byHCTL(t, devs, "8:0:3:0")
	if tape.Transport.Kind != TransportSPI || !strings.HasSuffix(tape.Tape, "/nst1") || tape.Path != "pci-0000:00:06.0-scsi-0:0:3:0" {
		t.Errorf("spi tape %+v tape %q path %q", tape.Transport, tape.Tape, tape.Path)
	}
	off := byHCTL(t, devs, "8:0:4:0")
	if off.State != "offline" {
		t.Errorf("state %q", off.State)
	}
}

// TestNoSCSI: a system without SCSI devices scans to nothing, without
// error; a missing sysfs is an error.
func TestNoSCSI(t *testing.T) {
	root := t.TempDir()
	if err := mkdirs(filepath.Join(root, "class", "block")); err != nil {
		t.Fatal(err)
	}
	devs, err := Scan(context.Background(), Config{SysfsRoot: root})
	if err != nil || len(devs) != 0 {
		t.Fatalf("empty sysfs: %v %v", devs, err)
	}
	if _, err := Scan(context.Background(), Config{SysfsRoot: filepath.Join(root, "missing")}); err == nil {
		t.Fatal("missing sysfs: no error")
	}
}
