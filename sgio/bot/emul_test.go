package bot

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// botDisk is a Link played by a well-behaved Bulk-Only device in front
// of emulated disks (one per LUN): it runs each CBW's command on its
// disk, moves the data the way BOT 6.7 has a device do (a short packet,
// or a STALL when the data ends on a packet boundary before the host's
// length), keeps a failed command's sense for the REQUEST SENSE that
// follows, and fails the test when the host breaks the protocol (a
// transfer while another is under way, a CBW where data or the CSW was
// due).
type botDisk struct {
	t    testing.TB
	luns []*emul.Disk

	busy atomic.Bool

	mu       sync.Mutex
	phase    string // "cbw", "data-in", "data-out", "csw"
	cbw      CBW
	csw      CSW
	in       []byte
	sense    map[uint8][]byte
	halted   [2]bool
	commands int
	senses   int // REQUEST SENSE commands answered from kept sense
}

const packet = 512 // the model's wMaxPacketSize

func newBotDisk(t testing.TB, luns int) *botDisk {
	b := &botDisk{t: t, phase: "cbw", sense: map[uint8][]byte{}}
	for i := range luns {
		d, err := emul.New(emul.Config{SizeBytes: 4 << 20, Serial: fmt.Sprintf("LUN%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		b.luns = append(b.luns, d)
	}
	return b
}

func (b *botDisk) enter() func() {
	if !b.busy.CompareAndSwap(false, true) {
		b.t.Error("two transfers at once on one interface")
	}
	return func() { b.busy.Store(false) }
}

// Bulk implements Link.
func (b *botDisk) Bulk(ctx context.Context, ep Endpoint, buf []byte) (int, error) {
	defer b.enter()()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.halted[ep] {
		return 0, ErrStall
	}
	switch {
	case b.phase == "cbw" && ep == BulkOut:
		c, err := ParseCBW(buf)
		if err != nil {
			b.t.Errorf("device got an invalid CBW: %v", err)
			b.halted = [2]bool{true, true} // BOT 6.6.1
			return len(buf), nil
		}
		c.CDB = append([]byte(nil), c.CDB...)
		b.cbw = c
		b.commands++
		b.csw = CSW{Tag: c.Tag}
		switch {
		case c.DataTransferLength > 0 && !c.DataIn:
			b.phase = "data-out"
		default:
			b.run(nil)
		}
		return len(buf), nil
	case b.phase == "data-out" && ep == BulkOut:
		b.run(buf)
		return len(buf), nil
	case b.phase == "data-in" && ep == BulkIn:
		n := copy(buf, b.in)
		b.phase = "csw"
		if n < len(buf) && n%packet == 0 {
			// No short packet can end the transfer: STALL (BOT 6.7.2).
			b.halted[BulkIn] = true
			return n, ErrStall
		}
		return n, nil
	case b.phase == "csw" && ep == BulkIn:
		b.phase = "cbw"
		w, _ := b.csw.AppendBinary(nil)
		return copy(buf, w), nil
	}
	b.t.Errorf("%v transfer of %d bytes in phase %s", ep, len(buf), b.phase)
	b.halted = [2]bool{true, true}
	return 0, ErrStall
}

// run executes the CBW's command (out is the data-out, if any) and
// moves to the data-in or status phase.
func (b *botDisk) run(out []byte) {
	c := &b.cbw
	n := int(c.DataTransferLength)
	b.phase = "csw"
	if int(c.LUN) >= len(b.luns) {
		b.csw.Status, b.csw.DataResidue = CSWFailed, c.DataTransferLength
		b.sense[c.LUN] = scsi.FixedSense(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
		return
	}
	if scsi.Opcode(c.CDB[0]) == scsi.OpRequestSense && b.sense[c.LUN] != nil {
		// The kept sense of the failed command, once.
		b.senses++
		b.in = b.sense[c.LUN][:min(len(b.sense[c.LUN]), n, int(c.CDB[4]))]
		delete(b.sense, c.LUN)
		b.csw.DataResidue = uint32(n - len(b.in))
		if n > 0 {
			b.phase = "data-in"
		}
		return
	}
	req := &sgio.Request{CDB: c.CDB}
	switch {
	case n == 0:
	case c.DataIn:
		req.Dir, req.Data = sgio.DirFromDevice, make([]byte, n)
	default:
		req.Dir, req.Data = sgio.DirToDevice, out
	}
	var res sgio.Result
	if err := b.luns[c.LUN].Execute(context.Background(), req, &res); err != nil {
		b.t.Errorf("emulated disk: %v", err)
	}
	b.csw.DataResidue = uint32(res.Resid)
	if res.Status != scsi.Good {
		b.csw.Status = CSWFailed
		b.sense[c.LUN] = res.Sense
	} else {
		delete(b.sense, c.LUN)
	}
	if c.DataIn && n > 0 {
		b.in = req.Data[:n-res.Resid]
		b.phase = "data-in"
	}
}

// Control implements Link.
func (b *botDisk) Control(ctx context.Context, rType, request uint8, value uint16, data []byte) (int, error) {
	defer b.enter()()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case rType == rTypeClassIn && request == reqGetMaxLUN && len(data) == 1:
		data[0] = byte(len(b.luns) - 1)
		return 1, nil
	case rType == rTypeClassOut && request == reqMassStorageReset:
		b.phase = "cbw" // halts stay until cleared (BOT 3.1)
		return 0, nil
	}
	return 0, ErrStall
}

// ClearHalt implements Link.
func (b *botDisk) ClearHalt(ctx context.Context, ep Endpoint) error {
	defer b.enter()()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halted[ep] = false
	return nil
}

// Close implements Link.
func (b *botDisk) Close() error { return nil }

func (b *botDisk) transport(t testing.TB) *Transport {
	tr, err := New(b, "1-1:1.0", WithLogger(zerolog.New(zerolog.NewTestWriter(t))), WithMaxTransfer(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func rw10(op scsi.Opcode, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = byte(op)
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func TestEmulatedDisk(t *testing.T) {
	dev := newBotDisk(t, 1)
	tr := dev.transport(t)
	d, err := tr.LUN(0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
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

	// INQUIRY with a generous allocation length: a short packet ends it.
	inq := make([]byte, 255)
	res := do(&sgio.Request{CDB: scsi.InquiryCDB(false, 0, 255), Dir: sgio.DirFromDevice, Data: inq})
	got := inq[:res.Transferred(len(inq))]
	var direct sgio.Result
	want := make([]byte, 255)
	if err := dev.luns[0].Execute(ctx, &sgio.Request{CDB: scsi.InquiryCDB(false, 0, 255), Dir: sgio.DirFromDevice, Data: want}, &direct); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[:direct.Transferred(255)]) || res.Resid == 0 {
		t.Errorf("INQUIRY through BOT: resid %d\n%x\nwant %x", res.Resid, got, want[:direct.Transferred(255)])
	}

	// READ CAPACITY(10).
	rc := make([]byte, 8)
	do(&sgio.Request{CDB: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Dir: sgio.DirFromDevice, Data: rc})
	if last, bs := binary.BigEndian.Uint32(rc), binary.BigEndian.Uint32(rc[4:]); last != 4<<20/512-1 || bs != 512 {
		t.Errorf("READ CAPACITY: last LBA %d, block size %d", last, bs)
	}

	// A write and a read back of 128 KiB.
	data := make([]byte, 128<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	do(&sgio.Request{CDB: rw10(scsi.OpWrite10, 100, 256), Dir: sgio.DirToDevice, Data: data})
	back := make([]byte, len(data))
	if res := do(&sgio.Request{CDB: rw10(scsi.OpRead10, 100, 256), Dir: sgio.DirFromDevice, Data: back}); res.Status != scsi.Good || res.Resid != 0 {
		t.Fatalf("READ: %+v", res)
	}
	if !bytes.Equal(back, data) {
		t.Error("data read back differs")
	}

	// The host asks for more than the command moves, on a packet
	// boundary: the device STALLs, the host clears it and gets the CSW.
	two := make([]byte, 1024)
	if res := do(&sgio.Request{CDB: rw10(scsi.OpRead10, 100, 1), Dir: sgio.DirFromDevice, Data: two}); res.Status != scsi.Good || res.Resid != 512 || !bytes.Equal(two[:512], data[:512]) {
		t.Errorf("READ of 1 block into 2: status %v resid %d", res.Status, res.Resid)
	}

	// A failure: its sense comes from the REQUEST SENSE after it.
	res = do(&sgio.Request{CDB: rw10(scsi.OpRead10, 1<<30, 1), Dir: sgio.DirFromDevice, Data: make([]byte, 512)})
	s, err := scsi.ParseSense(res.Sense)
	if res.Status != scsi.CheckCondition || err != nil || s.Key != scsi.SenseIllegalRequest || s.ASC != scsi.ASCLBAOutOfRange {
		t.Errorf("READ beyond the end: status %v sense %x (%v)", res.Status, res.Sense, err)
	}
	if dev.senses != 1 {
		t.Errorf("%d REQUEST SENSE answered from kept sense", dev.senses)
	}
	if tr.Resets() != 0 {
		t.Errorf("%d reset recoveries on a well-behaved device", tr.Resets())
	}
}

// TestEmulatedLUNsConcurrent: commands of several LUNs from several
// goroutines share the interface one at a time (the device model fails
// the test on overlapping transfers) and reach their own LUN.
func TestEmulatedLUNsConcurrent(t *testing.T) {
	dev := newBotDisk(t, 2)
	tr := dev.transport(t)
	if tr.MaxLUN() != 1 {
		t.Fatalf("max LUN %d", tr.MaxLUN())
	}
	var wg sync.WaitGroup
	for lun := range 2 {
		d, err := tr.LUN(lun)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					lba := uint32(w*1000 + i*8)
					data := bytes.Repeat([]byte{byte(lun*16 + w), byte(i)}, 2048)
					var res sgio.Result
					if err := d.Execute(context.Background(), &sgio.Request{CDB: rw10(scsi.OpWrite10, lba, 8), Dir: sgio.DirToDevice, Data: data}, &res); err != nil || res.Status != scsi.Good {
						t.Errorf("write: %v %+v", err, res)
						return
					}
					back := make([]byte, len(data))
					if err := d.Execute(context.Background(), &sgio.Request{CDB: rw10(scsi.OpRead10, lba, 8), Dir: sgio.DirFromDevice, Data: back}, &res); err != nil || res.Status != scsi.Good {
						t.Errorf("read: %v %+v", err, res)
						return
					}
					if !bytes.Equal(back, data) {
						t.Errorf("LUN %d worker %d: data differs at LBA %d", lun, w, lba)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if dev.commands != 2*3*20*2 {
		t.Errorf("%d commands reached the device", dev.commands)
	}
}

// BenchmarkEmulatedRead measures the transport's own cost per command
// (CBW, data, CSW through the device model) at QD1: run with
// -cpuprofile to see it apart from the USB stack's.
func BenchmarkEmulatedRead(b *testing.B) {
	for _, bs := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", bs>>10), func(b *testing.B) {
			tr, err := New(newBotDisk(b, 1), "1-1:1.0")
			if err != nil {
				b.Fatal(err)
			}
			benchRead(b, tr, bs, 64)
		})
	}
}

// benchRead reads LUN 0 of tr sequentially at QD1, bs bytes per READ(10)
// over span places, and closes tr.
func benchRead(b *testing.B, tr *Transport, bs, span int) {
	d, err := tr.LUN(0)
	tr.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, bs)
	blocks := uint16(bs / 512)
	ctx := context.Background()
	var res sgio.Result
	// A pending unit attention (power on), once.
	d.Execute(ctx, &sgio.Request{CDB: make([]byte, 6)}, &res)
	b.SetBytes(int64(bs))
	for i := 0; b.Loop(); i++ {
		lba := uint32(i%span) * uint32(blocks)
		if err := d.Execute(ctx, &sgio.Request{CDB: rw10(scsi.OpRead10, lba, blocks), Dir: sgio.DirFromDevice, Data: buf}, &res); err != nil || res.Status != scsi.Good || res.Resid != 0 {
			b.Fatalf("READ(10) at %d: %v, %+v", lba, err, res)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "IOPS")
}
