package emul

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func modeSense(t *testing.T, d *Disk, cdb []byte) []byte {
	t.Helper()
	buf := make([]byte, 255)
	res := exec(t, d, cdb, buf)
	good(t, res)
	return buf[:len(buf)-res.Resid]
}

func TestModeSense6(t *testing.T) {
	d := memDisk(t) // 32768 blocks of 512 bytes
	caching := []byte{0x08, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	control := []byte{0x0a, 0x0a, 0, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0}
	bd := []byte{0, 0, 0x80, 0, 0, 0, 0x02, 0}
	want := append(append(append([]byte{3 + 8 + 20 + 12, 0, 0x10, 8}, bd...), caching...), control...)
	if got := modeSense(t, d, cdbModeSense6(false, pcCurrent, 0x3f, 0, 255)); !bytes.Equal(got, want) {
		t.Fatalf("all pages\n got % x\nwant % x", got, want)
	}
	if got := modeSense(t, d, cdbModeSense6(false, pcDefault, 0x3f, 0xff, 255)); !bytes.Equal(got, want) {
		t.Fatalf("defaults, all subpages\n got % x", got)
	}
	want = append([]byte{3 + 12, 0, 0x10, 0}, control...)
	if got := modeSense(t, d, cdbModeSense6(true, pcCurrent, 0x0a, 0, 255)); !bytes.Equal(got, want) {
		t.Fatalf("control, DBD\n got % x\nwant % x", got, want)
	}
	// Changeable values: nothing is.
	got := modeSense(t, d, cdbModeSense6(true, pcChangeable, 0x3f, 0, 255))
	if len(got) != 4+20+12 || !allZero(got[6:24]) || !allZero(got[26:]) {
		t.Fatalf("changeable % x", got)
	}
	// libiscsi ModeSense6.Residuals: 4 bytes asked, 4 returned, Wanted
	// tells the transport how much there was.
	buf := make([]byte, 4)
	res := exec(t, d, cdbModeSense6(false, pcCurrent, 0x3f, 0, 4), buf)
	good(t, res)
	if res.Resid != 0 || res.Wanted != 4 {
		t.Fatalf("resid %d wanted %d", res.Resid, res.Wanted)
	}
	buf = make([]byte, 255)
	res = exec(t, d, cdbModeSense6(false, pcCurrent, 0x3f, 0, 255), buf)
	if res.Resid != 255-44 {
		t.Fatalf("resid %d", res.Resid)
	}
	// Errors.
	invalidField(t, exec(t, d, cdbModeSense6(false, pcCurrent, 0x19, 0, 255), buf), 2, 5)
	invalidField(t, exec(t, d, cdbModeSense6(false, pcCurrent, 0x0a, 1, 255), buf), 3, 7)
	invalidField(t, exec(t, d, cdbModeSense6(false, pcCurrent, 0x3f, 1, 255), buf), 3, 7)
	checkSense(t, exec(t, d, cdbModeSense6(false, pcSaved, 0x3f, 0, 255), buf), scsi.SenseIllegalRequest, scsi.ASCSavingParamsNotSupported)
}

func TestModeSense10(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 1 << 20, BlockSize: 4096, ReadOnly: false})
	cdb := func(flags, pcPage, sub byte, alloc uint16) []byte {
		c := make([]byte, 10)
		c[0], c[1], c[2], c[3] = 0x5a, flags, pcPage, sub
		binary.BigEndian.PutUint16(c[7:], alloc)
		return c
	}
	got := modeSense(t, d, cdb(0x10, 0x08, 0, 255)) // LLBAA
	want := []byte{0, 6 + 16 + 20, 0, 0x10, 0x01, 0, 0, 16,
		0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0,
		0x08, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("long LBA\n got % x\nwant % x", got, want)
	}
	got = modeSense(t, d, cdb(0, 0x0a, 0, 255))
	if !bytes.Equal(got[:16], []byte{0, 6 + 8 + 12, 0, 0x10, 0, 0, 0, 8, 0, 0, 1, 0, 0, 0, 0x10, 0}) {
		t.Fatalf("short LBA % x", got)
	}
}

func TestModeSenseWriteProtectAndCache(t *testing.T) {
	dir := t.TempDir()
	d := newDisk(t, Config{SizeBytes: 1 << 20, File: dir + "/d.img"})
	got := modeSense(t, d, cdbModeSense6(true, pcCurrent, 0x08, 0, 255))
	if got[2] != 0x10 || got[4+2] != 0x04 {
		t.Fatalf("file disk: device-specific % x, caching byte 2 % x (want WCE)", got[2], got[6])
	}
	ro := newDisk(t, Config{File: dir + "/d.img", ReadOnly: true})
	got = modeSense(t, ro, cdbModeSense6(true, pcCurrent, 0x08, 0, 255))
	if got[2] != 0x90 {
		t.Fatalf("read-only: device-specific % x, want WP|DPOFUA", got[2])
	}
}

// rsocAll returns REPORT SUPPORTED OPERATION CODES, all commands.
func rsocAllDescs(t *testing.T, d *Disk, rctd bool) [][]byte {
	t.Helper()
	buf := make([]byte, 65535)
	res := exec(t, d, cdbRSOC(rctd, 0, 0, 0, 65535), buf)
	good(t, res)
	b := buf[:len(buf)-res.Resid]
	if int(binary.BigEndian.Uint32(b))+4 != len(b) {
		t.Fatalf("command data length %d for %d bytes", binary.BigEndian.Uint32(b), len(b))
	}
	var descs [][]byte
	for p := 4; p < len(b); {
		l := 8
		if b[p+5]&0x02 != 0 {
			l += 12
		}
		descs = append(descs, b[p:p+l])
		p += l
	}
	return descs
}

func TestReportSupportedOpcodes(t *testing.T) {
	d := memDisk(t)
	descs := rsocAllDescs(t, d, false)
	if len(descs) != len(d.ordered) {
		t.Fatalf("%d descriptors for %d commands", len(descs), len(d.ordered))
	}
	seen := map[[2]int]bool{}
	for _, c := range descs {
		op, sa, servactv := c[0], binary.BigEndian.Uint16(c[2:]), c[5]&0x01 != 0
		if c[5]&0x02 != 0 {
			t.Fatalf("CTDP without RCTD: % x", c)
		}
		if !servactv && sa != 0 {
			t.Fatalf("service action without SERVACTV: % x", c)
		}
		seen[[2]int{int(op), int(sa)}] = true
		cdbLen := int(binary.BigEndian.Uint16(c[6:]))
		// One command: option 1 without service actions, option 2 with.
		buf := make([]byte, 256)
		one, bad := byte(1), byte(2)
		if servactv {
			one, bad = 2, 1
		}
		invalidField(t, exec(t, d, cdbRSOC(false, bad, op, sa, 256), buf), 2, 2)
		for _, opt := range []byte{one, 3} {
			res := exec(t, d, cdbRSOC(false, opt, op, sa, 256), buf)
			good(t, res)
			r := buf[:len(buf)-res.Resid]
			if r[1]&0x07 != 0x03 || int(binary.BigEndian.Uint16(r[2:])) != cdbLen || len(r) != 4+cdbLen {
				t.Fatalf("%02x/%x: one-command data % x", op, sa, r)
			}
			if r[4] != op || (servactv && r[5] != byte(sa)) {
				t.Fatalf("%02x/%x: usage data % x", op, sa, r[4:])
			}
		}
	}
	for _, want := range [][2]int{{0x28, 0}, {0x2a, 0}, {0x9e, 0x10}, {0x9e, 0x12}, {0xa3, 0x0c}, {0x42, 0}, {0x93, 0}} {
		if !seen[want] {
			t.Errorf("%02x/%x not reported", want[0], want[1])
		}
	}
	// RCTD: every descriptor has a 10-byte timeouts descriptor.
	for _, c := range rsocAllDescs(t, d, true) {
		if c[5]&0x02 == 0 || len(c) != 20 || binary.BigEndian.Uint16(c[8:]) != 0x0a {
			t.Fatalf("RCTD descriptor % x", c)
		}
	}
	buf := make([]byte, 64)
	res := exec(t, d, cdbRSOC(true, 1, 0x28, 0, 64), buf)
	good(t, res)
	if buf[1] != 0x83 || len(buf)-res.Resid != 4+10+12 || binary.BigEndian.Uint16(buf[14:]) != 0x0a {
		t.Fatalf("one command with RCTD % x", buf[:len(buf)-res.Resid])
	}
	// DPO/FUA in the usage data of READ(10) and WRITE(10), DPO for VERIFY
	// (libiscsi Read10.DpoFua and friends).
	for _, op := range []byte{0x28, 0x2a, 0xa8, 0xaa, 0x88, 0x8a} {
		res := exec(t, d, cdbRSOC(false, 1, op, 0, 64), buf)
		good(t, res)
		if buf[5]&0x18 != 0x18 {
			t.Fatalf("%02x usage byte 1 % x", op, buf[5])
		}
	}
	// Unsupported commands are reported as such.
	res = exec(t, d, cdbRSOC(false, 1, 0xc1, 0, 64), buf)
	good(t, res)
	if buf[1]&0x07 != 0x01 || len(buf)-res.Resid != 4 {
		t.Fatalf("unsupported opcode % x", buf[:4])
	}
	res = exec(t, d, cdbRSOC(false, 2, 0x9e, 0x13, 64), buf)
	good(t, res)
	if buf[1]&0x07 != 0x01 {
		t.Fatalf("unsupported service action % x", buf[:4])
	}
	invalidField(t, exec(t, d, cdbRSOC(false, 4, 0, 0, 64), buf), 2, 2)
	// Allocation length truncates.
	res = exec(t, d, cdbRSOC(false, 0, 0, 0, 10), buf)
	good(t, res)
	if len(buf)-res.Resid != 10 {
		t.Fatalf("truncated to %d", len(buf)-res.Resid)
	}
}

// TestUsageDataIsTheMask checks that the CDB usage data are truthful: a
// bit outside them is refused with a field pointer to exactly that bit,
// and the service action byte and opcode are what the table says.
func TestUsageDataIsTheMask(t *testing.T) {
	d := memDisk(t)
	for _, c := range d.ordered {
		for i := 1; i < len(c.usage); i++ {
			for bit := 0; bit < 8; bit++ {
				if c.mask[i]&(1<<bit) != 0 && i != len(c.usage)-1 {
					continue
				}
				cdb := bytes.Clone(c.usage)
				for j := 1; j < len(cdb); j++ {
					cdb[j] = 0
				}
				if c.hasSA {
					cdb[1] = byte(c.sa)
				}
				cdb[i] |= 1 << bit
				if c.hasSA && i == 1 && bit < 5 {
					continue // another service action
				}
				invalidField(t, exec(t, d, cdb, make([]byte, 4096)), i, bit)
			}
		}
	}
}

func TestDispatchErrors(t *testing.T) {
	d := memDisk(t)
	buf := make([]byte, 512)
	for _, op := range []byte{0x04, 0x15, 0x16, 0x37, 0x3b, 0x4d, 0x55, 0x5e, 0x83, 0x8b, 0xc0, 0xff} {
		cdb := make([]byte, 16)
		cdb[0] = op
		checkSense(t, exec(t, d, cdb, buf), scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
	}
	// Unsupported service actions point at the SERVICE ACTION field.
	invalidField(t, exec(t, d, []byte{0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, buf), 1, 4)
	invalidField(t, exec(t, d, []byte{0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, buf), 1, 4)
	// NACA and other CONTROL bits.
	c := cdb10(0x28, 0, 0, 1)
	c[9] = 0x04
	invalidField(t, exec(t, d, c, buf), 9, 2)
	c[9] = 0x80
	invalidField(t, exec(t, d, c, buf), 9, 7)
	// A CDB shorter than its opcode's.
	invalidField(t, exec(t, d, []byte{0x28, 0, 0, 0, 0, 0}, buf), 0, -1)
	invalidField(t, exec(t, d, []byte{0x9e}, buf), 0, -1)
	// A 16-byte CDB field carrying a 10-byte CDB: the padding is ignored.
	c = append(cdb10(0x28, 0, 0, 1), 0xde, 0xad, 0xbe, 0xef, 0, 0)
	good(t, exec(t, d, c, buf))
}

func TestStartStopUnit(t *testing.T) {
	d := memDisk(t)
	buf := make([]byte, 512)
	tur := []byte{0, 0, 0, 0, 0, 0}
	good(t, exec(t, d, tur, nil))
	good(t, exec(t, d, []byte{0x1b, 0, 0, 0, 0x00, 0}, nil)) // stop
	checkSense(t, exec(t, d, tur, nil), scsi.SenseNotReady, scsi.ASCNotReadyInitCommandRequired)
	checkSense(t, exec(t, d, cdb10(0x28, 0, 0, 1), buf), scsi.SenseNotReady, scsi.ASCNotReadyInitCommandRequired)
	good(t, exec(t, d, scsi.InquiryCDB(false, 0, 36), buf))
	good(t, exec(t, d, cdb10(0x25, 0, 0, 0), buf))
	res := exec(t, d, []byte{0x03, 0, 0, 0, 18, 0}, buf)
	good(t, res)
	if s, _ := scsi.ParseSense(buf[:18]); s.Key != scsi.SenseNotReady || s.ASC != scsi.ASCNotReadyInitCommandRequired {
		t.Fatalf("REQUEST SENSE while stopped: %v", s)
	}
	good(t, exec(t, d, []byte{0x1b, 1, 0, 0, 0x01, 0}, nil)) // start, IMMED
	good(t, exec(t, d, tur, nil))
	invalidField(t, exec(t, d, []byte{0x1b, 0, 0, 0, 0x02, 0}, nil), 4, 1) // LOEJ
	invalidField(t, exec(t, d, []byte{0x1b, 0, 0, 0, 0x11, 0}, nil), 4, 4) // power condition
	// PREVENT ALLOW MEDIUM REMOVAL: accepted, no effect.
	good(t, exec(t, d, []byte{0x1e, 0, 0, 0, 1, 0}, nil))
	good(t, exec(t, d, []byte{0x1e, 0, 0, 0, 0, 0}, nil))
	invalidField(t, exec(t, d, []byte{0x1e, 0, 0, 0, 2, 0}, nil), 4, 1)
}

func TestReadOnly(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 1 << 20, ReadOnly: true})
	bs := d.BlockSize()
	data := make([]byte, bs)
	for _, cdb := range [][]byte{
		cdbWrite6(0, 1), cdb10(0x2a, 0, 0, 1), cdb12(0xaa, 0, 0, 1), cdb16(0x8a, 0, 0, 1),
		cdb10(0x2e, 0x02, 0, 1), cdb12(0xae, 0x02, 0, 1), cdb16(0x8e, 0x02, 0, 1),
		cdbWS10(0, 0, 1), cdbWS16(0, 0, 1), cdbWS10(0x08, 0, 1),
	} {
		checkSense(t, exec(t, d, cdb, data), scsi.SenseDataProtect, scsi.ASCWriteProtected)
	}
	// WRITE SAME with UNMAP and no data (libiscsi ReadOnly).
	checkSense(t, exec(t, d, cdbWS16(0x08, 0, 1), nil), scsi.SenseDataProtect, scsi.ASCWriteProtected)
	p := unmapList([2]uint64{0, 1})
	checkSense(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p), scsi.SenseDataProtect, scsi.ASCWriteProtected)
	good(t, exec(t, d, cdb10(0x28, 0, 0, 1), data))
	good(t, exec(t, d, cdb10(0x35, 0, 0, 0), nil))
}
