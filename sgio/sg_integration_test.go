//go:build linux

package sgio

// Tests and benchmarks against a real SCSI device, for the QEMU rig
// (sgio/testdata/rig/30-sgio.sh runs them there). They run only when
// SANBRIDGE_SG_DEVICE names an sg node, e.g.
//
//	SANBRIDGE_SG_DEVICE=/dev/sg2 ./sgio.test -test.run Integration -test.v
//	SANBRIDGE_SG_DEVICE=/dev/sg2 SANBRIDGE_SG_HOTUNPLUG=1 ./sgio.test -test.run HotUnplug
//	SANBRIDGE_SG_DEVICE=/dev/sg2 ./sgio.test -test.run '^$' -test.bench SGRead4K
//
// THE DEVICE IS WRITTEN TO: the read/write and burst tests save,
// overwrite and restore the first 4096 blocks, and with
// SANBRIDGE_SG_HOTUNPLUG=1 the device is deleted (and rescanned). Point
// it at a scratch disk (scsi_debug).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"github.com/sanbridge/sanbridge/sgio/scsi"
	"golang.org/x/sys/unix"
)

const envDevice = "SANBRIDGE_SG_DEVICE"

func integrationDevice(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv(envDevice)
	if p == "" {
		tb.Skipf("%s not set: no SCSI device to test against", envDevice)
	}
	return p
}

func openIntegration(tb testing.TB, opts ...Option) *SG {
	tb.Helper()
	path := integrationDevice(tb)
	log := zerolog.New(zerolog.NewTestWriter(tb))
	s, err := Open(path, append([]Option{WithLogger(log)}, opts...)...)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func cdbRW16(op byte, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = op
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

const (
	opRead16  = 0x88
	opWrite16 = 0x8a
)

// capacity returns the number of blocks and the block size.
func capacity(tb testing.TB, s *SG) (uint64, int) {
	tb.Helper()
	buf := make([]byte, 32)
	var res *Result
	var err error
	// A unit attention (power on, REPORTED LUNS DATA HAS CHANGED after
	// the rig's scsi_debug setup) is reported once: retry past it.
	for try := 0; try < 4; try++ {
		res, err = s.Do(context.Background(), &Request{CDB: scsi.ReadCapacity16CDB(uint32(len(buf))), Dir: DirFromDevice, Data: buf})
		if err != nil {
			tb.Fatalf("READ CAPACITY(16): %v", err)
		}
		if res.Status != scsi.CheckCondition || len(res.Sense) < 3 || res.Sense[2]&0x0f != 0x06 {
			break
		}
	}
	if res.Status != scsi.Good {
		tb.Fatalf("READ CAPACITY(16): status %v sense % x", res.Status, res.Sense)
	}
	return binary.BigEndian.Uint64(buf) + 1, int(binary.BigEndian.Uint32(buf[8:]))
}

func mustGood(tb testing.TB, what string, res *Result, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	if res.Status != scsi.Good || res.HostStatus != 0 || res.DriverStatus != 0 {
		tb.Fatalf("%s: status %v host %v driver %v sense % x", what, res.Status, res.HostStatus, res.DriverStatus, res.Sense)
	}
}

func TestIntegrationInquiry(t *testing.T) {
	s := openIntegration(t)
	info := s.Info()
	t.Logf("info %+v limits %+v", info, s.Limits())
	// Default depth 32: two descriptors of 16 commands, and the solo one.
	if !info.Async || info.Version < sgMinVersion || info.Descriptors != 3 || info.MappedReserve == 0 {
		t.Errorf("unexpected info: %+v", info)
	}
	buf := make([]byte, 96)
	res, err := s.Do(context.Background(), &Request{CDB: scsi.InquiryCDB(false, 0, uint16(len(buf))), Dir: DirFromDevice, Data: buf})
	mustGood(t, "INQUIRY", res, err)
	n := res.Transferred(len(buf))
	if n < 36 {
		t.Fatalf("INQUIRY returned %d bytes", n)
	}
	if int(buf[0]&0x1f) != info.PeripheralType {
		t.Errorf("peripheral type %d, kernel says %d", buf[0]&0x1f, info.PeripheralType)
	}
	// Devices pad with spaces, scsi_debug's inq_vendor/inq_product with NULs.
	field := func(b []byte) string { return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")) }
	vendor, product := field(buf[8:16]), field(buf[16:32])
	// The kernel's view of the same device, from sysfs.
	sysDev := filepath.Join("/sys/class/scsi_generic", filepath.Base(info.SGPath), "device")
	if b, err := os.ReadFile(filepath.Join(sysDev, "vendor")); err == nil && strings.TrimSpace(string(b)) != vendor {
		t.Errorf("vendor %q, sysfs says %q", vendor, strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile(filepath.Join(sysDev, "model")); err == nil && strings.TrimSpace(string(b)) != product {
		t.Errorf("product %q, sysfs says %q", product, strings.TrimSpace(string(b)))
	}
	t.Logf("INQUIRY: %q %q, %d bytes, %v", vendor, product, n, res.Duration)

	// Supported VPD pages: the page code echoes back.
	vpd := make([]byte, 255)
	res, err = s.Do(context.Background(), &Request{CDB: scsi.InquiryCDB(true, 0, uint16(len(vpd))), Dir: DirFromDevice, Data: vpd})
	mustGood(t, "INQUIRY VPD 0x00", res, err)
	if vpd[1] != 0 || int(vpd[3]) > res.Transferred(len(vpd))-4 {
		t.Errorf("VPD 0x00 header % x, %d bytes", vpd[:4], res.Transferred(len(vpd)))
	}
}

func TestIntegrationReadCapacity16(t *testing.T) {
	s := openIntegration(t)
	blocks, bs := capacity(t, s)
	if bs < 512 || bs&(bs-1) != 0 || blocks == 0 {
		t.Fatalf("capacity %d blocks of %d", blocks, bs)
	}
	// Cross-check with the block device's size when there is one.
	dir := filepath.Join("/sys/class/scsi_generic", filepath.Base(s.Info().SGPath), "device", "block")
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		b, err := os.ReadFile(filepath.Join(dir, ents[0].Name(), "size"))
		if err != nil {
			t.Fatal(err)
		}
		sectors, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if sectors*512 != blocks*uint64(bs) {
			t.Errorf("READ CAPACITY says %d bytes, /sys/block/%s/size %d", blocks*uint64(bs), ents[0].Name(), sectors*512)
		}
	}
	t.Logf("%d blocks of %d bytes", blocks, bs)
}

// pattern fills b with bytes derived from seed.
func pattern(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
}

func testReadWrite(t *testing.T, s *SG) {
	_, bs := capacity(t, s)
	ctx := context.Background()
	const lba, nblk = 8, 16
	n := nblk * bs
	saved := make([]byte, n)
	res, err := s.Do(ctx, &Request{CDB: cdbRW16(opRead16, lba, nblk), Dir: DirFromDevice, Data: saved})
	mustGood(t, "READ(16) save", res, err)
	t.Cleanup(func() {
		res, err := s.Do(ctx, &Request{CDB: cdbRW16(opWrite16, lba, nblk), Dir: DirToDevice, Data: saved})
		mustGood(t, "WRITE(16) restore", res, err)
	})
	for i, seed := range []uint64{1, 2, 3} {
		out := make([]byte, n)
		pattern(out, seed)
		res, err := s.Do(ctx, &Request{CDB: cdbRW16(opWrite16, lba, nblk), Dir: DirToDevice, Data: out})
		mustGood(t, "WRITE(16)", res, err)
		if res.Resid != 0 {
			t.Errorf("WRITE(16) resid %d", res.Resid)
		}
		in := make([]byte, n)
		// Alternate cancellable (bounced) and plain contexts.
		rctx := ctx
		if i%2 == 0 {
			c, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			rctx = c
		}
		res, err = s.Do(rctx, &Request{CDB: cdbRW16(opRead16, lba, nblk), Dir: DirFromDevice, Data: in})
		mustGood(t, "READ(16)", res, err)
		if res.Resid != 0 || !bytes.Equal(in, out) {
			t.Fatalf("read-back differs (resid %d)", res.Resid)
		}
	}
}

func TestIntegrationReadWrite16(t *testing.T) {
	testReadWrite(t, openIntegration(t))
}

func TestIntegrationReadWrite16Sync(t *testing.T) {
	s := openIntegration(t, WithSyncIO())
	if s.Info().Async {
		t.Fatal("WithSyncIO ignored")
	}
	testReadWrite(t, s)
}

// TestIntegrationOutOfRange reads past the last LBA: the device answers
// CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE (21/00), and the
// sense arrives intact as data, not as a Go error.
func TestIntegrationOutOfRange(t *testing.T) {
	s := openIntegration(t)
	blocks, bs := capacity(t, s)
	buf := make([]byte, bs)
	res, err := s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, blocks, 1), Dir: DirFromDevice, Data: buf})
	if err != nil {
		t.Fatalf("out-of-range READ(16) is a SCSI outcome, not an error: %v", err)
	}
	t.Logf("status %v host %v driver %v info %#x resid %d sense % x", res.Status, res.HostStatus, res.DriverStatus, res.Info, res.Resid, res.Sense)
	if res.Status != scsi.CheckCondition || res.DriverStatus != scsi.DriverSense || res.HostStatus != scsi.HostOK {
		t.Fatalf("status %v host %v driver %v, want CHECK CONDITION/DID_OK/DRIVER_SENSE", res.Status, res.HostStatus, res.DriverStatus)
	}
	if res.Info&sgInfoOKMask == 0 {
		t.Errorf("info %#x lacks SG_INFO_CHECK", res.Info)
	}
	var key, asc, ascq byte
	switch {
	case len(res.Sense) >= 14 && res.Sense[0]&0x7f == 0x70:
		key, asc, ascq = res.Sense[2]&0x0f, res.Sense[12], res.Sense[13]
	case len(res.Sense) >= 4 && res.Sense[0]&0x7f == 0x72:
		key, asc, ascq = res.Sense[1]&0x0f, res.Sense[2], res.Sense[3]
	default:
		t.Fatalf("unrecognised sense % x", res.Sense)
	}
	if key != 0x05 || asc != 0x21 || ascq != 0x00 {
		t.Fatalf("sense key/asc/ascq %x/%02x/%02x, want 5/21/00", key, asc, ascq)
	}
}

// TestIntegrationMaxTransfer checks that Limits are truthful: a READ of
// exactly MaxTransferBytes works, one block more is refused up front.
func TestIntegrationMaxTransfer(t *testing.T) {
	s := openIntegration(t)
	blocks, bs := capacity(t, s)
	max := s.Limits().MaxTransferBytes
	nblk := max / bs
	if uint64(nblk) > blocks {
		t.Skipf("device smaller than one maximal transfer")
	}
	buf := make([]byte, nblk*bs)
	res, err := s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, 0, uint32(nblk)), Dir: DirFromDevice, Data: buf})
	mustGood(t, fmt.Sprintf("READ(16) of %d bytes", len(buf)), res, err)
	big := make([]byte, (nblk+1)*bs)
	_, err = s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, 0, uint32(nblk+1)), Dir: DirFromDevice, Data: big})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("READ of %d bytes > limit %d: %v, want ErrTooLarge", len(big), max, err)
	}
}

// TestIntegrationBurst fires far more concurrent commands than one sg
// descriptor accepts (16): writes of distinct patterns, then reads that
// must return them, all at once, with no EDOM and no lost completion.
func TestIntegrationBurst(t *testing.T) {
	for _, depth := range []int{64, 256} {
		t.Run(fmt.Sprintf("depth%d", depth), func(t *testing.T) {
			s := openIntegration(t, WithQueueDepth(depth))
			blocks, bs := capacity(t, s)
			const nblk = 4096
			if blocks < nblk {
				t.Skipf("device has %d blocks", blocks)
			}
			ctx := context.Background()
			saved := make([]byte, nblk*bs)
			for off := 0; off < nblk; off += 256 {
				res, err := s.Do(ctx, &Request{CDB: cdbRW16(opRead16, uint64(off), 256), Dir: DirFromDevice, Data: saved[off*bs : (off+256)*bs]})
				mustGood(t, "READ(16) save", res, err)
			}
			t.Cleanup(func() {
				for off := 0; off < nblk; off += 256 {
					res, err := s.Do(ctx, &Request{CDB: cdbRW16(opWrite16, uint64(off), 256), Dir: DirToDevice, Data: saved[off*bs : (off+256)*bs]})
					mustGood(t, "WRITE(16) restore", res, err)
				}
			})
			var wg sync.WaitGroup
			var minFree atomic.Int64
			minFree.Store(int64(depth))
			var failures atomic.Int64
			run := func(goroutines int, op func(lba uint64) error) {
				lbas := make(chan uint64)
				for g := 0; g < goroutines; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for lba := range lbas {
							if f := int64(len(s.free)); f < minFree.Load() {
								minFree.Store(f)
							}
							if err := op(lba); err != nil {
								if failures.Add(1) < 10 {
									t.Error(err)
								}
							}
						}
					}()
				}
				for lba := uint64(0); lba < nblk; lba++ {
					lbas <- lba
				}
				close(lbas)
				wg.Wait()
			}
			goroutines := 4 * depth
			run(goroutines, func(lba uint64) error {
				b := make([]byte, bs)
				pattern(b, lba+uint64(depth))
				res, err := s.Do(ctx, &Request{CDB: cdbRW16(opWrite16, lba, 1), Dir: DirToDevice, Data: b})
				if err != nil {
					return fmt.Errorf("write lba %d: %w", lba, err)
				}
				if res.Status != scsi.Good {
					return fmt.Errorf("write lba %d: status %v sense % x", lba, res.Status, res.Sense)
				}
				return nil
			})
			run(goroutines, func(lba uint64) error {
				b, want := make([]byte, bs), make([]byte, bs)
				pattern(want, lba+uint64(depth))
				cctx, cancel := context.WithCancel(ctx) // bounced reads
				defer cancel()
				res, err := s.Do(cctx, &Request{CDB: cdbRW16(opRead16, lba, 1), Dir: DirFromDevice, Data: b})
				if err != nil {
					return fmt.Errorf("read lba %d: %w", lba, err)
				}
				if res.Status != scsi.Good || !bytes.Equal(b, want) {
					return fmt.Errorf("read lba %d: status %v, data matches %v", lba, res.Status, bytes.Equal(b, want))
				}
				return nil
			})
			if n := failures.Load(); n > 0 {
				t.Fatalf("%d of %d commands failed", n, 2*nblk)
			}
			t.Logf("%d commands from %d goroutines, at most %d in flight (depth %d, %d descriptors)",
				2*nblk, goroutines, int64(depth)-minFree.Load(), depth, s.Info().Descriptors)
		})
	}
}

// TestIntegrationCancel cancels reads while they are in flight. A
// cancelled Do must return at once, and its buffer must never be
// written afterwards: the buffers of cancelled reads are filled with a
// marker after Do returns, and checked after Close, when the kernel is
// certainly done.
func TestIntegrationCancel(t *testing.T) {
	path := integrationDevice(t)
	s, err := Open(path, WithQueueDepth(64), WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)))
	if err != nil {
		t.Fatal(err)
	}
	_, bs := capacity(t, s)
	var mu sync.Mutex
	var abandoned [][]byte
	var completed, cancelled atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 128; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				buf := make([]byte, 8*bs)
				ctx, cancel := context.WithCancel(context.Background())
				if i%3 == 0 {
					go cancel()
				}
				res, err := s.Do(ctx, &Request{CDB: cdbRW16(opRead16, uint64(g*8), 8), Dir: DirFromDevice, Data: buf})
				cancel()
				switch {
				case err == nil && res.Status == scsi.Good:
					completed.Add(1)
				case errors.Is(err, context.Canceled):
					cancelled.Add(1)
					for j := range buf {
						buf[j] = 0xa5
					}
					mu.Lock()
					abandoned = append(abandoned, buf)
					mu.Unlock()
				default:
					t.Errorf("read: %v %+v", err, res)
				}
			}
		}(g)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, buf := range abandoned {
		for j, c := range buf {
			if c != 0xa5 {
				t.Fatalf("buffer of a cancelled read written after Do returned (byte %d = %#x)", j, c)
			}
		}
	}
	if completed.Load() == 0 {
		t.Fatal("no read completed")
	}
	t.Logf("%d completed, %d cancelled", completed.Load(), cancelled.Load())
}

// TestIntegrationPolled covers the polled path of lone commands: on a
// fast device (scsi_debug, delay=0) they complete within the window and
// the read-back is right; then, with scsi_debug slowed down to a few
// milliseconds per command, they miss it, the back-off starts, results
// stay right, and a context cancelled during the window still returns
// without the kernel writing the caller's buffer afterwards.
func TestIntegrationPolled(t *testing.T) {
	s := openIntegration(t, WithQueueDepth(1))
	info := s.Info()
	if info.HostCanQueue < MinPollCanQueue {
		if info.Polled {
			t.Fatalf("polled on a host with can_queue %d", info.HostCanQueue)
		}
		t.Skipf("host can_queue %d: the polled path is off", info.HostCanQueue)
	}
	if !info.Polled {
		t.Fatalf("not polled (host can_queue %d)", info.HostCanQueue)
	}
	testReadWrite(t, s)
	if n := s.pollMiss.Load(); n != 0 {
		t.Logf("%d misses on the fast device (the host is slow)", n)
	}

	_, bs := capacity(t, s)
	knob := "/sys/bus/pseudo/drivers/scsi_debug/delay"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Skipf("no scsi_debug delay knob: %v", err)
	}
	if err := os.WriteFile(knob, []byte("3"), 0); err != nil { // jiffies
		t.Skipf("cannot slow scsi_debug down: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(knob, bytes.TrimSpace(old), 0); err != nil {
			t.Errorf("restoring %s: %v", knob, err)
		}
	})
	s.pollMiss.Store(0)
	res, err := s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, 0, 1), Dir: DirFromDevice, Data: make([]byte, bs)})
	mustGood(t, "READ(16) on the slow device", res, err)
	if s.pollMiss.Load() != 1 || s.pollSkip.Load() != 16 {
		t.Fatalf("a command on the slow device: misses %d, skip %d; want 1 and 16", s.pollMiss.Load(), s.pollSkip.Load())
	}
	testReadWrite(t, s)
	if s.pollMiss.Load() == 0 {
		t.Fatal("no miss recorded on the slow device")
	}
	// Back-off: the next lone commands skip polling.
	before, skip := s.pollMiss.Load(), s.pollSkip.Load()
	if skip < 4 {
		t.Fatalf("back-off over too soon: %d commands left to skip", skip)
	}
	for i := 0; i < 4; i++ {
		buf := make([]byte, bs)
		res, err := s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, 0, 1), Dir: DirFromDevice, Data: buf})
		mustGood(t, "READ(16)", res, err)
	}
	if s.pollMiss.Load() != before || s.pollSkip.Load() != skip-4 {
		t.Fatalf("back-off not honoured: misses %d -> %d, skip %d -> %d", before, s.pollMiss.Load(), skip, s.pollSkip.Load())
	}
	// Cancel while polling: force a probe, cancel well inside the
	// device's time.
	s.pollSkip.Store(0)
	buf := make([]byte, 8*bs)
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(time.Millisecond, cancel)
	defer timer.Stop()
	_, err = s.Do(ctx, &Request{CDB: cdbRW16(opRead16, 0, 8), Dir: DirFromDevice, Data: buf})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with a context cancelled during the command: %v, want context.Canceled", err)
	}
	for i := range buf {
		buf[i] = 0x5a
	}
	// The command completes a few milliseconds later: wait until the
	// reaper has collected it, so the kernel is done with it.
	for deadline := time.Now().Add(10 * time.Second); s.pending.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled command was never collected")
		}
	}
	res, err = s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, 0, 1), Dir: DirFromDevice, Data: make([]byte, bs)})
	mustGood(t, "READ(16) after the cancelled one", res, err)
	for i, c := range buf {
		if c != 0x5a {
			t.Fatalf("buffer of the cancelled read written after Do returned (byte %d = %#x)", i, c)
		}
	}
}

// TestIntegrationSolo checks the solo descriptor: lone data-in commands
// run there with the data left in the mapped reserved buffer, the caller
// gets the device's bytes and only those (a short transfer must not hand
// over an earlier command's data from the reserved buffer), and reads
// larger than the buffer, or with the solo descriptor turned off, take
// the ordinary path with the same data.
func TestIntegrationSolo(t *testing.T) {
	off := openIntegration(t, WithSolo(false))
	if off.Info().MappedReserve != 0 || off.solo != nil {
		t.Fatalf("WithSolo(false): mapped %d", off.Info().MappedReserve)
	}
	s := openIntegration(t, WithQueueDepth(4))
	info := s.Info()
	if info.MappedReserve < 4096 || info.Descriptors != 2 {
		t.Fatalf("solo descriptor: mapped %d bytes, %d descriptors; want at least 4096 and 2", info.MappedReserve, info.Descriptors)
	}
	if info.MappedReserve > soloReserve || info.MappedReserve > s.Limits().MaxTransferBytes {
		t.Fatalf("mapped %d bytes, more than asked for (limit %d)", info.MappedReserve, s.Limits().MaxTransferBytes)
	}
	_, bs := capacity(t, s)
	ctx := context.Background()
	big := (info.MappedReserve/bs + 8) * bs // more than the reserved buffer holds
	nblk := uint32(big / bs)
	const lba = 64
	saved := make([]byte, big)
	res, err := s.Do(ctx, &Request{CDB: cdbRW16(opRead16, lba, nblk), Dir: DirFromDevice, Data: saved})
	mustGood(t, "READ(16) save", res, err)
	t.Cleanup(func() {
		res, err := s.Do(ctx, &Request{CDB: cdbRW16(opWrite16, lba, nblk), Dir: DirToDevice, Data: saved})
		mustGood(t, "WRITE(16) restore", res, err)
	})
	want := make([]byte, big)
	pattern(want, 42)
	res, err = s.Do(ctx, &Request{CDB: cdbRW16(opWrite16, lba, nblk), Dir: DirToDevice, Data: want})
	mustGood(t, "WRITE(16)", res, err)

	for _, n := range []int{1, 8, info.MappedReserve / bs} {
		for _, c := range []context.Context{ctx, t.Context()} {
			got := make([]byte, n*bs)
			res, err := s.Do(c, &Request{CDB: cdbRW16(opRead16, lba, uint32(n)), Dir: DirFromDevice, Data: got})
			mustGood(t, fmt.Sprintf("READ(16) of %d blocks", n), res, err)
			if !bytes.Equal(got, want[:n*bs]) {
				t.Fatalf("READ(16) of %d blocks on the solo descriptor: wrong data", n)
			}
			if !bytes.Equal(s.solo.mapped[:n*bs], want[:n*bs]) {
				t.Fatalf("READ(16) of %d blocks did not run on the solo descriptor", n)
			}
		}
	}
	for _, d := range []*SG{s, off} {
		got := make([]byte, big)
		res, err = d.Do(t.Context(), &Request{CDB: cdbRW16(opRead16, lba, nblk), Dir: DirFromDevice, Data: got})
		mustGood(t, "READ(16) larger than the reserved buffer", res, err)
		if !bytes.Equal(got, want) {
			t.Fatalf("READ(16) of %d bytes (solo %v): wrong data", big, d.solo != nil)
		}
	}

	// Lent data: ExecuteLent leaves a lone read's data in the mapped
	// buffer; while it is lent, lone reads take the ordinary path.
	req := &Request{CDB: cdbRW16(opRead16, lba, 8), Dir: DirFromDevice, Data: make([]byte, 8*bs)}
	var lres Result
	data, release, err := s.ExecuteLent(t.Context(), req, &lres)
	mustGood(t, "lent READ(16)", &lres, err)
	if release == nil || len(data) != 8*bs || &data[0] != &s.solo.mapped[0] || !bytes.Equal(data, want[:8*bs]) {
		t.Fatalf("lent READ(16): release %v, %d bytes, wrong data or not the mapped buffer", release != nil, len(data))
	}
	got := make([]byte, 8*bs)
	res, err = s.Do(ctx, &Request{CDB: cdbRW16(opRead16, lba+8, 8), Dir: DirFromDevice, Data: got})
	mustGood(t, "READ(16) while the solo buffer is lent", res, err)
	if !bytes.Equal(got, want[8*bs:16*bs]) || !bytes.Equal(data, want[:8*bs]) {
		t.Fatal("a read while the solo buffer is lent: wrong data, or the lent data changed")
	}
	release()
	data, release, err = s.ExecuteLent(t.Context(), &Request{CDB: cdbRW16(opWrite16, lba, 8), Dir: DirToDevice, Data: want[:8*bs]}, &lres)
	mustGood(t, "WRITE(16) through ExecuteLent", &lres, err)
	if data != nil || release != nil {
		t.Fatal("ExecuteLent lent a buffer for a write")
	}
	data, release, err = off.ExecuteLent(t.Context(), req, &lres)
	mustGood(t, "ExecuteLent without the solo descriptor", &lres, err)
	if release != nil || &data[0] != &req.Data[0] || !bytes.Equal(data, want[:8*bs]) {
		t.Fatal("ExecuteLent without the solo descriptor: not the caller's buffer, or wrong data")
	}

	// A short transfer: INQUIRY with a long allocation length returns
	// fewer bytes. The reserved buffer still holds the pattern read
	// above; the caller's bytes past the transfer must stay as they were.
	res, err = s.Do(ctx, &Request{CDB: cdbRW16(opRead16, lba, 1), Dir: DirFromDevice, Data: make([]byte, bs)})
	mustGood(t, "READ(16)", res, err)
	inq := bytes.Repeat([]byte{0x5a}, 252)
	res, err = s.Do(t.Context(), &Request{CDB: scsi.InquiryCDB(false, 0, uint16(len(inq))), Dir: DirFromDevice, Data: inq})
	mustGood(t, "INQUIRY", res, err)
	moved := res.Transferred(len(inq))
	if moved < 36 || moved == len(inq) {
		t.Skipf("INQUIRY moved %d of %d bytes: no short transfer to check", moved, len(inq))
	}
	if !bytes.Equal(s.solo.mapped[36:moved], inq[36:moved]) {
		t.Fatal("INQUIRY did not run on the solo descriptor")
	}
	for i := moved; i < len(inq); i++ {
		if inq[i] != 0x5a {
			t.Fatalf("INQUIRY moved %d bytes but byte %d of the caller's buffer changed to %#x (stale reserved buffer data)", moved, i, inq[i])
		}
	}
}

// TestIntegrationCloseWhileBusy closes the device under load: Close
// waits for commands in flight, later requests get ErrClosed.
func TestIntegrationCloseWhileBusy(t *testing.T) {
	path := integrationDevice(t)
	s, err := Open(path, WithQueueDepth(32))
	if err != nil {
		t.Fatal(err)
	}
	_, bs := capacity(t, s)
	var wg sync.WaitGroup
	var ok, closed atomic.Int64
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				buf := make([]byte, bs)
				res, err := s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, 0, 1), Dir: DirFromDevice, Data: buf})
				if errors.Is(err, ErrClosed) {
					closed.Add(1)
					return
				}
				if err != nil || res.Status != scsi.Good {
					t.Errorf("read: %v", err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if closed.Load() != 64 || ok.Load() == 0 {
		t.Fatalf("%d reads, %d goroutines saw ErrClosed (want 64)", ok.Load(), closed.Load())
	}
}

// TestIntegrationOpenBlockNode opens the device's block and bsg nodes
// and checks they are mapped to the same sg node.
func TestIntegrationOpenBlockNode(t *testing.T) {
	path := integrationDevice(t)
	dev := filepath.Join("/sys/class/scsi_generic", filepath.Base(path), "device")
	var nodes []string
	if ents, err := os.ReadDir(filepath.Join(dev, "block")); err == nil && len(ents) > 0 {
		nodes = append(nodes, "/dev/"+ents[0].Name())
	}
	if real, err := filepath.EvalSymlinks(dev); err == nil {
		if bsg := "/dev/bsg/" + filepath.Base(real); fileExists(bsg) {
			nodes = append(nodes, bsg)
		}
	}
	if len(nodes) == 0 {
		t.Skip("device has neither a block nor a bsg node")
	}
	for _, n := range nodes {
		s, err := Open(n)
		if err != nil {
			t.Fatal(err)
		}
		if s.Info().SGPath != path || !s.Info().Async || s.Info().Path != n {
			t.Errorf("%s mapped to %+v, want %s", n, s.Info(), path)
		}
		capacity(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s -> %s", n, path)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// BenchmarkSGRead4K measures 4 KiB READ(16)s at queue depth 1 and 32
// (that many goroutines, each with one command at a time). Modes:
// "async" is the default backend with a context that can be cancelled
// (as the gateway calls it, with its session's context: data-in goes
// through the slot's buffer), "async-nocancel" the same with
// context.Background (the kernel fills the caller's buffer),
// "async-unpolled" the default without the polled path (every command
// waits for the reaper), "sync" WithSyncIO. ns/op is per command; the
// IOPS metric is commands per second.
func BenchmarkSGRead4K(b *testing.B) {
	for _, mode := range []struct {
		name   string
		opts   []Option
		cancel bool
	}{
		{"async", nil, true},
		{"async-nocancel", nil, false},
		{"async-unpolled", []Option{WithPollWindow(0)}, true},
		{"async-lent", nil, true},
		{"async-nosolo", []Option{WithSolo(false)}, true},
		{"sync", []Option{WithSyncIO()}, false},
	} {
		for _, qd := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/QD%d", mode.name, qd), func(b *testing.B) {
				s := openIntegration(b, append([]Option{WithQueueDepth(max(qd, 1))}, mode.opts...)...)
				lent := mode.name == "async-lent"
				blocks, bs := capacity(b, s)
				per := uint32(4096 / bs)
				span := blocks / uint64(per)
				ctx := context.Background()
				if mode.cancel {
					c, cancel := context.WithCancel(ctx)
					defer cancel()
					ctx = c
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := 0; w < qd; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						buf := make([]byte, 4096)
						cdb := cdbRW16(opRead16, 0, per)
						req := &Request{CDB: cdb, Dir: DirFromDevice, Data: buf}
						var res Result
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							lba := uint64(i) % span * uint64(per)
							binary.BigEndian.PutUint64(cdb[2:], lba)
							var err error
							if lent {
								// What the gateway does: the data goes out
								// from the lent buffer, which comes back.
								var release func()
								if _, release, err = s.ExecuteLent(ctx, req, &res); release != nil {
									release()
								}
							} else {
								err = s.Execute(ctx, req, &res)
							}
							if err != nil || res.Status != scsi.Good {
								b.Errorf("read: %v", err)
								return
							}
						}
					}(w)
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/el.Seconds(), "IOPS")
				b.ReportMetric(100*float64(s.polls.Load())/float64(b.N), "%polled")
				b.ReportMetric(100*float64(s.polls.Load()-s.pollMissed.Load())/float64(max(s.polls.Load(), 1)), "%hit")
				b.SetBytes(4096)
			})
		}
	}
}

// TestIntegrationHotUnplug removes the device (through sysfs) while
// commands are in flight: every Do must end, with ErrGone (or a result
// the kernel failed), none may hang, and Close must return. It deletes
// the device, so it runs only when SANBRIDGE_SG_HOTUNPLUG=1, last.
func TestIntegrationHotUnplug(t *testing.T) {
	path := integrationDevice(t)
	if os.Getenv("SANBRIDGE_SG_HOTUNPLUG") != "1" {
		t.Skip("SANBRIDGE_SG_HOTUNPLUG=1 not set: this test deletes the device")
	}
	del := filepath.Join("/sys/class/scsi_generic", filepath.Base(path), "device", "delete")
	s, err := Open(path, WithQueueDepth(64), WithLogger(zerolog.New(zerolog.NewTestWriter(t))))
	if err != nil {
		t.Fatal(err)
	}
	_, bs := capacity(t, s)
	var wg sync.WaitGroup
	var ok, gone, failed atomic.Int64
	for g := 0; g < 96; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				buf := make([]byte, 8*bs)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				res, err := s.Do(ctx, &Request{CDB: cdbRW16(opRead16, uint64(g*8), 8), Dir: DirFromDevice, Data: buf})
				cancel()
				switch {
				case errors.Is(err, ErrGone):
					gone.Add(1)
					return
				case err != nil:
					t.Errorf("read: %v", err)
					return
				case res.Status == scsi.Good && res.HostStatus == 0:
					ok.Add(1)
				default:
					// Failed by the midlayer during removal (DID_NO_CONNECT
					// comes with ErrGone; others are data).
					if failed.Add(1) == 1 {
						t.Logf("failed during removal: status %v host %v driver %v sense % x", res.Status, res.HostStatus, res.DriverStatus, res.Sense)
					}
				}
			}
		}(g)
	}
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(del, []byte("1"), 0o200); err != nil {
		t.Fatalf("delete %s: %v", del, err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("requests still blocked 60 s after the device was deleted")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Logf("Close after removal: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close blocked after the device was deleted")
	}
	// Bring the device back for whatever runs next.
	a := s.Info().Address
	scan := fmt.Sprintf("/sys/class/scsi_host/host%d/scan", a.Host)
	if err := os.WriteFile(scan, []byte(fmt.Sprintf("%d %d %d", a.Channel, a.Target, a.LUN)), 0o200); err != nil {
		t.Logf("rescan %s: %v", scan, err)
	}
	t.Logf("%d reads before removal, %d failed by the kernel, %d goroutines saw ErrGone", ok.Load(), failed.Load(), gone.Load())
	if gone.Load() != 96 || ok.Load() == 0 {
		t.Fatalf("%d of 96 goroutines ended with ErrGone", gone.Load())
	}
}

// bareLoop issues 4 KiB READ(16)s of LBA 0 on its own descriptor
// without the SG machinery: the floors BenchmarkSGRead4K is compared to.
type bareLoop struct {
	tb    testing.TB
	fd    int
	h     sgIOHdr
	cdb   [16]byte
	sense [senseBufferLen]byte
	data  [4096]byte
	out   [sgIOHdrSize]byte
	pfd   unix.PollFd
	pts   unix.Timespec
}

func newBareLoop(tb testing.TB, path string) *bareLoop {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	l := &bareLoop{tb: tb, fd: fd}
	copy(l.cdb[:], cdbRW16(opRead16, 0, 8))
	return l
}

func (l *bareLoop) header() {
	l.h = sgIOHdr{interfaceID: sgInterfaceID, dxferDirection: sgDxferFromDev, cmdLen: 16, mxSbLen: senseBufferLen,
		dxferLen: 4096, dxferp: unsafe.Pointer(&l.data[0]), cmdp: unsafe.Pointer(&l.cdb[0]),
		sbp: unsafe.Pointer(&l.sense[0]), timeout: 10000, flags: sgFlagQAtTail}
}

// ioctl issues the blocking SG_IO ioctl through RawSyscall: what sg_dd
// does, and the least any Go program can spend per command (SG cannot
// use it: it holds a scheduler slot for as long as the device takes,
// and the sg driver restarts it after a signal, sending the command
// twice).
func (l *bareLoop) ioctl() {
	l.header()
	if _, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(l.fd), sgIO, uintptr(unsafe.Pointer(&l.h))); e != 0 {
		l.tb.Fatal(e)
	}
	if l.h.status != 0 || l.h.hostStatus != 0 {
		l.tb.Fatalf("status %#x host %#x", l.h.status, l.h.hostStatus)
	}
}

// rw is write() and read() of one sg_io_hdr, through call (Syscall or
// RawSyscall); while read finds nothing it spins, or with poll set it
// waits in a raw ppoll(2) as SG's polled path does.
func (l *bareLoop) rw(call func(trap, a1, a2, a3 uintptr) (uintptr, uintptr, unix.Errno), poll bool) {
	l.header()
	if _, _, e := call(unix.SYS_WRITE, uintptr(l.fd), uintptr(unsafe.Pointer(&l.h)), uintptr(sgIOHdrSize)); e != 0 {
		l.tb.Fatal(e)
	}
	for {
		_, _, e := call(unix.SYS_READ, uintptr(l.fd), uintptr(unsafe.Pointer(&l.out[0])), uintptr(sgIOHdrSize))
		if e == 0 {
			break
		}
		if e != unix.EAGAIN {
			l.tb.Fatal(e)
		}
		if poll {
			l.pfd = unix.PollFd{Fd: int32(l.fd), Events: unix.POLLIN}
			l.pts = unix.NsecToTimespec(int64(DefaultPollWindow))
			unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&l.pfd)), 1, uintptr(unsafe.Pointer(&l.pts)), 0, 0, 0)
		}
	}
	if o := decodeSGOutput(&l.out); o.status != 0 || o.hostStatus != 0 {
		l.tb.Fatalf("status %#x host %#x", o.status, o.hostStatus)
	}
}

// BenchmarkSGRead4KBareLoop is the floor under BenchmarkSGRead4K/QD1,
// without the SG machinery: "syscall" and "rawsyscall" loop on write()
// and read() of one sg_io_hdr on a non-blocking descriptor, spinning on
// EAGAIN, through syscall.Syscall (what SG's unpolled path uses for
// write) and RawSyscall; "polled" is SG's polled path without SG: raw
// write(), raw read() and, while it finds nothing, a raw ppoll(2);
// "ioctl" is the blocking SG_IO ioctl, as sg_dd issues it.
func BenchmarkSGRead4KBareLoop(b *testing.B) {
	path := integrationDevice(b)
	for _, mode := range []string{"syscall", "rawsyscall", "ioctl", "polled"} {
		b.Run(mode, func(b *testing.B) {
			l := newBareLoop(b, path)
			start := time.Now()
			for i := 0; i < b.N; i++ {
				switch mode {
				case "ioctl":
					l.ioctl()
				case "syscall":
					l.rw(unix.Syscall, false)
				default:
					l.rw(unix.RawSyscall, mode == "polled")
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
		})
	}
}

// BenchmarkSGRead4KInterleaved measures SG at queue depth 1 against the
// floors in one process, alternating chunks of 250 commands of each:
// "lent" (ExecuteLent, what the gateway does), "copied" (Execute into
// the caller's buffer, cancellable context), "ioctl" (sg_dd's one
// blocking SG_IO ioctl per command) and "polled" (SG's system calls in
// a bare loop). Separate runs of separate processes swing by up to 2x
// under TCG; chunks this short share the machine's state, so the
// ratios are steady to a few percent.
func BenchmarkSGRead4KInterleaved(b *testing.B) {
	path := integrationDevice(b)
	s := openIntegration(b, WithQueueDepth(1))
	l := newBareLoop(b, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := &Request{CDB: cdbRW16(opRead16, 0, 8), Dir: DirFromDevice, Data: make([]byte, 4096)}
	var res Result
	check := func(err error) {
		if err != nil || res.Status != scsi.Good {
			b.Fatalf("READ(16): %v, status %v", err, res.Status)
		}
	}
	variants := []struct {
		name string
		f    func()
	}{
		{"lent", func() {
			_, release, err := s.ExecuteLent(ctx, req, &res)
			check(err)
			if release != nil {
				release()
			}
		}},
		{"copied", func() { check(s.Execute(ctx, req, &res)) }},
		{"ioctl", l.ioctl},
		{"polled", func() { l.rw(unix.RawSyscall, true) }},
	}
	const chunk = 250
	spent := make([]time.Duration, len(variants))
	rounds := (b.N + chunk - 1) / chunk
	for r := 0; r < rounds; r++ {
		for i, v := range variants {
			start := time.Now()
			for k := 0; k < chunk; k++ {
				v.f()
			}
			spent[i] += time.Since(start)
		}
	}
	iops := make([]float64, len(variants))
	for i, v := range variants {
		iops[i] = float64(rounds*chunk) / spent[i].Seconds()
		b.ReportMetric(iops[i], v.name+"-IOPS")
	}
	b.ReportMetric(iops[0]/iops[2], "lent/ioctl")
	b.ReportMetric(iops[1]/iops[2], "copied/ioctl")
	b.ReportMetric(iops[3]/iops[2], "polled/ioctl")
}

// TestIntegrationBlockNode drives a block node (SANBRIDGE_SG_BLOCK, e.g.
// /dev/sdb): through its sg node when the sg driver is loaded, else with
// the block layer's SG_IO ioctl. The device is written to, as above.
func TestIntegrationBlockNode(t *testing.T) {
	path := os.Getenv("SANBRIDGE_SG_BLOCK")
	if path == "" {
		t.Skip("SANBRIDGE_SG_BLOCK not set")
	}
	s, err := Open(path, WithLogger(zerolog.New(zerolog.NewTestWriter(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // after testReadWrite's restore
	t.Logf("info %+v limits %+v", s.Info(), s.Limits())
	if s.Info().Async != (s.Info().SGPath != path) {
		t.Fatalf("%s: async %v with node %s", path, s.Info().Async, s.Info().SGPath)
	}
	testReadWrite(t, s)
	blocks, bs := capacity(t, s)
	res, err := s.Do(context.Background(), &Request{CDB: cdbRW16(opRead16, blocks, 1), Dir: DirFromDevice, Data: make([]byte, bs)})
	if err != nil || res.Status != scsi.CheckCondition || len(res.Sense) < 14 || res.Sense[12] != 0x21 {
		t.Fatalf("out-of-range READ through %s: %v %+v", s.Info().SGPath, err, res)
	}
}
