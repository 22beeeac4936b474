// Package emul is an emulated SBC-3 direct-access block device (a disk)
// backed by memory or a file, implementing [sgio.Device].
//
// The disk answers the commands an initiator needs to use it as a disk
// (SPC-4 and SBC-3): INQUIRY with the Supported VPD Pages, Unit Serial
// Number, Device Identification, Block Limits, Block Device
// Characteristics and Logical Block Provisioning pages; READ CAPACITY
// (10) and (16); READ, WRITE, WRITE AND VERIFY and VERIFY in their 6, 10,
// 12 and 16-byte forms as applicable; PRE-FETCH and SYNCHRONIZE CACHE (10)
// and (16); WRITE SAME (10) and (16) with UNMAP, UNMAP and GET LBA STATUS
// (thin provisioning); MODE SENSE (6) and (10) with the Caching and
// Control pages; REQUEST SENSE, TEST UNIT READY, START STOP UNIT, PREVENT
// ALLOW MEDIUM REMOVAL, REPORT LUNS and REPORT SUPPORTED OPERATION CODES,
// whose CDB usage data are the very masks the disk validates CDBs with.
// Anything else is INVALID COMMAND OPERATION CODE.
//
// Errors are SCSI data: CHECK CONDITION with fixed-format sense (the
// Control mode page reports D_SENSE=0), INVALID FIELD IN CDB carrying a
// field pointer to the offending bit. A [sgio.Result] reports the
// residual against the request's buffer (Resid) and how many bytes the CDB
// itself asked to move (Wanted), so that a transport can report residual
// overflow. When the buffer is smaller than the CDB's transfer, reads fill
// the buffer and writes store only the whole blocks that fit.
//
// Memory disks are sparse: 64 KiB chunks are allocated on first write and
// released by UNMAP, so a large memory disk costs nothing until written.
// File-backed disks use pread/pwrite, punch holes for UNMAP and report
// holes through GET LBA STATUS (Linux SEEK_DATA/SEEK_HOLE).
package emul

import (
	"context"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Disk is an emulated SBC-3 disk. It is safe for concurrent use.
type Disk struct {
	cfg      Config
	log      zerolog.Logger
	st       store
	bs       int    // logical block size
	shift    uint   // log2(bs)
	blocks   uint64 // capacity in logical blocks
	maxXfer  uint32 // MAXIMUM TRANSFER LENGTH in blocks
	thin     bool
	readOnly bool
	wce      bool // write-back cache (WCE in the caching mode page)

	cmds    [256]*command
	saIn    [32]*command // SERVICE ACTION IN(16) by service action
	maintIn [32]*command // MAINTENANCE IN by service action
	ordered []*command   // every command, by opcode and service action

	stdInquiry []byte
	vpd        []vpdPage

	// stopped is set by START STOP UNIT with START=0.
	stopped atomic.Bool

	// mu is held for reading by every command in flight, and for writing
	// by Close and by COMPARE AND WRITE, which is thereby atomic with
	// respect to every other command (SBC-3 5.2).
	mu     sync.RWMutex
	closed bool
}

// New creates a disk as cfg describes. A file-backed disk holds its file
// open until Close.
func New(cfg Config) (*Disk, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	d := &Disk{
		cfg:      cfg,
		log:      cfg.Logger,
		bs:       cfg.BlockSize,
		shift:    uint(bits.TrailingZeros(uint(cfg.BlockSize))),
		thin:     !cfg.FullyProvisioned,
		readOnly: cfg.ReadOnly,
		maxXfer:  uint32(min(cfg.MaxTransferBytes/cfg.BlockSize, 0xffffffff)),
	}
	size := cfg.SizeBytes
	if cfg.File == "" {
		d.st = newMemStore(size)
	} else {
		fs, got, err := openFileStore(cfg.File, size, cfg.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("emul: backing file: %w", err)
		}
		d.st = fs
		size = got
	}
	d.blocks = uint64(size) >> d.shift
	if d.blocks == 0 {
		d.st.Close()
		return nil, fmt.Errorf("%w: capacity of %d bytes holds no %d-byte block", ErrConfig, size, d.bs)
	}
	d.cfg.SizeBytes = int64(d.blocks) << d.shift
	d.wce = d.st.VolatileCache()
	d.buildCommands()
	d.buildInquiry()
	return d, nil
}

// Blocks returns the capacity in logical blocks.
func (d *Disk) Blocks() uint64 { return d.blocks }

// BlockSize returns the logical block size in bytes.
func (d *Disk) BlockSize() int { return d.bs }

// Serial returns the unit serial number (VPD page 80h).
func (d *Disk) Serial() string { return d.cfg.Serial }

// NAA returns the logical unit's NAA designator (VPD page 83h).
func (d *Disk) NAA() []byte { return append([]byte(nil), d.cfg.NAA...) }

// AllocatedBytes returns how much memory a memory disk has allocated for
// data, or -1 for a file-backed disk.
func (d *Disk) AllocatedBytes() int64 {
	if m, ok := d.st.(*memStore); ok {
		return m.allocated.Load() * chunkSize
	}
	return -1
}

// NonBlocking implements sgio.NonBlocker: a memory disk's commands
// copy memory and take only locks held for such copies; a file-backed
// disk's wait for the file.
func (d *Disk) NonBlocking() bool {
	_, ok := d.st.(*memStore)
	return ok
}

// Limits returns the configured transfer limits.
func (d *Disk) Limits() sgio.Limits {
	return sgio.Limits{MaxTransferBytes: int(d.maxXfer) << d.shift, QueueDepth: d.cfg.QueueDepth}
}

// Close waits for commands in flight, then releases the backing file.
// Later commands fail with sgio.ErrClosed.
func (d *Disk) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var err error
	if d.wce && !d.readOnly {
		err = d.st.Sync()
	}
	if cerr := d.st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("emul: close: %w", err)
	}
	return nil
}

// Do executes one command; see [Disk.Execute]. It allocates the Result;
// callers on a hot path use Execute with a Result they reuse.
func (d *Disk) Do(ctx context.Context, req *sgio.Request) (*sgio.Result, error) {
	res := new(sgio.Result)
	if err := d.Execute(ctx, req, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Execute executes req and stores the outcome in res, which it resets
// first. Data-in commands fill req.Data (req.ReadData for DirBidi);
// data-out commands read req.Data. The direction field itself is not
// checked: the CDB decides. A successful READ or WRITE allocates nothing.
//
// res.Resid is the part of the buffer that did not move. res.Wanted is
// how many bytes the command itself would have moved with a large enough
// buffer (the transfer length in bytes, or for data-in commands with an
// allocation length the response cut to it). A transport reports a
// residual overflow of Wanted-len(buffer) when Wanted exceeds the buffer,
// else an underflow of Resid. A buffer shorter than the transfer moves
// what fits: a partial read, or the whole blocks that fit for a write.
//
// The error is non-nil only when the command was not executed: an empty
// or oversized CDB (sgio.ErrBadRequest), a done ctx, or a closed disk
// (sgio.ErrClosed). Everything else, including I/O errors of the backing
// file (MEDIUM ERROR), is a SCSI status in res.
func (d *Disk) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	*res = sgio.Result{}
	if req == nil || len(req.CDB) == 0 || len(req.CDB) > scsi.MaxCDBLen {
		return fmt.Errorf("%w: CDB of %d bytes", sgio.ErrBadRequest, reqCDBLen(req))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if scsi.Opcode(req.CDB[0]) == scsi.OpCompareAndWrite {
		d.mu.Lock()
		defer d.mu.Unlock()
	} else {
		d.mu.RLock()
		defer d.mu.RUnlock()
	}
	if d.closed {
		return sgio.ErrClosed
	}
	start := time.Now()
	x := exchange{d: d, cdb: req.CDB, out: req.Data, in: req.Data, res: res}
	if req.Dir == sgio.DirBidi {
		x.in = req.ReadData
	}
	d.dispatch(&x)
	if x.dataIn {
		res.Resid = len(x.in) - x.n
	} else {
		res.Resid = len(x.out) - x.n
	}
	res.Duration = time.Since(start)
	return nil
}

func reqCDBLen(req *sgio.Request) int {
	if req == nil {
		return 0
	}
	return len(req.CDB)
}

// exchange is one command in progress.
type exchange struct {
	d      *Disk
	cdb    []byte // trimmed to the command's length by dispatch
	in     []byte // data-in buffer
	out    []byte // data-out buffer
	res    *sgio.Result
	dataIn bool // the command moves data to the initiator
	n      int  // bytes moved through the buffer
}

// fail ends the command with CHECK CONDITION and s (fixed format: the
// Control mode page reports D_SENSE=0).
func (x *exchange) fail(s scsi.Sense) {
	x.res.Status = scsi.CheckCondition
	s.Descriptor = false
	x.res.Sense = s.AppendFixed(make([]byte, 0, scsi.FixedSenseLen))
}

// failKey ends the command with CHECK CONDITION, key and asc.
func (x *exchange) failKey(key scsi.SenseKey, asc scsi.ASC) { x.fail(scsi.NewSense(key, asc)) }

// invalidField ends the command with INVALID FIELD IN CDB pointing at byte
// off, bit (bit < 0: whole byte).
func (x *exchange) invalidField(off, bit int) {
	x.fail(scsi.FieldPointerSense(scsi.ASCInvalidFieldInCDB, true, off, bit))
}

// invalidParam ends the command with INVALID FIELD IN PARAMETER LIST
// pointing at byte off of the parameter list.
func (x *exchange) invalidParam(off, bit int) {
	x.fail(scsi.FieldPointerSense(scsi.ASCInvalidFieldInParamList, false, off, bit))
}

// lbaOutOfRange ends the command with LOGICAL BLOCK ADDRESS OUT OF RANGE.
func (x *exchange) lbaOutOfRange() { x.failKey(scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange) }

// writeProtected ends the command with DATA PROTECT, WRITE PROTECTED.
func (x *exchange) writeProtected() { x.failKey(scsi.SenseDataProtect, scsi.ASCWriteProtected) }

// sendIn returns data (already cut to the allocation length) as data-in:
// what fits in the buffer moves, and Wanted records the full length.
func (x *exchange) sendIn(data []byte) {
	x.dataIn = true
	x.n = copy(x.in, data)
	x.res.Wanted = len(data)
}

// ioError ends the command with MEDIUM ERROR after a backing store error.
func (x *exchange) ioError(op string, lba, n uint64, err error) {
	x.d.log.Error().Err(err).Str("op", op).Uint64("lba", lba).Uint64("blocks", n).Msg("emulated disk I/O error")
	asc := scsi.ASCUnrecoveredReadError
	if op != "read" {
		asc = scsi.ASCWriteError
	}
	s := scsi.NewSense(scsi.SenseMediumError, asc)
	s.InfoValid, s.Info = true, lba
	x.fail(s)
}

// inRange reports whether n blocks from lba lie inside the capacity.
func (d *Disk) inRange(lba, n uint64) bool { return lba <= d.blocks && n <= d.blocks-lba }

// dispatch looks the command up, validates its CDB against the command's
// usage data, and runs its handler.
func (d *Disk) dispatch(x *exchange) {
	op := scsi.Opcode(x.cdb[0])
	cmd := d.cmds[op]
	if cmd == nil {
		x.failKey(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
		return
	}
	if cmd.saTable != nil {
		if len(x.cdb) < 2 {
			x.invalidField(0, -1)
			return
		}
		cmd = cmd.saTable[x.cdb[1]&0x1f]
		if cmd == nil {
			// SPC-4: an unsupported service action is an invalid field
			// (the SERVICE ACTION field, byte 1 bits 4-0).
			x.invalidField(1, 4)
			return
		}
	}
	if len(x.cdb) < len(cmd.usage) {
		x.invalidField(0, -1)
		return
	}
	x.cdb = x.cdb[:len(cmd.usage)]
	last := len(x.cdb) - 1
	for i := 1; i < last; i++ {
		if bad := x.cdb[i] &^ cmd.mask[i]; bad != 0 {
			x.invalidField(i, bits.Len8(bad)-1)
			return
		}
	}
	// CONTROL byte: NACA=1 asks for ACA, which the disk does not do
	// (NORMACA=0 in the standard INQUIRY data; SAM-5 5.9.1.3); vendor
	// specific and obsolete bits are not used.
	if bad := x.cdb[last]; bad != 0 {
		x.invalidField(last, bits.Len8(bad)-1)
		return
	}
	if cmd.medium && d.stopped.Load() {
		x.failKey(scsi.SenseNotReady, scsi.ASCNotReadyInitCommandRequired)
		return
	}
	switch cmd.h {
	case hTestUnitReady:
	case hRequestSense:
		d.requestSense(x)
	case hInquiry:
		d.inquiry(x)
	case hModeSense:
		d.modeSense(x)
	case hStartStop:
		d.startStop(x)
	case hPreventAllow:
		d.preventAllow(x)
	case hReadCapacity10:
		d.readCapacity10(x)
	case hReadCapacity16:
		d.readCapacity16(x)
	case hRW:
		d.rw(x)
	case hWriteSame:
		d.writeSame(x)
	case hCompareAndWrite:
		d.compareAndWrite(x)
	case hUnmap:
		d.unmap(x)
	case hGetLBAStatus:
		d.getLBAStatus(x)
	case hReportLUNs:
		d.reportLUNs(x)
	case hReportOpcodes:
		d.reportOpcodes(x)
	}
}
