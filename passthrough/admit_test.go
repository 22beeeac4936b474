package passthrough

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// opaqueDevice hides a device's geometry: only the sgio.Device methods
// show (an SG device before anything was learned about it).
type opaqueDevice struct{ d sgio.Device }

func (o opaqueDevice) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	return o.d.Execute(ctx, req, res)
}
func (o opaqueDevice) Limits() sgio.Limits { return o.d.Limits() }
func (o opaqueDevice) Close() error        { return o.d.Close() }

func rw16(op scsi.Opcode, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = byte(op)
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

// admitted fails unless a is a bound of read and write bytes.
func admitted(t *testing.T, what string, a iscsi.Admission, read, write uint32) {
	t.Helper()
	if a.Refuse || a.ReadLen != read || a.WriteLen != write {
		t.Fatalf("%s: %+v, want read %d write %d", what, a, read, write)
	}
}

// refused fails unless a refuses with key and asc.
func refused(t *testing.T, what string, a iscsi.Admission, key scsi.SenseKey, asc scsi.ASC) {
	t.Helper()
	if !a.Refuse {
		t.Fatalf("%s: admitted %+v", what, a)
	}
	wantCheck(t, a.Response, key, asc)
}

func TestAdmit(t *testing.T) {
	disk, err := emul.New(emul.Config{SizeBytes: 1 << 20, BlockSize: 512, MaxTransferBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	lu := newLU(t, "disk", disk)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	l0, l9 := iscsi.MakeLUN(0), iscsi.MakeLUN(9)
	if g := lu.Geometry(); g.Type != scsi.TypeDisk || g.BlockSize != 512 || g.Blocks != 2048 || g.MaxTransfer != 64<<10 {
		t.Fatalf("geometry %+v", g)
	}
	admitted(t, "READ(10) 8 blocks", tg.Admit(n, l0, testinit.Read10(0, 8), true, false), 4096, 0)
	admitted(t, "WRITE(10) 128 blocks", tg.Admit(n, l0, testinit.Write10(0, 128), false, true), 0, 64<<10)
	refused(t, "READ(16) 4G blocks", tg.Admit(n, l0, rw16(scsi.OpRead16, 0, 0xffffffff), true, false), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	refused(t, "WRITE(16) past the end", tg.Admit(n, l0, rw16(scsi.OpWrite16, 2047, 2), false, true), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	admitted(t, "READ(10) beyond the transfer limit, split", tg.Admit(n, l0, testinit.Read10(0, 129), true, false), 129*512, 0)
	admitted(t, "INQUIRY", tg.Admit(n, l0, testinit.Inquiry(255), true, false), 255, 0)
	admitted(t, "vendor command", tg.Admit(n, l0, []byte{0xc5, 0, 0, 0, 0, 0}, true, false), 64<<10, 64<<10)
	admitted(t, "REPORT LUNS 4G", tg.Admit(n, l9, testinit.ReportLUNs(0xffffffff), true, false), reportLUNsMax, 0)
	admitted(t, "INQUIRY, LUN outside the view", tg.Admit(n, l9, testinit.Inquiry(4096), true, false), noLUNMax, 0)
	admitted(t, "WRITE, LUN outside the view", tg.Admit(n, l9, testinit.Write10(0, 8), false, true), noLUNMax, 0) // no write data solicited
}

// TestAdmitLearnsGeometry: a device that tells nothing of itself is
// bounded by its transfer limit only, until READ CAPACITY and INQUIRY
// answers have passed: then commands past the end are refused at once.
func TestAdmitLearnsGeometry(t *testing.T) {
	lu := newLU(t, "opaque", opaqueDevice{newDisk(t, "opaque")})
	lu.SetGeometry(Geometry{Type: scsi.TypeUnknown}) // forget what NewLU asked the device
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	clearUAs(t, tg, n, 0)
	l0 := iscsi.MakeLUN(0)
	g := lu.Geometry()
	if g.Type != scsi.TypeUnknown || g.Blocks != 0 || g.MaxTransfer != emul.DefaultMaxTransferBytes {
		t.Fatalf("geometry of an opaque device %+v", g)
	}
	admitted(t, "READ(16) past the end, geometry unknown", tg.Admit(n, l0, rw16(scsi.OpRead16, 4000, 8), true, false), g.MaxTransfer, g.MaxTransfer)
	wantSt(t, run(t, tg, n, 0, testinit.Inquiry(96), 96), scsi.Good)
	wantSt(t, run(t, tg, n, 0, scsi.ReadCapacity16CDB(32), 32), scsi.Good)
	if g := lu.Geometry(); g.Type != scsi.TypeDisk || g.BlockSize != 512 || g.Blocks != 2048 {
		t.Fatalf("learned geometry %+v", g)
	}
	refused(t, "READ(16) past the end", tg.Admit(n, l0, rw16(scsi.OpRead16, 4000, 8), true, false), scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	admitted(t, "READ(16) at the end", tg.Admit(n, l0, rw16(scsi.OpRead16, 2040, 8), true, false), 4096, 0)
	// The bridge may set it outright.
	lu.SetGeometry(Geometry{Type: scsi.TypeDisk, BlockSize: 4096, Blocks: 10})
	admitted(t, "READ(16) after SetGeometry", tg.Admit(n, l0, rw16(scsi.OpRead16, 0, 2), true, false), 8192, 0)
}

// TestEngineFairLU: through the engine, initiator A keeps 128 reads in
// flight on a logical unit whose device takes 4 at a time, while
// initiator B reads one block at a time on the same logical unit. B's
// commands get device slots in turn with A's (the fair queue), so its
// latency is about one device service time, not A's whole backlog. The
// bound is generous; the measured values are logged.
func TestEngineFairLU(t *testing.T) {
	const (
		service = 500 * time.Microsecond
		bound   = 5 * time.Second
	)
	disk, err := emul.New(emul.Config{SizeBytes: 1 << 20, BlockSize: 512, QueueDepth: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	dev := &hookDevice{Disk: disk}
	dev.setHook(func(context.Context, *sgio.Request, *sgio.Result) bool {
		time.Sleep(service)
		return false
	})
	lu := newLU(t, "shared", dev)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: lu})), lu)
	addr, _ := serve(t, tg)
	a := login(t, addr, iqnA, 1)
	b := login(t, addr, iqnB, 2)
	settle(t, a, 0)
	settle(t, b, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var aDone int
	wg.Add(1)
	go func() {
		defer wg.Done()
		var inflight []*testinit.Task
		for i := 0; i < 128; i++ {
			inflight = append(inflight, a.Start(0, testinit.Read10(uint32(i%64), 8), nil, 4096))
		}
		for len(inflight) > 0 {
			t0 := inflight[0]
			inflight = inflight[1:]
			if r := t0.Wait(); r.Err != nil || r.Status != scsi.Good {
				panic(fmt.Sprintf("A: %v", r))
			}
			aDone++
			select {
			case <-stop:
			default:
				inflight = append(inflight, a.Start(0, testinit.Read10(uint32(aDone%64), 8), nil, 4096))
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // A's queue builds up
	var lat []time.Duration
	for i := 0; i < 50; i++ {
		t0 := time.Now()
		r := b.Do(0, testinit.Read10(uint32(i), 1), nil, 512)
		want(t, "B's read", r, scsi.Good)
		lat = append(lat, time.Since(t0))
	}
	close(stop)
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("B at QD1 next to A at QD128 on a depth-4 LU (%v per command): B p50 %v p90 %v max %v; A completed %d (a first-come queue would put each of B's commands behind about 124 of A's: %v)",
		service, lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1], aDone, 124/4*service)
	if lat[len(lat)-1] > bound {
		t.Errorf("B's slowest read took %v, beyond %v", lat[len(lat)-1], bound)
	}
}
