package discover

import (
	"encoding/hex"
	"strings"
	"testing"
	"unicode"
)

// Every decoder of bytes supplied by a device (or the kernel) is fuzzed.
// The committed corpora under testdata/fuzz/ hold pages captured in the
// rig; the f.Add seeds repeat them and add edge cases.

func seed(f *testing.F, hexes ...string) {
	for _, h := range hexes {
		b, err := hex.DecodeString(strings.Join(strings.Fields(h), ""))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// printableASCII reports whether s holds only 20h-7Eh.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// noControl reports whether s is valid text without control characters.
func noControl(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func FuzzParseInquiry(f *testing.F) {
	seed(f, inqSeagate, inqCD, inqSdebug, "7f00050200", "00", "0000050207000000414243444546")
	f.Fuzz(func(t *testing.T, b []byte) {
		inq, err := ParseInquiry(b)
		if err != nil {
			if len(b) >= 5 {
				t.Fatalf("error on %d bytes: %v", len(b), err)
			}
			return
		}
		for _, s := range []string{inq.Vendor, inq.Product, inq.Revision} {
			if !printableASCII(s) || len(s) > 16 {
				t.Fatalf("unprintable or long field %q", s)
			}
		}
		if inq.Type > peripheralTypeMax || inq.Qualifier > 7 {
			t.Fatalf("out of range %+v", inq)
		}
	})
}

func FuzzParseUnitSerial(f *testing.F) {
	seed(f, pg80Seagate, pg80TapeSdbg, "00800000", "0080ffff41", "0080000a2020534e31323300 0000")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseUnitSerial(b)
		if !printableASCII(s) {
			t.Fatalf("unprintable serial %q", s)
		}
		if err == nil && len(s) > len(b) {
			t.Fatalf("serial longer than the page")
		}
	})
}

func FuzzParseSupportedPages(f *testing.F) {
	seed(f, pg0Sdebug, "050000020083", "00000000", "0000ff00")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _ := ParseSupportedPages(b)
		if len(b) >= 4 && len(p) > len(b)-4 {
			t.Fatalf("%d pages from %d bytes", len(p), len(b))
		}
	})
}

func FuzzParseDeviceIdentification(f *testing.F) {
	seed(f, pg83Seagate, pg83Virtio, pg83CD, pg83Sdebug,
		"0083002c 01020008 0011223344556677 01030010 6000c29000000000 0000000000000001 01010008 4142434445464748",
		"00830010 01030008 5000c500a1b2c3d4 0103000a 0102",
		"00830024 01030008 5000c500a1b2c3d4 03080014 69716e2e323030332d30312e6f72673a7800 0000",
		"00830008 63a80004 ff00c3a9")
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, _ := ParseDeviceIdentification(b)
		if len(ds) > len(b)/4 {
			t.Fatalf("%d designators from %d bytes", len(ds), len(b))
		}
		for _, d := range ds {
			if !noControl(d.Text) || d.Text != d.String() {
				t.Fatalf("bad text %q", d.Text)
			}
			if d.Association > 3 || d.Type > 0xf || d.CodeSet > 0xf {
				t.Fatalf("out of range %+v", d)
			}
		}
		if w := PreferredWWN(ds); w != "" {
			found := false
			for _, d := range ds {
				found = found || d.Text == w
			}
			if !found {
				t.Fatalf("WWN %q is none of the designators", w)
			}
		}
		for _, p := range []ProtocolID{ProtoSAS, ProtoFC, ProtoISCSI} {
			if !noControl(portAddress(ds, p)) {
				t.Fatal("unprintable port address")
			}
		}
	})
}

func FuzzParseReadCapacity(f *testing.F) {
	seed(f, "000000000001ffff 00000200 05 03 c001 0000000000000000000000000000000000",
		"0001ffff00000800", "ffffffffffffffff00001000", "ffffffff00000200", "0000000000000000000000000000")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte) (Capacity, error){ParseReadCapacity10, ParseReadCapacity16} {
			c, err := parse(b)
			if err != nil {
				continue
			}
			n, ok := c.Bytes()
			if !ok || c.BlockSize == 0 || n/uint64(c.BlockSize) != c.Blocks() {
				t.Fatalf("accepted inconsistent capacity %+v", c)
			}
		}
	})
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("28 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro\n30 28 8:1 / /boot\\040efi rw - vfat /dev/sda1 rw\n"))
	f.Add([]byte("Filename Type Size Used Priority\n/dev/sdc3 partition 1048572 0 -2\n/swap\\04 file 1 0 -3\n"))
	f.Add([]byte("1 2 3 4 5 6 - \n\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range ParseMountinfo(b) {
			if !strings.Contains(m.Dev, ":") {
				t.Fatalf("dev %q", m.Dev)
			}
		}
		_ = ParseSwaps(b)
		_ = unescapeOctal(string(b))
	})
}
