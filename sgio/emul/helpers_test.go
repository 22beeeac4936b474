package emul

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// newDisk creates a disk for a test and closes it at the end.
func newDisk(t testing.TB, cfg Config) *Disk {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		cfg.Logger = zerolog.New(zerolog.NewTestWriter(tt))
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// memDisk is a 16 MiB memory disk with 512-byte blocks.
func memDisk(t testing.TB) *Disk {
	return newDisk(t, Config{SizeBytes: 16 << 20, Serial: "TESTSERIAL"})
}

// exec runs cdb with buf as the data buffer (data-in or data-out, as the
// CDB says) and fails the test on a Go error.
func exec(t testing.TB, d *Disk, cdb []byte, buf []byte) *sgio.Result {
	t.Helper()
	res, err := d.Do(context.Background(), &sgio.Request{CDB: cdb, Data: buf, Dir: sgio.DirFromDevice})
	if err != nil {
		t.Fatalf("Do(% x): %v", cdb, err)
	}
	if res.Resid < 0 || res.Resid > len(buf) {
		t.Fatalf("Do(% x): resid %d outside [0, %d]", cdb, res.Resid, len(buf))
	}
	return res
}

// good fails unless res is GOOD.
func good(t testing.TB, res *sgio.Result) {
	t.Helper()
	if res.Status != scsi.Good {
		s, _ := scsi.ParseSense(res.Sense)
		t.Fatalf("status %v, sense %v", res.Status, s)
	}
}

// checkSense fails unless res is CHECK CONDITION with key and asc.
func checkSense(t testing.TB, res *sgio.Result, key scsi.SenseKey, asc scsi.ASC) scsi.Sense {
	t.Helper()
	if res.Status != scsi.CheckCondition {
		t.Fatalf("status %v, want CHECK CONDITION %v/%v", res.Status, key, asc)
	}
	s, err := scsi.ParseSense(res.Sense)
	if err != nil {
		t.Fatalf("sense % x: %v", res.Sense, err)
	}
	if s.Key != key || s.ASC != asc {
		t.Fatalf("sense %v, want %v/%v", s, key, asc)
	}
	if res.Sense[0]&0x7f != 0x70 {
		t.Fatalf("sense response code 0x%02x, want fixed 0x70", res.Sense[0])
	}
	return s
}

// invalidField fails unless res is INVALID FIELD IN CDB pointing at off
// and bit.
func invalidField(t testing.TB, res *sgio.Result, off, bit int) {
	t.Helper()
	s := checkSense(t, res, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
	inCDB, o, b, ok := s.FieldPointer()
	if !ok || !inCDB || o != off || b != bit {
		t.Fatalf("field pointer cdb=%v byte %d bit %d (sksv %v), want byte %d bit %d", inCDB, o, b, ok, off, bit)
	}
}

func lbaOOB(t testing.TB, res *sgio.Result) {
	t.Helper()
	checkSense(t, res, scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
}

// CDB builders, mirroring libiscsi's scsi_cdb_* helpers.

func cdbRead6(lba uint32, n byte) []byte {
	return []byte{0x08, byte(lba>>16) & 0x1f, byte(lba >> 8), byte(lba), n, 0}
}

func cdbWrite6(lba uint32, n byte) []byte {
	c := cdbRead6(lba, n)
	c[0] = 0x0a
	return c
}

func cdb10(op byte, flags byte, lba uint32, n uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], n)
	return c
}

func cdb12(op byte, flags byte, lba uint32, n uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint32(c[6:], n)
	return c
}

func cdb16(op byte, flags byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], n)
	return c
}

func cdbGetLBAStatus(lba uint64, alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = 0x9e, 0x12
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], alloc)
	return c
}

func cdbRSOC(rctd bool, opts byte, op byte, sa uint16, alloc uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1], c[2], c[3] = 0xa3, 0x0c, opts, op
	if rctd {
		c[2] |= 0x80
	}
	binary.BigEndian.PutUint16(c[4:], sa)
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

func cdbModeSense6(dbd bool, pc, page, sub, alloc byte) []byte {
	c := []byte{0x1a, 0, pc<<6 | page, sub, alloc, 0}
	if dbd {
		c[1] = 0x08
	}
	return c
}

// unmapList builds an UNMAP parameter list as libiscsi does.
func unmapList(descs ...[2]uint64) []byte {
	b := make([]byte, 8+16*len(descs))
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)-2))
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-8))
	for i, d := range descs {
		binary.BigEndian.PutUint64(b[8+16*i:], d[0])
		binary.BigEndian.PutUint32(b[8+16*i+8:], uint32(d[1]))
	}
	return b
}

func cdbUnmap(anchor bool, pll uint16) []byte {
	c := cdb10(0x42, 0, 0, pll)
	if anchor {
		c[1] = 1
	}
	return c
}

// writeBlocks writes n blocks of val at lba with WRITE(16).
func writeBlocks(t testing.TB, d *Disk, lba uint64, n int, val byte) {
	t.Helper()
	good(t, exec(t, d, cdb16(0x8a, 0, lba, uint32(n)), bytes.Repeat([]byte{val}, n*d.BlockSize())))
}

// readBlocks reads n blocks at lba with READ(16).
func readBlocks(t testing.TB, d *Disk, lba uint64, n int) []byte {
	t.Helper()
	buf := make([]byte, n*d.BlockSize())
	res := exec(t, d, cdb16(0x88, 0, lba, uint32(n)), buf)
	good(t, res)
	if res.Resid != 0 {
		t.Fatalf("read resid %d", res.Resid)
	}
	return buf
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
