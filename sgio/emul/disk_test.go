package emul

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

var _ sgio.Device = (*Disk)(nil)

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no size", Config{}},
		{"negative size", Config{SizeBytes: -512}},
		{"block size", Config{SizeBytes: 1 << 20, BlockSize: 1024}},
		{"unaligned size", Config{SizeBytes: 1000}},
		{"unaligned 4k size", Config{SizeBytes: 1 << 20, BlockSize: 4096 + 512}},
		{"long vendor", Config{SizeBytes: 1 << 20, Vendor: "123456789"}},
		{"non-ascii product", Config{SizeBytes: 1 << 20, Product: "dïsk"}},
		{"long revision", Config{SizeBytes: 1 << 20, Revision: "12345"}},
		{"serial with space", Config{SizeBytes: 1 << 20, Serial: "a b"}},
		{"long serial", Config{SizeBytes: 1 << 20, Serial: string(bytes.Repeat([]byte{'x'}, 65))}},
		{"naa length", Config{SizeBytes: 1 << 20, NAA: []byte{0x60, 1, 2, 3, 4, 5, 6, 7}}},
		{"naa type", Config{SizeBytes: 1 << 20, NAA: []byte{0x10, 1, 2, 3, 4, 5, 6, 7}}},
		{"company id", Config{SizeBytes: 1 << 20, CompanyID: 1 << 24}},
		{"max transfer", Config{SizeBytes: 1 << 20, MaxTransferBytes: 1000}},
		{"queue depth", Config{SizeBytes: 1 << 20, QueueDepth: -1}},
		{"read-only missing file", Config{File: filepath.Join(dir, "missing"), ReadOnly: true}},
		{"empty file", Config{File: filepath.Join(dir, "empty")}},
	}
	for _, tc := range tests {
		d, err := New(tc.cfg)
		if err == nil {
			d.Close()
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	if _, err := New(Config{SizeBytes: 1000}); !errors.Is(err, ErrConfig) {
		t.Errorf("err = %v, want ErrConfig", err)
	}
	d := newDisk(t, Config{SizeBytes: 1 << 20, NAA: []byte{0x50, 1, 2, 3, 4, 5, 6, 7}})
	if d.Blocks() != 2048 || d.BlockSize() != 512 {
		t.Fatalf("geometry %d x %d", d.Blocks(), d.BlockSize())
	}
}

func TestFileBacked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	d, err := New(Config{SizeBytes: 4 << 20, File: path})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() != 4<<20 {
		t.Fatalf("file size %v %v", st, err)
	}
	bs := d.BlockSize()
	writeBlocks(t, d, 100, 300, 0x42)
	good(t, exec(t, d, cdb16(0x8a, 0x08, 2000, 1), bytes.Repeat([]byte{7}, bs))) // FUA
	good(t, exec(t, d, cdb10(0x35, 0, 0, 0), nil))
	if d.AllocatedBytes() != -1 {
		t.Fatal("AllocatedBytes of a file disk")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Do(context.Background(), &sgio.Request{CDB: cdb10(0x28, 0, 0, 1)}); !errors.Is(err, sgio.ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Reopened as-is: the data is there, the size is the file's.
	d = newDisk(t, Config{File: path})
	if d.Blocks() != 4<<20/512 {
		t.Fatalf("reopened with %d blocks", d.Blocks())
	}
	if got := readBlocks(t, d, 100, 300); !bytes.Equal(got, bytes.Repeat([]byte{0x42}, 300*bs)) {
		t.Fatal("data lost across reopen")
	}
	good(t, exec(t, d, cdb10(0x2f, 0, 0, 4096), nil)) // VERIFY reads the medium
	// UNMAP punches the aligned part and zeroes the rest.
	p := unmapList([2]uint64{101, 200})
	good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
	got := readBlocks(t, d, 100, 300)
	want := bytes.Repeat([]byte{0x42}, 300*bs)
	clear(want[bs : 201*bs])
	if !bytes.Equal(got, want) {
		t.Fatal("UNMAP of a file range")
	}
	// GET LBA STATUS sees the hole where the file system has one.
	buf := make([]byte, 8+16*8)
	res := exec(t, d, cdbGetLBAStatus(0, uint32(len(buf))), buf)
	good(t, res)
	found := false
	for p := 8; p+16 <= len(buf)-res.Resid; p += 16 {
		lba := binary.BigEndian.Uint64(buf[p:])
		n := uint64(binary.BigEndian.Uint32(buf[p+8:]))
		if lba <= 150 && 150 < lba+n {
			found = buf[p+12] == lbaDeallocated
		}
	}
	if _, _, err := fileExtent(d.st.(*fileStore).f, 0, 1); err == nil && !found {
		t.Fatalf("GET LBA STATUS does not show the punched hole: % x", buf[:len(buf)-res.Resid])
	}
	// Extending an existing file.
	d2 := newDisk(t, Config{File: filepath.Join(t.TempDir(), "x"), SizeBytes: 1 << 20})
	writeBlocks(t, d2, d2.Blocks()-1, 1, 1)
}

func TestFileReadOnlyAndExtend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.img")
	if err := os.WriteFile(path, bytes.Repeat([]byte{9}, 8192+100), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDisk(t, Config{File: path, ReadOnly: true})
	if d.Blocks() != 16 {
		t.Fatalf("%d blocks: a partial last block must not count", d.Blocks())
	}
	if got := readBlocks(t, d, 15, 1); !bytes.Equal(got, bytes.Repeat([]byte{9}, 512)) {
		t.Fatal("read")
	}
	checkSense(t, exec(t, d, cdb10(0x2a, 0, 0, 1), make([]byte, 512)), scsi.SenseDataProtect, scsi.ASCWriteProtected)
	if _, err := New(Config{File: path, ReadOnly: true, SizeBytes: 1 << 20}); err == nil {
		t.Fatal("read-only file extended")
	}
	w := newDisk(t, Config{File: path, SizeBytes: 1 << 20})
	if w.Blocks() != 2048 {
		t.Fatalf("extended to %d blocks", w.Blocks())
	}
}

func TestSparseMemory(t *testing.T) {
	d := newDisk(t, Config{SizeBytes: 1 << 40})
	if d.AllocatedBytes() != 0 {
		t.Fatal("allocated before any write")
	}
	writeBlocks(t, d, d.Blocks()-1, 1, 1)
	writeBlocks(t, d, 0, 1, 1)
	if got := d.AllocatedBytes(); got != 2*chunkSize {
		t.Fatalf("allocated %d after two one-block writes", got)
	}
	if !allZero(readBlocks(t, d, 1<<30, 16)) {
		t.Fatal("unwritten blocks are not zero")
	}
	p := unmapList([2]uint64{0, 1})
	good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
	if got := d.AllocatedBytes(); got != 2*chunkSize {
		t.Fatalf("a partial-chunk UNMAP freed memory: %d", got)
	}
	p = unmapList([2]uint64{0, chunkSize / 512}, [2]uint64{d.Blocks() - 128, 128})
	good(t, exec(t, d, cdbUnmap(false, uint16(len(p))), p))
	if got := d.AllocatedBytes(); got != 0 {
		t.Fatalf("allocated %d after unmapping both chunks", got)
	}
}

func TestExecuteErrors(t *testing.T) {
	d := memDisk(t)
	var res sgio.Result
	if err := d.Execute(context.Background(), &sgio.Request{}, &res); !errors.Is(err, sgio.ErrBadRequest) {
		t.Fatalf("empty CDB: %v", err)
	}
	if err := d.Execute(context.Background(), nil, &res); !errors.Is(err, sgio.ErrBadRequest) {
		t.Fatalf("nil request: %v", err)
	}
	if err := d.Execute(context.Background(), &sgio.Request{CDB: make([]byte, 261)}, &res); !errors.Is(err, sgio.ErrBadRequest) {
		t.Fatalf("oversized CDB: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Do(ctx, &sgio.Request{CDB: cdb10(0x28, 0, 0, 1)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// Execute resets a reused Result.
	res = sgio.Result{Status: 2, Sense: []byte{1}, Resid: 9, Wanted: 7}
	if err := d.Execute(context.Background(), &sgio.Request{CDB: []byte{0, 0, 0, 0, 0, 0}}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != 0 || res.Sense != nil || res.Resid != 0 || res.Wanted != 0 {
		t.Fatalf("result not reset: %+v", res)
	}
	// Bidirectional requests read into ReadData.
	rd := make([]byte, 36)
	if err := d.Execute(context.Background(), &sgio.Request{CDB: scsi.InquiryCDB(false, 0, 36), Dir: sgio.DirBidi, ReadData: rd}, &res); err != nil {
		t.Fatal(err)
	}
	if rd[2] != 6 {
		t.Fatal("ReadData not filled")
	}
}

// TestConcurrent runs readers, writers and unmappers over shared and
// private ranges; run with -race. Private ranges must keep their data.
func TestConcurrent(t *testing.T) {
	for _, file := range []bool{false, true} {
		t.Run(fmt.Sprintf("file=%v", file), func(t *testing.T) {
			cfg := Config{SizeBytes: 8 << 20}
			if file {
				cfg.File = filepath.Join(t.TempDir(), "c.img")
			}
			d := newDisk(t, cfg)
			bs := d.BlockSize()
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					priv := uint64(8192 + g*1024) // 1024 private blocks
					buf := make([]byte, 64*bs)
					var res sgio.Result
					for i := 0; i < 300; i++ {
						n := 1 + rng.IntN(64)
						shared := uint64(rng.IntN(4096))
						var cdb []byte
						switch rng.IntN(4) {
						case 0:
							cdb = cdb16(0x8a, 0, shared, uint32(n))
						case 1:
							cdb = cdb16(0x88, 0, shared, uint32(n))
						case 2:
							p := unmapList([2]uint64{shared, uint64(n)})
							copy(buf, p)
							cdb = cdbUnmap(false, uint16(len(p)))
						case 3:
							cdb = cdbWS16(0x08, shared, uint32(n))
							clear(buf[:bs])
						}
						data := buf[:n*bs]
						if cdb[0] == 0x93 {
							data = buf[:bs]
						}
						if err := d.Execute(context.Background(), &sgio.Request{CDB: cdb, Data: data}, &res); err != nil || res.Status != 0 {
							t.Errorf("shared %02x: %v %+v", cdb[0], err, res)
							return
						}
						// Private: write a pattern and read it back.
						lba := priv + uint64(rng.IntN(1024-n))
						pat := bytes.Repeat([]byte{byte(g), byte(i)}, n*bs/2)
						if err := d.Execute(context.Background(), &sgio.Request{CDB: cdb16(0x8a, 0, lba, uint32(n)), Data: pat}, &res); err != nil || res.Status != 0 {
							t.Errorf("private write: %v %+v", err, res)
							return
						}
						got := buf[:n*bs]
						if err := d.Execute(context.Background(), &sgio.Request{CDB: cdb16(0x88, 0, lba, uint32(n)), Data: got}, &res); err != nil || res.Status != 0 {
							t.Errorf("private read: %v %+v", err, res)
							return
						}
						if !bytes.Equal(got, pat) {
							t.Errorf("goroutine %d: private data changed", g)
							return
						}
					}
				}(g)
			}
			wg.Wait()
		})
	}
}

// TestCloseWaits checks that Close waits for commands in flight.
func TestCloseWaits(t *testing.T) {
	d, err := New(Config{SizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for {
				_, err := d.Do(context.Background(), &sgio.Request{CDB: cdb10(0x28, 0, 0, 1), Data: buf})
				if errors.Is(err, sgio.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
