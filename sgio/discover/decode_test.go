package discover

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Pages captured in the QEMU rig (sysfs inquiry and vpd_pg* attributes).
const (
	inqSeagate   = "000005121f00001253454147415445205354343030304e4d303032332020202030303034"
	inqCD        = "058005121f000012484c2d44542d535444564452414d20474832344e534431204c473030"
	inqSdebug    = "000007025b00100a4c696e7578202020736373695f64656275672020202020203031393132303231"
	pg80Seagate  = "008000145a315a3352324b38303030304334343037514254"
	pg83Seagate  = "00830024020000145a315a3352324b38303030304334343037514254010300085000c500a1b2c3d4"
	pg83Virtio   = "0083001f0200000f565343534930303030303030303031010300086001405a1b2c3d4e"
	pg83CD       = "0583000f0200000b6472762d7361732d636430"
	pg0Sdebug    = "0000000c008083848586878889b0b1b2"
	pg83Sdebug   = "008300700201001c4c696e7578002020736373695f64656275670020202020203830303001030008333333300000" + "1f40" + "61940004000000016193000832222220" + "00001f3e" + "6195000400000400" + "61a30008322222200000" + "1f3d" + "63a800186e61612e33323232323232303030303031463344" + "00000000"
	pg80TapeSdbg = "018000053130303030"
)

func TestParseInquiry(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Inquiry
		err  error
	}{
		{"seagate", inqSeagate, Inquiry{Type: TypeDisk, Version: 5, ResponseFormat: 2, Vendor: "SEAGATE", Product: "ST4000NM0023", Revision: "0004"}, nil},
		{"cd removable", inqCD, Inquiry{Type: TypeCDROM, Removable: true, Version: 5, ResponseFormat: 2, Vendor: "HL-DT-ST", Product: "DVDRAM GH24NSD1", Revision: "LG00"}, nil},
		{"scsi_debug", inqSdebug, Inquiry{Type: TypeDisk, Version: 7, ResponseFormat: 2, Vendor: "Linux", Product: "scsi_debug", Revision: "0191"}, nil},
		{"no LU", "7f00050200", Inquiry{Qualifier: 3, Type: TypeUnknown, Version: 5, ResponseFormat: 2}, nil},
		// ADDITIONAL LENGTH cuts the strings even if more bytes follow.
		{"additional length", "0000050207" + "0000004142434445", Inquiry{Version: 5, ResponseFormat: 2, Vendor: "ABCD"}, nil},
		{"short product", "000005021f000000" + "4142434445464748" + "5859", Inquiry{Version: 5, ResponseFormat: 2, Vendor: "ABCDEFGH", Product: "XY"}, nil},
		{"control chars", "000005021f000000" + "41071b5b326a0000" + hex.EncodeToString([]byte("PRODUCT\tNAME\xff   ")) + "31323334", Inquiry{Version: 5, ResponseFormat: 2, Vendor: "A??[2j", Product: "PRODUCT?NAME?", Revision: "1234"}, nil},
		{"too short", "00000502", Inquiry{}, ErrShort},
	}
	for _, c := range cases {
		got, err := ParseInquiry(unhex(t, c.in))
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestParseUnitSerial(t *testing.T) {
	cases := []struct {
		name, in, want string
		err            error
	}{
		{"seagate", pg80Seagate, "Z1Z3R2K80000C4407QBT", nil},
		{"tape (qualifier byte)", pg80TapeSdbg, "10000", nil},
		{"padded", "0080000a2020534e31323300 0000", "SN123", nil},
		{"empty", "00800000", "", nil},
		{"truncated", "0080000a41424344", "ABCD", ErrTruncated},
		{"wrong page", "00830004 41424344", "", ErrPageCode},
		{"short", "0080", "", ErrShort},
	}
	for _, c := range cases {
		got, err := ParseUnitSerial(unhex(t, c.in))
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseSupportedPages(t *testing.T) {
	got, err := ParseSupportedPages(unhex(t, pg0Sdebug))
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "008083848586878889b0b1b2")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages % x, want % x", got, want)
	}
	if _, err := ParseSupportedPages(unhex(t, "00800001 00")); !errors.Is(err, ErrPageCode) {
		t.Fatalf("wrong page code: %v", err)
	}
}

func texts(ds []Designator) []string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Association.String()+"/"+d.Type.String()+"/"+d.ProtocolName+"="+d.Text)
	}
	return s
}

func TestParseDeviceIdentification(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
		wwn  string
		sas  string
		err  error
	}{
		{"qemu scsi-hd with wwn", pg83Seagate,
			[]string{"lu/vendor/=vendor:Z1Z3R2K80000C4407QBT", "lu/naa/=naa.5000c500a1b2c3d4"},
			"naa.5000c500a1b2c3d4", "", nil},
		// QEMU sends an 8-byte designator with NAA 6; the kernel takes it.
		{"qemu virtio 8-byte naa6", pg83Virtio,
			[]string{"lu/vendor/=vendor:VSCSI0000000001", "lu/naa/=naa.6001405a1b2c3d4e"},
			"naa.6001405a1b2c3d4e", "", nil},
		{"qemu scsi-cd", pg83CD, []string{"lu/vendor/=vendor:drv-sas-cd0"}, "", "", nil},
		{"scsi_debug", pg83Sdebug, []string{
			"lu/t10/=t10.Linux   scsi_debug      8000",
			"lu/naa/=naa.3333333000001f40",
			"target-port/relative-port/sas=port:1",
			"target-port/naa/sas=naa.3222222000001f3e",
			"target-port/port-group/sas=tpg:1024",
			"target-device/naa/sas=naa.3222222000001f3d",
			"target-device/scsi-name/sas=naa.3222222000001F3D",
		}, "naa.3333333000001f40", "0x3222222000001f3e", nil},
		{"naa6 beats eui and t10", "0083002c" +
			"01020008 0011223344556677" + // EUI-64 (8)
			"01030010 6000c29000000000 0000000000000001" + // NAA 6 (16)
			"01010008 4142434445464748", // T10 vendor only
			[]string{"lu/eui64/=eui.0011223344556677", "lu/naa/=naa.6000c290000000000000000000000001", "lu/t10/=t10.ABCDEFGH"},
			"naa.6000c290000000000000000000000001", "", nil},
		{"scsi name string wins", "00830024" +
			"01030008 5000c500a1b2c3d4" +
			"03080014 69716e2e323030332d30312e6f72673a7800 0000",
			[]string{"lu/naa/=naa.5000c500a1b2c3d4", "lu/scsi-name/=iqn.2003-01.org:x"},
			"iqn.2003-01.org:x", "", nil},
		{"truncated descriptor", "00830010 01030008 5000c500a1b2c3d4 0103000a 0102",
			[]string{"lu/naa/=naa.5000c500a1b2c3d4"}, "naa.5000c500a1b2c3d4", "", ErrTruncated},
		{"short header", "00830006 01030008 0000", nil, "", "", ErrTruncated},
		{"wrong page", "00800000", nil, "", "", ErrPageCode},
	}
	for _, c := range cases {
		ds, err := ParseDeviceIdentification(unhex(t, c.in))
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
		if got := texts(ds); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if got := PreferredWWN(ds); got != c.wwn {
			t.Errorf("%s: WWN %q, want %q", c.name, got, c.wwn)
		}
		if got := portAddress(ds, ProtoSAS); got != c.sas {
			t.Errorf("%s: SAS port %q, want %q", c.name, got, c.sas)
		}
	}
}

func TestDesignatorJSON(t *testing.T) {
	ds, err := ParseDeviceIdentification(unhex(t, pg83Sdebug))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ds[3])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"protocol":"sas","code_set":"binary","association":"target-port","type":"naa","value":"naa.3222222000001f3e"}`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
}

func TestParseReadCapacity(t *testing.T) {
	c, err := ParseReadCapacity16(unhex(t, "000000000001ffff 00000200 05 03 c001 0000000000000000000000000000000000"))
	if err != nil {
		t.Fatal(err)
	}
	want := Capacity{LastLBA: 0x1ffff, BlockSize: 512, Protection: 3, PhysicalExponent: 3, ThinProvisioned: true, LowestAlignedLBA: 1, ReadCapacity16Valid: true}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if n, ok := c.Bytes(); !ok || n != 0x20000*512 || c.Blocks() != 0x20000 {
		t.Fatalf("bytes %d %v", n, ok)
	}
	if _, err := ParseReadCapacity16(unhex(t, "ffffffffffffffff 00001000")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("overflow: %v", err)
	}
	if _, err := ParseReadCapacity16(unhex(t, "0000000000000001 00000000")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero block size: %v", err)
	}
	if _, err := ParseReadCapacity16(unhex(t, "00000000000000")); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	c, err = ParseReadCapacity10(unhex(t, "0001ffff00000800"))
	if err != nil || c.Blocks() != 0x20000 || c.BlockSize != 2048 || c.ReadCapacity16Valid {
		t.Fatalf("rc10 %+v %v", c, err)
	}
	if _, err := ParseReadCapacity10(unhex(t, "ffffffff00000200")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rc10 too large: %v", err)
	}
	if _, err := ParseReadCapacity10(unhex(t, "0001ffff0000")); !errors.Is(err, ErrShort) {
		t.Fatalf("rc10 short: %v", err)
	}
}

func TestParseMountinfoAndSwaps(t *testing.T) {
	mi := `22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
30 28 8:1 / /boot\040efi rw,relatime shared:2 master:3 - vfat /dev/sda1 rw
31 28 0:45 / /data rw,relatime shared:9 - btrfs /dev/sdb rw,space_cache
broken line
32 28 8:17 / /x rw - ext4
`
	got := ParseMountinfo([]byte(mi))
	want := []Mount{
		{Dev: "0:20", MountPoint: "/sys", FSType: "sysfs", Source: "sysfs"},
		{Dev: "8:2", MountPoint: "/", FSType: "ext4", Source: "/dev/sda2"},
		{Dev: "8:1", MountPoint: "/boot efi", FSType: "vfat", Source: "/dev/sda1"},
		{Dev: "0:45", MountPoint: "/data", FSType: "btrfs", Source: "/dev/sdb"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mounts\n got %+v\nwant %+v", got, want)
	}
	sw := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdc3                               partition\t1048572\t\t0\t\t-2\n/swap\\040file file 1 0 -3\n"
	if got := ParseSwaps([]byte(sw)); !reflect.DeepEqual(got, []string{"/dev/sdc3", "/swap file"}) {
		t.Fatalf("swaps %q", got)
	}
	names := map[string]string{"sda": "8:0", "sda1": "8:1", "sda2": "8:2"}
	uses := usesOf(names, want, []string{"/dev/sda3", "/dev/sda1x"})
	if len(uses) != 2 || uses[0].String() != "sda2 mounted on / (ext4)" || uses[1].String() != "sda1 mounted on /boot efi (vfat)" {
		t.Fatalf("uses %v", uses)
	}
	// btrfs: anonymous dev number, matched by source.
	uses = usesOf(map[string]string{"sdb": "8:16"}, want, []string{"/dev/sdb"})
	if len(uses) != 2 || uses[0].Kind != UseMount || uses[1].Kind != UseSwap {
		t.Fatalf("btrfs/swap uses %v", uses)
	}
}

func TestEnumNames(t *testing.T) {
	for _, ty := range []PeripheralType{TypeDisk, TypeTape, TypeCDROM, TypeChanger, TypeEnclosure, TypeUnknown, 0x15} {
		b, err := ty.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back PeripheralType
		if err := back.UnmarshalText(b); err != nil || back != ty {
			t.Errorf("%v: round trip %q -> %v %v", uint8(ty), b, back, err)
		}
	}
	for k := TransportUnknown; k <= TransportSRP; k++ {
		var back TransportKind
		b, _ := k.MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("transport %v: %v %v", k, back, err)
		}
	}
	if TransportKind(99).String() != "TransportKind(99)" || DesignatorType(0xf).String() != "designator-15" {
		t.Error("unknown enum names")
	}
}
