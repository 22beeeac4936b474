package passthrough

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Devices for the tests of what the gateway tells initiators: a real
// emulated disk behind a wrapper that behaves like an SG device where
// the emulation is kinder (no Wanted, strict buffers, a smaller path)
// and injects outcomes; and a small sequential-access device.

// sgDisk is an emulated disk as the SG backend presents a real disk: the
// transport does not know how much a CDB wanted (no Wanted), the path's
// transfer limit may be smaller than the disk's own, a buffer that is
// not exactly a block command's transfer ends in a host error (the HBA's
// data overrun or underrun), and transfers beyond the path are refused
// before they are sent (sgio.ErrTooLarge). It records every request, and
// inject may answer a request in the disk's place.
type sgDisk struct {
	*emul.Disk
	path int // the path's transfer limit in bytes (0: the disk's)

	mu       sync.Mutex
	reqs     []sgio.Request // copies of the CDB and the lengths
	inject   func(req *sgio.Request, res *sgio.Result) bool
	patchOut func(req *sgio.Request, res *sgio.Result)
}

func newSGDisk(t testing.TB, blocks int64, diskMax, path int) *sgDisk {
	t.Helper()
	d, err := emul.New(emul.Config{SizeBytes: blocks * 512, BlockSize: 512, Serial: "SGDISK01", MaxTransferBytes: diskMax})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &sgDisk{Disk: d, path: path}
}

func (s *sgDisk) Limits() sgio.Limits {
	l := s.Disk.Limits()
	if s.path > 0 {
		l.MaxTransferBytes = s.path
	}
	return l
}

func (s *sgDisk) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	s.mu.Lock()
	rec := *req
	rec.CDB = append([]byte(nil), req.CDB...)
	s.reqs = append(s.reqs, rec)
	inject, patch := s.inject, s.patchOut
	s.mu.Unlock()
	*res = sgio.Result{}
	if inject != nil && inject(req, res) {
		return nil
	}
	if n := len(req.Data); n > s.Limits().MaxTransferBytes {
		return &sgio.OpError{Op: "submit", Path: "/dev/sg-test", Err: sgio.ErrTooLarge}
	}
	if r, err := scsi.DecodeRW(req.CDB); err == nil && r.DataBlocks() > 0 && uint64(len(req.Data)) != r.DataBlocks()*512 {
		// The HBA sees the device move more or less than the buffer.
		res.HostStatus = scsi.HostError
		return nil
	}
	if err := s.Disk.Execute(ctx, req, res); err != nil {
		return err
	}
	res.Wanted = 0
	if patch != nil {
		patch(req, res)
	}
	return nil
}

// sent returns the requests the disk got since the last call.
func (s *sgDisk) sent() []sgio.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// setInject sets inject under the lock.
func (s *sgDisk) setInject(f func(req *sgio.Request, res *sgio.Result) bool) {
	s.mu.Lock()
	s.inject = f
	s.mu.Unlock()
}

// setPatch sets patchOut under the lock.
func (s *sgDisk) setPatch(f func(req *sgio.Request, res *sgio.Result)) {
	s.mu.Lock()
	s.patchOut = f
	s.mu.Unlock()
}

// tapeDev is a small sequential-access device (SSC-4) over records in
// memory: variable or fixed blocks, filemarks, REWIND, SPACE, READ and
// WRITE(6), READ BLOCK LIMITS, MODE SENSE/SELECT(6) with a block
// descriptor. Its sense data is fixed-format, as a tape drive's is.
type tapeDev struct {
	mu       sync.Mutex
	recs     [][]byte // nil: a filemark
	pos      int
	fixed    uint32 // block length in fixed-block mode; 0 variable
	max      int    // the path's transfer limit
	timeouts map[scsi.Opcode]time.Duration
}

func newTape(max int) *tapeDev {
	return &tapeDev{max: max, timeouts: map[scsi.Opcode]time.Duration{}}
}

func (d *tapeDev) Limits() sgio.Limits { return sgio.Limits{MaxTransferBytes: d.max, QueueDepth: 1} }
func (d *tapeDev) Close() error        { return nil }

func (d *tapeDev) Execute(_ context.Context, req *sgio.Request, res *sgio.Result) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	*res = sgio.Result{}
	c := req.CDB
	op := scsi.Opcode(c[0])
	d.timeouts[op] = req.Timeout
	if len(req.Data) > d.max {
		return sgio.ErrTooLarge
	}
	fail := func(s scsi.Sense) {
		res.Status = scsi.CheckCondition
		res.Sense = s.AppendFixed(nil)
	}
	in := func(b []byte) {
		n := copy(req.Data, b)
		res.Resid = len(req.Data) - n
	}
	length := func() int { return int(c[2])<<16 | int(binary.BigEndian.Uint16(c[3:5])) }
	switch op {
	case scsi.OpTestUnitReady, scsi.OpRewind:
		if op == scsi.OpRewind {
			d.pos = 0
		}
	case scsi.OpInquiry:
		b := make([]byte, 36)
		b[0], b[1], b[2], b[3], b[4] = byte(scsi.TypeTape), 0x80, 6, 2, 31
		copy(b[8:], "TESTTAPE")
		copy(b[16:], "SMALL TAPE      ")
		copy(b[32:], "0001")
		if c[1]&1 != 0 {
			fail(scsi.FieldPointerSense(scsi.ASCInvalidFieldInCDB, true, 2, -1))
			return nil
		}
		in(b[:min(len(b), int(binary.BigEndian.Uint16(c[3:5])))])
	case scsi.OpReadBlockLimits:
		in([]byte{0, 0xff, 0xff, 0xff, 0, 1})
	case scsi.OpModeSense6:
		b := []byte{11, 0, 0, 8, 0, 0, 0, 0, 0, byte(d.fixed >> 16), byte(d.fixed >> 8), byte(d.fixed)}
		in(b[:min(len(b), int(c[4]))])
	case scsi.OpModeSelect6:
		p := req.Data
		if len(p) >= 12 && p[3] == 8 {
			d.fixed = uint32(p[9])<<16 | uint32(p[10])<<8 | uint32(p[11])
		}
	case scsi.OpWrite6:
		n := length()
		if c[1]&1 != 0 {
			n *= int(d.fixed)
		}
		d.recs = append(d.recs[:d.pos], append([]byte(nil), req.Data[:min(n, len(req.Data))]...))
		d.pos++
	case scsi.OpWriteFilemarks6:
		for range length() {
			d.recs = append(d.recs[:d.pos], nil)
			d.pos++
		}
	case scsi.OpRead6:
		want := length()
		if d.pos >= len(d.recs) {
			s := scsi.NewSense(scsi.SenseBlankCheck, scsi.NewASC(0x00, 0x05)) // END-OF-DATA DETECTED
			s.EOM, s.InfoValid, s.Info = true, true, uint64(want)
			fail(s)
			res.Resid = len(req.Data)
			return nil
		}
		rec := d.recs[d.pos]
		d.pos++
		if rec == nil {
			s := scsi.NewSense(scsi.SenseNoSense, scsi.NewASC(0x00, 0x01)) // FILEMARK DETECTED
			s.Filemark, s.InfoValid, s.Info = true, true, uint64(want)
			fail(s)
			res.Resid = len(req.Data)
			return nil
		}
		in(rec[:min(len(rec), want)])
		if c[1]&1 == 0 && len(rec) != want {
			// Variable block of another length: ILI, INFORMATION the
			// requested minus the actual length (negative when longer).
			s := scsi.NewSense(scsi.SenseNoSense, scsi.ASCNoAdditionalSense)
			s.ILI, s.InfoValid, s.Info = true, true, uint64(uint32(int32(want-len(rec))))
			fail(s)
		}
	default:
		fail(scsi.NewSense(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode))
	}
	return nil
}
