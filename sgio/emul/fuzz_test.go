package emul

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// FuzzCDB sends arbitrary CDBs with an arbitrary buffer to a fresh disk:
// the disk must never panic, and must always answer GOOD without sense or
// CHECK CONDITION with well-formed fixed-format sense, and a residual
// inside the buffer.
func FuzzCDB(f *testing.F) {
	seeds := [][]byte{
		scsi.InquiryCDB(true, 0xb0, 64),
		cdb10(0x28, 0, 0, 1),
		cdb16(0x8a, 0x08, 3, 2),
		cdbWS16(0x08, 0, 0),
		cdbWS10(0, 1, 4),
		cdbUnmap(false, 24),
		cdbGetLBAStatus(0, 24),
		cdbRSOC(true, 0, 0, 0, 4096),
		cdbRSOC(false, 2, 0x9e, 0x10, 64),
		cdbModeSense6(false, 0, 0x3f, 0xff, 255),
		{0x5a, 0x10, 0x3f, 0, 0, 0, 0, 1, 0, 0},
		cdb16(0x8f, 0x06, 0, 3),
		cdb10(0x2e, 0x02, 0, 1),
		{0x1b, 0, 0, 0, 0, 0},
		{0x03, 1, 0, 0, 255, 0},
		cdbRead6(0, 0),
		cdbCAW(0x08, 0, 1),
		{0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
	}
	for _, s := range seeds {
		f.Add(s, uint16(4096), byte(0))
	}
	f.Add(unmapList([2]uint64{0, 8}), uint16(24), byte(1))
	f.Fuzz(func(t *testing.T, cdb []byte, buflen uint16, fill byte) {
		d, err := New(Config{SizeBytes: 1 << 20, MaxTransferBytes: 64 << 10, Serial: "FUZZ"})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		buf := make([]byte, buflen)
		for i := range buf {
			buf[i] = fill + byte(i)
		}
		if len(cdb) > 0 && scsi.Opcode(cdb[0]) == scsi.OpUnmap && len(buf) >= 8 {
			// Give UNMAP a plausible parameter list now and then.
			copy(buf, unmapList([2]uint64{uint64(fill), uint64(buflen % 300)}))
		}
		var res sgio.Result
		err = d.Execute(context.Background(), &sgio.Request{CDB: cdb, Data: buf}, &res)
		if len(cdb) == 0 || len(cdb) > scsi.MaxCDBLen {
			if err == nil {
				t.Fatal("bad CDB accepted")
			}
			return
		}
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		checkWellFormed(t, &res, len(buf))
	})
}

func checkWellFormed(t *testing.T, res *sgio.Result, buflen int) {
	t.Helper()
	if res.Resid < 0 || res.Resid > buflen || res.Wanted < 0 {
		t.Fatalf("resid %d wanted %d for %d bytes", res.Resid, res.Wanted, buflen)
	}
	switch res.Status {
	case scsi.Good:
		if len(res.Sense) != 0 {
			t.Fatalf("GOOD with sense % x", res.Sense)
		}
	case scsi.CheckCondition:
		s, err := scsi.ParseSense(res.Sense)
		if err != nil || len(res.Sense) != scsi.FixedSenseLen || res.Sense[0]&0x7f != 0x70 {
			t.Fatalf("sense % x: %v", res.Sense, err)
		}
		switch s.Key {
		case scsi.SenseIllegalRequest, scsi.SenseDataProtect, scsi.SenseNotReady, scsi.SenseMiscompare:
		default:
			t.Fatalf("unexpected sense %v", s)
		}
		if s.ASC == 0 {
			t.Fatalf("CHECK CONDITION without ASC: %v", s)
		}
		if s.ASC == scsi.ASCInvalidFieldInCDB {
			if _, _, _, ok := s.FieldPointer(); !ok {
				t.Fatalf("INVALID FIELD IN CDB without a field pointer")
			}
		}
	default:
		t.Fatalf("status %v", res.Status)
	}
}

// benchDisk returns a disk with its first 64 MiB written.
func benchDisk(b *testing.B, file bool) *Disk {
	cfg := Config{SizeBytes: 1 << 30, BlockSize: 512}
	if file {
		cfg.File = filepath.Join(b.TempDir(), "bench.img")
	}
	d := newDisk(b, cfg)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	for lba := uint64(0); lba < 64<<20/512; lba += 2048 {
		good(b, exec(b, d, cdb16(0x8a, 0, lba, 2048), data))
	}
	return d
}

func benchExecute(b *testing.B, d *Disk, cdb []byte, size int) {
	buf := make([]byte, size)
	req := &sgio.Request{CDB: cdb, Data: buf, Dir: sgio.DirFromDevice}
	var res sgio.Result
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := d.Execute(ctx, req, &res); err != nil || res.Status != 0 {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

func BenchmarkRead10_4K(b *testing.B) {
	benchExecute(b, benchDisk(b, false), cdb10(0x28, 0, 64, 8), 4096)
}

func BenchmarkRead10_1M(b *testing.B) {
	benchExecute(b, benchDisk(b, false), cdb10(0x28, 0, 64, 2048), 1<<20)
}

func BenchmarkWrite10_4K(b *testing.B) {
	benchExecute(b, benchDisk(b, false), cdb10(0x2a, 0, 64, 8), 4096)
}

func BenchmarkWrite10_1M(b *testing.B) {
	benchExecute(b, benchDisk(b, false), cdb10(0x2a, 0, 64, 2048), 1<<20)
}

func BenchmarkFileRead10_4K(b *testing.B) {
	benchExecute(b, benchDisk(b, true), cdb10(0x28, 0, 64, 8), 4096)
}

func BenchmarkFileWrite10_4K(b *testing.B) {
	benchExecute(b, benchDisk(b, true), cdb10(0x2a, 0, 64, 8), 4096)
}

// BenchmarkDoRead10_4K measures Do, which allocates its Result.
func BenchmarkDoRead10_4K(b *testing.B) {
	d := benchDisk(b, false)
	req := &sgio.Request{CDB: cdb10(0x28, 0, 64, 8), Data: make([]byte, 4096)}
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Do(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead10_4K_Parallel reads distinct 4 KiB blocks from all Ps.
func BenchmarkRead10_4K_Parallel(b *testing.B) {
	d := benchDisk(b, false)
	b.SetBytes(4096)
	b.ReportAllocs()
	var next atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		req := sgio.Request{CDB: cdb10(0x28, 0, 0, 8), Data: make([]byte, 4096)}
		var res sgio.Result
		lba := next.Add(1) * 1 << 15 // each goroutine in its own 16 MiB
		for pb.Next() {
			lba = (lba + 8) % (64 << 20 / 512)
			binary.BigEndian.PutUint32(req.CDB[2:], lba)
			if err := d.Execute(context.Background(), &req, &res); err != nil || res.Status != 0 {
				b.Errorf("%v %+v", err, res)
				return
			}
		}
	})
}
