package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio/bot"
	"github.com/sanbridge/sanbridge/sgio/discover"
)

// rigCapture unpacks the sysfs tree captured in the QEMU rig into
// DIR/sys and returns DIR.
func rigCapture(t *testing.T) string {
	t.Helper()
	f, err := os.Open("../../sgio/discover/testdata/rig-capture/sysfs.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if strings.HasPrefix(name, "..") || filepath.IsAbs(name) || filepath.IsAbs(h.Linkname) {
			t.Fatalf("unsafe entry %q -> %q", h.Name, h.Linkname)
		}
		p := filepath.Join(dir, "sys", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func scan(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runScan(context.Background(), args, &out, &errb, zerolog.New(zerolog.NewTestWriter(t)))
	return out.String(), errb.String(), err
}

func TestScanTable(t *testing.T) {
	dir := rigCapture(t)
	out, stderr, err := scan(t, "--sysfs-root", filepath.Join(dir, "sys"))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	t.Log("\n" + out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 11 || !strings.HasPrefix(lines[0], "HCTL") {
		t.Fatalf("want a header and 10 devices:\n%s", out)
	}
	for _, want := range [][]string{
		{"0:2:0:0", "sg0", "sda", "disk", "SEAGATE", "ST4000NM0023", "0004", "256 MiB", "sas (megaraid_sas)", "naa.5000c500a1b2c3d4", "ok"},
		{"0:2:1:0", "sg1", "sdb", "disk", "HGST", "384 MiB", "naa.5000cca0b1c2d3e4"},
		{"0:2:2:0", "sg2", "sr0", "cdrom", "HL-DT-ST", "DVDRAM GH24NSD1", "path:pci-0000:00:03.0-scsi-0:2:2:0"},
		{"1:0:0:0", "sdc", "virtual (virtio_scsi)", "naa.6001405a1b2c3d4e"},
		{"2:0:0:0", "sdd", "usb (usb-storage)", "46f4:0001:USB0123456789", "path:pci-0000:00:05.0-usb-0:1:1.0-scsi-0:0:0:0"},
		{"4:0:0:0", "sg9", "nst0", "tape", "Linux", "scsi_debug", "pseudo (scsi_debug)", "naa.3333333000002710"},
	} {
		found := false
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, want[0]+" ") {
				found = true
				for _, w := range want[1:] {
					if !strings.Contains(l, w) {
						t.Errorf("line %q lacks %q", l, w)
					}
				}
			}
		}
		if !found {
			t.Errorf("no line for %s", want[0])
		}
	}
}

func TestScanJSONAndAll(t *testing.T) {
	dir := rigCapture(t)
	sys := filepath.Join(dir, "sys")
	// sda's block device (8:0) is mounted: not exported by default.
	if err := os.MkdirAll(filepath.Join(dir, "proc", "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	mi := "28 1 8:0 / /mnt rw,relatime shared:1 - ext4 /dev/sda rw\n"
	if err := os.WriteFile(filepath.Join(dir, "proc", "self", "mountinfo"), []byte(mi), 0o644); err != nil {
		t.Fatal(err)
	}
	decode := func(args ...string) []discover.Device {
		out, stderr, err := scan(t, append([]string{"--sysfs-root", sys, "--json"}, args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var devs []discover.Device
		if err := json.Unmarshal([]byte(out), &devs); err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, out)
		}
		return devs
	}
	devs := decode()
	if len(devs) != 9 {
		t.Fatalf("%d devices exported by default, want 9 (sda is mounted)", len(devs))
	}
	for _, d := range devs {
		if d.Block == "/dev/sda" {
			t.Fatal("mounted sda listed without --all")
		}
	}
	devs = decode("--all")
	if len(devs) != 10 || devs[0].Block != "/dev/sda" || devs[0].Excluded != "in use" ||
		len(devs[0].InUse) != 1 || devs[0].InUse[0].What != "/mnt (ext4)" || devs[0].Identity.Serial != "Z1Z3R2K80000C4407QBT" {
		t.Fatalf("--all: %+v", devs[0])
	}
	out, _, err := scan(t, "--sysfs-root", sys)
	if err != nil || !strings.Contains(out, "1 device(s) not exported by default") {
		t.Fatalf("table footer missing: %v\n%s", err, out)
	}
	out, _, err = scan(t, "--sysfs-root", sys, "--all")
	if err != nil || !strings.Contains(out, "sda mounted on /mnt (ext4)") {
		t.Fatalf("--all table: %v\n%s", err, out)
	}
}

func TestScanUsage(t *testing.T) {
	if _, _, err := scan(t, "--bogus"); !errors.Is(err, errUsage) {
		t.Errorf("unknown flag: %v", err)
	}
	if _, _, err := scan(t, "extra"); !errors.Is(err, errUsage) {
		t.Errorf("extra argument: %v", err)
	}
	if _, stderr, err := scan(t, "-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "--all") && !strings.Contains(stderr, "-all") {
		t.Errorf("help: %v\n%s", err, stderr)
	}
	if _, _, err := scan(t, "--sysfs-root", filepath.Join(t.TempDir(), "none")); err == nil || errors.Is(err, errUsage) {
		t.Errorf("missing sysfs: %v", err)
	}
	for n, want := range map[uint64]string{0: "-", 512: "512 B", 4 << 20: "4 MiB", 402653184: "384 MiB", 4000787030016: "3.64 TiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestScanUSB lists the rig's USB stick (the capture lacks
// bus/usb/devices; its links are added as the kernel has them).
func TestScanUSB(t *testing.T) {
	dir := rigCapture(t)
	sys := filepath.Join(dir, "sys")
	bus := filepath.Join(sys, "bus", "usb", "devices")
	if err := os.MkdirAll(bus, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"2-1", "2-1/2-1:1.0"} {
		if err := os.Symlink("../../../devices/pci0000:00/0000:00:05.0/usb2/"+n, filepath.Join(bus, filepath.Base(n))); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err := scan(t, "--sysfs-root", sys, "--usb")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	t.Log("\n" + out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	backends := "bot, sg"
	if !bot.BuiltIn {
		backends = "bot (not built in), sg"
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "INTERFACE") {
		t.Fatalf("want a header and one interface:\n%s", out)
	}
	for _, w := range []string{"2-1:1.0", "46f4:0001", "USB0123456789", "QEMU QEMU USB HARDDRIVE", "bulk-only", "usb-storage", "0:sg4", backends} {
		if !strings.Contains(lines[1], w) {
			t.Errorf("line %q lacks %q", lines[1], w)
		}
	}

	out, stderr, err = scan(t, "--sysfs-root", sys, "--usb", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var usb []discover.USBInterface
	if err := json.Unmarshal([]byte(out), &usb); err != nil || len(usb) != 1 || usb[0].BusPath != "2-1" || !usb[0].BulkOnly {
		t.Fatalf("--usb --json: %v\n%s", err, out)
	}

	// The SCSI table ends with the USB section.
	out, _, err = scan(t, "--sysfs-root", sys)
	if err != nil || !strings.Contains(out, "USB mass-storage interfaces") || !strings.Contains(out, "2-1:1.0") {
		t.Errorf("table without the USB section: %v\n%s", err, out)
	}
}

func TestUSBColumns(t *testing.T) {
	for _, tc := range []struct {
		u        discover.USBInterface
		protocol string
		driver   string
		luns     string
		backends string
	}{
		{discover.USBInterface{Subclass: 6, Protocol: 0x62, BulkOnly: true, Driver: "uas",
			LUNs: []discover.USBLUN{{LUN: 0, SG: "/dev/sg0"}}}, "uas (+bulk-only)", "uas", "0:sg0", "bot, sg"},
		{discover.USBInterface{Subclass: 6, Protocol: 0x50, BulkOnly: true}, "bulk-only", "-", "?", "bot"},
		{discover.USBInterface{Subclass: 6, Protocol: 0x50, BulkOnly: true, Driver: "usbfs"}, "bulk-only", "usbfs (a program)", "?", "bot"},
		{discover.USBInterface{Subclass: 4, Protocol: 0, Driver: "usb-storage",
			LUNs: []discover.USBLUN{{LUN: 0, SG: "/dev/sg3"}, {LUN: 1}}}, "cbi", "usb-storage", "0:sg3 1:no sg", "sg"},
		{discover.USBInterface{Subclass: 2, Protocol: 0x50}, "02/50", "-", "?", "-"},
	} {
		want := tc.backends
		if !bot.BuiltIn {
			want = strings.Replace(want, "bot", "bot (not built in)", 1)
		}
		u := tc.u
		if got := [...]string{usbProtocol(&u), usbDriver(&u), usbLUNs(&u), strings.Join(usbBackends(&u), ", ")}; got != [...]string{tc.protocol, tc.driver, tc.luns, want} {
			t.Errorf("%+v: %q", u, got)
		}
	}
}
