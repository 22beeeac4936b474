//go:build cgo && !nousb

package bot

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// The integration tests drive a real USB mass-storage device, named by
// its interface in SANBRIDGE_BOT_DEVICE ("2-1:1.0"); the rig's
// deploy/rig/tests/46-usb-bot.sh runs them on QEMU's usb-storage stick.
// SANBRIDGE_BOT_PATTERN ("FILE@LBA") is data the kernel wrote there
// before; SANBRIDGE_BOT_WRITE ("FILE@LBA") is data these tests write for
// the kernel to find after the interface is given back.
func integrationDevice(t *testing.T) (string, *Device) {
	t.Helper()
	name := os.Getenv("SANBRIDGE_BOT_DEVICE")
	if name == "" {
		t.Skip("SANBRIDGE_BOT_DEVICE not set (the rig's 46-usb-bot sets it)")
	}
	d, err := OpenLUN(Selector{BusPath: name}, 0, WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)))
	if err != nil {
		t.Fatal(err)
	}
	return name, d
}

func ifaceDriver(name string) string {
	l, err := os.Readlink(filepath.Join("/sys/bus/usb/devices", name, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

func fileAt(t *testing.T, env string) ([]byte, uint32, bool) {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return nil, 0, false
	}
	file, at, ok := strings.Cut(v, "@")
	lba, err := strconv.ParseUint(at, 10, 32)
	if !ok || err != nil {
		t.Fatalf("%s=%q: want FILE@LBA", env, v)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b, uint32(lba), true
}

func TestIntegration(t *testing.T) {
	name, d := integrationDevice(t)
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()
	ctx := context.Background()
	do := func(req *sgio.Request) *sgio.Result {
		t.Helper()
		var res sgio.Result
		if err := d.Execute(ctx, req, &res); err != nil {
			t.Fatalf("% x: %v", req.CDB, err)
		}
		if res.HostStatus != 0 {
			t.Fatalf("% x: host status %v", req.CDB, res.HostStatus)
		}
		return &res
	}
	t.Logf("%s: max LUN %d, limits %+v", d.Transport().Name(), d.Transport().MaxLUN(), d.Limits())

	// The kernel driver is detached while the interface is ours.
	if drv := ifaceDriver(name); drv != "usbfs" {
		t.Errorf("interface driver %q while open, want usbfs", drv)
	}

	// TEST UNIT READY until the power-on unit attention is reported.
	for i := 0; ; i++ {
		if res := do(&sgio.Request{CDB: make([]byte, 6)}); res.Status == scsi.Good {
			break
		} else if i == 5 {
			t.Fatalf("TEST UNIT READY: %v sense %x", res.Status, res.Sense)
		}
	}

	inq := make([]byte, 255)
	res := do(&sgio.Request{CDB: scsi.InquiryCDB(false, 0, 255), Dir: sgio.DirFromDevice, Data: inq})
	n := res.Transferred(len(inq))
	if res.Status != scsi.Good || n < 36 {
		t.Fatalf("INQUIRY: %v, %d bytes", res.Status, n)
	}
	t.Logf("INQUIRY: %q %q %q (%d bytes, resid %d)", inq[8:16], inq[16:32], inq[32:36], n, res.Resid)

	rc := make([]byte, 8)
	if res := do(&sgio.Request{CDB: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Dir: sgio.DirFromDevice, Data: rc}); res.Status != scsi.Good {
		t.Fatalf("READ CAPACITY(10): %v sense %x", res.Status, res.Sense)
	}
	last, bs := binary.BigEndian.Uint32(rc), binary.BigEndian.Uint32(rc[4:])
	t.Logf("READ CAPACITY: %d blocks of %d bytes", uint64(last)+1, bs)
	if bs == 0 || bs%512 != 0 {
		t.Fatalf("block size %d", bs)
	}
	read := func(lba uint32, b []byte) {
		t.Helper()
		if res := do(&sgio.Request{CDB: rw10(scsi.OpRead10, lba, uint16(len(b)/int(bs))), Dir: sgio.DirFromDevice, Data: b}); res.Status != scsi.Good || res.Resid != 0 {
			t.Fatalf("READ(10) at %d: %v resid %d sense %x", lba, res.Status, res.Resid, res.Sense)
		}
	}
	write := func(lba uint32, b []byte) {
		t.Helper()
		if res := do(&sgio.Request{CDB: rw10(scsi.OpWrite10, lba, uint16(len(b)/int(bs))), Dir: sgio.DirToDevice, Data: b}); res.Status != scsi.Good || res.Resid != 0 {
			t.Fatalf("WRITE(10) at %d: %v resid %d sense %x", lba, res.Status, res.Resid, res.Sense)
		}
	}

	// What the kernel wrote through usb-storage is there.
	if want, lba, ok := fileAt(t, "SANBRIDGE_BOT_PATTERN"); ok {
		got := make([]byte, len(want))
		read(lba, got)
		if !bytes.Equal(got, want) {
			t.Error("the data usb-storage wrote reads back differently over BOT")
		}
	}

	// A write and read back of 1 MiB, in transfers of the device's limit.
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*13 + i>>9)
	}
	const scratch = 4096 // LBA of the scratch area
	write(scratch, data)
	back := make([]byte, len(data))
	read(scratch, back)
	if !bytes.Equal(back, data) {
		t.Error("1 MiB read back differs")
	}

	// The failure path: sense through REQUEST SENSE.
	res = do(&sgio.Request{CDB: rw10(scsi.OpRead10, last+1, 1), Dir: sgio.DirFromDevice, Data: make([]byte, bs)})
	if s, err := scsi.ParseSense(res.Sense); res.Status != scsi.CheckCondition || err != nil || s.Key != scsi.SenseIllegalRequest {
		t.Errorf("READ past the end: %v sense %x", res.Status, res.Sense)
	}

	// A buffer larger than the command's data (BOT case Hi > Di).
	two := make([]byte, 2*bs)
	res = do(&sgio.Request{CDB: rw10(scsi.OpRead10, scratch, 1), Dir: sgio.DirFromDevice, Data: two})
	if res.Status != scsi.Good || res.Resid != int(bs) || !bytes.Equal(two[:bs], data[:bs]) {
		t.Errorf("READ of one block into two: %v resid %d", res.Status, res.Resid)
	}

	// Cancellations at arbitrary points of large transfers: whatever
	// the outcome, the device answers the next command.
	for i := range 20 {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(4000))*time.Microsecond)
		var res sgio.Result
		req := &sgio.Request{CDB: rw10(scsi.OpRead10, scratch, uint16(len(back)/int(bs))), Dir: sgio.DirFromDevice, Data: back}
		if i%2 == 1 {
			req = &sgio.Request{CDB: rw10(scsi.OpWrite10, scratch, uint16(len(data)/int(bs))), Dir: sgio.DirToDevice, Data: data}
		}
		err := d.Execute(cctx, req, &res)
		cancel()
		if err != nil && cctx.Err() == nil {
			t.Fatalf("cancellation round %d: %v", i, err)
		}
		read(scratch, back[:4096])
		if !bytes.Equal(back[:4096], data[:4096]) {
			t.Fatalf("cancellation round %d: data changed", i)
		}
	}
	t.Logf("reset recoveries after the cancellations: %d", d.Transport().Resets())

	// An explicit reset.
	if err := d.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	read(scratch, back[:bs])

	// Data for the kernel to find once the interface is given back.
	if b, lba, ok := fileAt(t, "SANBRIDGE_BOT_WRITE"); ok {
		write(lba, b)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	// Given back: usb-storage binds again.
	deadline := time.Now().Add(10 * time.Second)
	for ifaceDriver(name) == "usbfs" || ifaceDriver(name) == "" {
		if time.Now().After(deadline) {
			t.Fatalf("interface driver %q 10 s after close", ifaceDriver(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("interface driver after close: %s", ifaceDriver(name))
}

// BenchmarkIntegration reads the device named by SANBRIDGE_BOT_DEVICE
// sequentially at QD1, 4 KiB and 64 KiB per READ(10), through the
// synchronous transfers the backend uses (sync) and through gousb's
// ReadContext/WriteContext (gousb), in the same process: the rig's
// 46-usb-bot runs it with a CPU profile.
func BenchmarkIntegration(b *testing.B) {
	name := os.Getenv("SANBRIDGE_BOT_DEVICE")
	if name == "" {
		b.Skip("SANBRIDGE_BOT_DEVICE not set (the rig's 46-usb-bot sets it)")
	}
	for _, via := range []string{"sync", "gousb"} {
		for _, bs := range []int{4 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/%dKiB", via, bs>>10), func(b *testing.B) {
				sel := Selector{BusPath: name}
				bp, err := sel.validate()
				if err != nil {
					b.Fatal(err)
				}
				l, lname, err := openLink(sel, bp)
				if err != nil {
					b.Fatal(err)
				}
				if l.sync == nil {
					b.Fatal("no synchronous transfers (gousb's fields moved?)")
				}
				l.viaGousb = via == "gousb"
				tr, err := New(l, lname)
				if err != nil {
					b.Fatal(err)
				}
				benchRead(b, tr, bs, 1024)
			})
		}
	}
}
