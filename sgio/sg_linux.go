//go:build linux

package sgio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// SG is a SCSI device reached through the Linux sg driver. It implements
// [Device].
//
// Commands are queued with the sg driver's asynchronous interface: a
// write() of an sg_io_hdr queues a command on a descriptor and a read()
// returns whichever command completed, identified by its pack_id. The
// submitting goroutine first tries a non-blocking read() itself (fast
// devices complete the command before write() returns); commands still
// running are collected by one reaper goroutine per device, which waits
// in poll(2) on all of the device's descriptors, so the commands in
// flight cost one OS thread per device, not one per command. The
// descriptors are deliberately not in the Go netpoller, whose epoll
// would wake an idle thread on every completion. The driver accepts at
// most [MaxQueuePerFD] commands per descriptor (one more write() fails
// with EDOM), so an SG opens ceil(depth/16) descriptors and hands out at
// most 16 slots per descriptor; a caller beyond the queue depth waits for
// a free slot.
//
// A command submitted while nothing else is in flight is waited for by
// its submitter in a short, bounded ppoll(2) instead (the polled path,
// see [WithPollWindow]): at queue depth 1 that saves the hand-off to the
// reaper on every command.
//
// A lone data-in command runs on a descriptor of its own, the solo
// descriptor, whose sg reserved buffer is mapped into the process (see
// [WithSolo]): the data is copied once, from there into the caller's
// buffer.
//
// A cancelled context returns from Do at once, but the command stays
// with the kernel: its slot, with the sense buffer and the data-in
// buffer the kernel will write into, is kept until the reaper collects
// the completion and only then reused. Data-in travels through a slot
// buffer (or the solo descriptor's mapped buffer) whenever the context
// can be cancelled, so the caller's buffer is never written after Do
// returned. (With a context that can never be cancelled, Do cannot
// return early and the kernel fills the caller's buffer directly.)
type SG struct {
	opts   sgOptions
	log    zerolog.Logger
	limits Limits
	info   Info

	files       []*sgFile
	free        chan *sgSlot           // free slots (see takeSlot)
	spare       atomic.Pointer[sgSlot] // one free slot outside free, taken first
	waiters     atomic.Int32           // Do calls waiting on free
	timeoutMS   uint32                 // the default timeout, in sg_io_hdr's unit
	solo        *sgSlot                // the lone data-in slot on its own descriptor (nil: none); see openSolo
	soloBusy    atomic.Bool            // solo is taken
	soloLent    atomic.Bool            // solo's buffer is lent (ExecuteLent)
	soloRelease func()                 // returns a lent solo buffer
	async       bool                   // write()/read() with a reaper (else one blocking call per command)
	sgNode      bool                   // the node is an sg device (not a block device)

	// The asynchronous interface.
	pending    atomic.Int32  // commands written and not yet read back
	pollSkip   atomic.Int32  // lone commands to submit unpolled before polling again
	pollMiss   atomic.Int32  // consecutive polled commands that missed the window
	polls      atomic.Int64  // polled commands
	pollMissed atomic.Int64  // polled commands that missed the window
	kick       chan struct{} // wakes the reaper when a command did not complete inline
	wakefd     int           // eventfd in the reaper's poll set, for Close
	reaped     chan struct{} // closed when the reaper exits

	// ops counts the Do calls in progress and the abandoned commands
	// still in the kernel; opsClosed is set in it by Close, after which
	// no Do gets in. drained is closed when both hold: closed and none.
	ops       atomic.Int64
	drainOnce sync.Once
	drained   chan struct{}
	closing   chan struct{}
	stopped   chan struct{} // closed by Close once nothing is in flight

	closeOnce sync.Once
	closeErr  error
}

// sgFile is one open descriptor and its slots. The SG guarantees the
// descriptor stays open while a command or a call may use it: Close
// waits for every Do and every command in flight first.
type sgFile struct {
	fd    int
	slots []*sgSlot
}

// Slot states.
const (
	slotFree      uint32 = iota // in the free list or being filled
	slotWaited                  // submitted; Do waits for it
	slotAbandoned               // submitted; Do gave up, the reaper releases it
	slotDone                    // completed, and a token sent on done; Do collects it
	slotCollected               // completed and read back by its own Do (no token)
)

// sgSlot is one command's worth of memory shared with the kernel. It
// lives on the heap for the whole life of the SG; the kernel holds
// addresses into cdb (during write only), sense and kbuf.
type sgSlot struct {
	hdr    sgIOHdr
	cdb    [sgMaxCDB]byte
	sense  [senseBufferLen]byte
	file   *sgFile
	index  uint32
	gen    uint32
	kbuf   []byte // data-in buffer the kernel will write into, held until harvest
	bounce []byte // slot-owned data-in buffer
	mapped []byte // the descriptor's reserved buffer, mapped (the solo slot only)
	state  atomic.Uint32
	done   chan struct{}     // capacity 1: completion signal to Do
	rbuf   [sgIOHdrSize]byte // completion image read by this slot's Do (no Go pointers)
	pfd    unix.PollFd       // the polled path's ppoll arguments (kept off the stack)
	pts    unix.Timespec

	// Written by the reaper before the state leaves slotWaited.
	out sgOutput
	err error
}

// maxKeptBounce is the largest bounce buffer a slot keeps between commands.
const maxKeptBounce = 256 << 10

// Open opens a SCSI device through the sg driver. path is an sg node
// (/dev/sgN), or a block or bsg node, which is mapped through sysfs to
// its sg node; a block node without an sg node (sg module not loaded)
// is driven with blocking SG_IO ioctls. Symlinks such as
// /dev/disk/by-id/... are followed.
func Open(path string, opts ...Option) (*SG, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, &OpError{Op: "open", Path: path, Err: err}
	}
	node, isSG, err := resolveNode(path, o.sysfsRoot)
	if err != nil {
		return nil, err
	}
	s := &SG{
		opts:    o,
		log:     o.log.With().Str("device", node).Logger(),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		drained: make(chan struct{}),
		async:   isSG && !o.syncIO,
		sgNode:  isSG,
	}
	s.timeoutMS = timeoutMillis(o.timeout)
	nfd := 1
	if isSG {
		nfd = (o.depth + MaxQueuePerFD - 1) / MaxQueuePerFD
	}
	for i := 0; i < nfd; i++ {
		fd, err := s.openNode(node)
		if err != nil {
			s.closeFiles()
			return nil, err
		}
		s.files = append(s.files, &sgFile{fd: fd})
	}
	if err := s.readInfo(node, isSG); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.info.Path = path
	s.info.SGPath = node
	s.info.Async = s.async
	s.info.Descriptors = len(s.files)
	s.info.Polled = s.async && o.poll > 0 && s.info.HostCanQueue >= MinPollCanQueue
	s.limits = limitsFrom(&s.info, o.depth)

	// Slots, interleaved across descriptors so that consecutive commands
	// use different descriptors.
	perFD := (o.depth + len(s.files) - 1) / len(s.files)
	s.free = make(chan *sgSlot, o.depth)
	for i := 0; i < perFD; i++ {
		for _, sf := range s.files {
			if len(s.free) == o.depth {
				break
			}
			sl := &sgSlot{file: sf, index: uint32(len(sf.slots)), done: make(chan struct{}, 1)}
			sf.slots = append(sf.slots, sl)
			s.free <- sl
		}
	}
	if s.async && o.solo {
		s.openSolo(node)
		s.info.Descriptors = len(s.files)
	}
	if s.async {
		wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			s.closeFiles()
			return nil, &OpError{Op: "eventfd", Path: node, Err: err}
		}
		s.wakefd = wfd
		s.kick = make(chan struct{}, 1)
		s.reaped = make(chan struct{})
		go s.reap()
	}
	s.log.Debug().Int("descriptors", len(s.files)).Bool("async", s.async).Bool("polled", s.info.Polled).
		Int("max_transfer", s.limits.MaxTransferBytes).Int("max_segments", s.limits.MaxSegments).
		Int("queue_depth", s.limits.QueueDepth).Msg("sg device open")
	return s, nil
}

// timeoutMillis converts a command timeout for sg_io_hdr: whole
// milliseconds, at least 1 and below "no timeout".
func timeoutMillis(d time.Duration) uint32 {
	return uint32(min(max(d.Milliseconds(), 1), maxTimeoutMillisec))
}

// soloReserve is the reserved buffer size the solo descriptor asks for:
// lone data-in commands up to this size (and the device's transfer
// limit) use it.
const soloReserve = 256 << 10

// openSolo sets up the solo slot: a descriptor of its own whose sg
// reserved buffer is mapped into the process (SG_FLAG_MMAP_IO). A
// data-in command submitted while nothing else is in flight runs there:
// the device's data stays in the reserved buffer and is copied once,
// into the caller's buffer, when Do collects the completion. The normal
// path costs two copies when the context can be cancelled (the kernel's
// into a bounce buffer, then the bounce buffer's) and one otherwise;
// and, as with the bounce buffer, an abandoned command can only write
// into memory the SG owns. Only the solo slot uses the descriptor, so
// the reserved buffer is never taken by another command. Failing to set
// it up (no memory for the reserved buffer, no mmap) is not an error:
// lone commands then take the normal path.
func (s *SG) openSolo(node string) {
	fd, err := s.openNode(node)
	if err != nil {
		s.log.Debug().Err(err).Msg("no solo descriptor")
		return
	}
	want := min(soloReserve, s.limits.MaxTransferBytes)
	if want > 0 {
		// Best effort: the driver may keep a smaller buffer.
		_ = unix.IoctlSetPointerInt(fd, sgSetReservedSize, want)
	}
	size, err := unix.IoctlGetInt(fd, sgGetReservedSize)
	if err == nil && size < os.Getpagesize() {
		err = fmt.Errorf("reserved buffer of %d bytes", size)
	}
	var m []byte
	if err == nil {
		m, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	}
	if err != nil {
		unix.Close(fd)
		s.log.Debug().Err(err).Msg("no solo descriptor: its reserved buffer cannot be mapped")
		return
	}
	sf := &sgFile{fd: fd}
	s.solo = &sgSlot{file: sf, done: make(chan struct{}, 1), mapped: m}
	s.soloRelease = func() {
		if !s.soloLent.CompareAndSwap(true, false) {
			panic("sgio: lent buffer released twice")
		}
		s.release(s.solo)
		s.exit()
	}
	sf.slots = []*sgSlot{s.solo}
	s.files = append(s.files, sf)
	s.info.MappedReserve = len(m)
}

// openNode opens one descriptor: non-blocking for the asynchronous
// interface; blocking otherwise, with forced pack_id matching on sg
// nodes so that each read() returns its own command.
func (s *SG) openNode(node string) (int, error) {
	// Opened non-blocking in any case: sg_open would otherwise wait for
	// another process's O_EXCL.
	fd, err := unix.Open(node, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &OpError{Op: "open", Path: node, Err: classifyErrno(err, false)}
	}
	if s.async {
		return fd, nil
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return -1, &OpError{Op: "fcntl", Path: node, Err: err}
	}
	if s.sgNode {
		if err := unix.IoctlSetPointerInt(fd, sgSetForcePackID, 1); err != nil {
			unix.Close(fd)
			return -1, &OpError{Op: "ioctl SG_SET_FORCE_PACK_ID", Path: node, Err: classifyErrno(err, false)}
		}
	}
	return fd, nil
}

// resolveNode maps path to the node to open and reports whether that
// node is an sg character device.
func resolveNode(path, sysfs string) (string, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", false, &OpError{Op: "open", Path: path, Err: classifyErrno(err, false)}
	}
	major, minor := unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if major == scsiGenericMajor {
			return path, true, nil
		}
		if sg := sgForDev(sysfs, "char", major, minor); sg != "" {
			return sg, true, nil
		}
		return "", false, &OpError{Op: "open", Path: path,
			Err: fmt.Errorf("%w: character device %d:%d is not a SCSI generic or bsg node", errors.ErrUnsupported, major, minor)}
	case unix.S_IFBLK:
		base := filepath.Join(sysfs, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
		if _, err := os.Stat(filepath.Join(base, "partition")); err == nil {
			return "", false, &OpError{Op: "open", Path: path,
				Err: fmt.Errorf("%w: %s is a partition, not a SCSI device", ErrBadRequest, path)}
		}
		if sg := sgForDev(sysfs, "block", major, minor); sg != "" {
			return sg, true, nil
		}
		return path, false, nil
	}
	return "", false, &OpError{Op: "open", Path: path,
		Err: fmt.Errorf("%w: not a device node", errors.ErrUnsupported)}
}

// sgForDev finds the sg node of the SCSI device behind a char or block
// device number through /sys/dev/{char,block}/M:m/device/scsi_generic.
func sgForDev(sysfs, kind string, major, minor uint32) string {
	dir := filepath.Join(sysfs, "dev", kind, fmt.Sprintf("%d:%d", major, minor), "device", "scsi_generic")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return ""
	}
	node := filepath.Join("/dev", ents[0].Name())
	var st unix.Stat_t
	if unix.Stat(node, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return ""
	}
	return node
}

// readInfo queries the driver and sysfs for the device's properties.
func (s *SG) readInfo(node string, isSG bool) error {
	fd := s.files[0].fd
	version, err := unix.IoctlGetInt(fd, sgGetVersionNum)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w: not a SCSI device (%w)", errors.ErrUnsupported, err)
		} else {
			err = classifyErrno(err, false)
		}
		return &OpError{Op: "ioctl SG_GET_VERSION_NUM", Path: node, Err: err}
	}
	if version < sgMinVersion {
		return &OpError{Op: "ioctl SG_GET_VERSION_NUM", Path: node,
			Err: fmt.Errorf("%w: sg driver version %d lacks the v3 interface", errors.ErrUnsupported, version)}
	}
	s.info.Version = version
	// The rest is best effort: what is unknown stays zero.
	if v, err := unix.IoctlGetInt(fd, sgGetReservedSize); err == nil {
		s.info.ReservedSize = v
	}
	if isSG {
		if v, err := unix.IoctlGetInt(fd, sgGetSGTablesize); err == nil {
			s.info.SGTableSize = v
		}
		// On sg, BLKSECTGET answers max_sectors in bytes (an int); on a
		// block device it would be an unsigned short of sectors.
		if v, err := unix.IoctlGetInt(fd, blkSectGet); err == nil {
			s.info.MaxSectorsBytes = v
		}
		var id sgScsiID
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), sgGetScsiID, uintptr(unsafe.Pointer(&id))); e == 0 {
			s.info.Address = HCTL{Host: int(id.hostNo), Channel: int(id.channel), Target: int(id.scsiID), LUN: uint64(uint32(id.lun))}
			s.info.PeripheralType = int(id.scsiType)
			s.info.DeviceQueueDepth = int(id.dQueueDepth)
			s.info.HostCanQueue = readSysfsInt(filepath.Join(s.opts.sysfsRoot, "class", "scsi_host",
				fmt.Sprintf("host%d", id.hostNo), "can_queue"))
		}
	}
	if q := s.queueDir(node, isSG); q != "" {
		s.info.MaxSectorsKB = readSysfsInt(filepath.Join(q, "max_sectors_kb"))
		s.info.MaxHWSectorsKB = readSysfsInt(filepath.Join(q, "max_hw_sectors_kb"))
		s.info.MaxSegments = readSysfsInt(filepath.Join(q, "max_segments"))
	}
	return nil
}

// queueDir returns /sys/block/X/queue for the device, or "" when it has
// no block node (tapes, changers, enclosures) or sysfs is not there.
func (s *SG) queueDir(node string, isSG bool) string {
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		return ""
	}
	major, minor := unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	dev := fmt.Sprintf("%d:%d", major, minor)
	if !isSG {
		q := filepath.Join(s.opts.sysfsRoot, "dev", "block", dev, "queue")
		if _, err := os.Stat(q); err == nil {
			return q
		}
		return ""
	}
	ents, err := os.ReadDir(filepath.Join(s.opts.sysfsRoot, "dev", "char", dev, "device", "block"))
	if err != nil || len(ents) == 0 {
		return ""
	}
	return filepath.Join(s.opts.sysfsRoot, "class", "block", ents[0].Name(), "queue")
}

func readSysfsInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// limitsFrom derives the transfer limits: the smallest of the queue's
// max_sectors (BLKSECTGET and sysfs), max_hw_sectors, and one page per
// scatter-gather segment (the sg driver maps data-in/out through its own
// pages, at least one page per segment).
func limitsFrom(in *Info, depth int) Limits {
	minPos := func(vals ...int) int {
		m := 0
		for _, v := range vals {
			if v > 0 && (m == 0 || v < m) {
				m = v
			}
		}
		return m
	}
	segs := minPos(in.SGTableSize, in.MaxSegments)
	max := minPos(in.MaxSectorsBytes, in.MaxSectorsKB*1024, in.MaxHWSectorsKB*1024, segs*os.Getpagesize())
	if max == 0 {
		max = minPos(in.ReservedSize, 64*1024)
	}
	return Limits{MaxTransferBytes: max, MaxSegments: segs, QueueDepth: depth}
}

// Limits returns the device's transfer limits.
func (s *SG) Limits() Limits { return s.limits }

// Info returns what the driver reported about the device at Open.
func (s *SG) Info() Info { return s.info }

// Do executes one request and returns its Result; see Execute.
func (s *SG) Do(ctx context.Context, req *Request) (*Result, error) {
	res := new(Result)
	if err := s.Execute(ctx, req, res); err != nil {
		if res.HostStatus == 0 && res.DriverStatus == 0 {
			return nil, err // no outcome from the kernel
		}
		return res, err
	}
	return res, nil
}

// Execute executes one request and stores its outcome in res, which it
// resets first. SCSI outcomes (CHECK CONDITION, BUSY, ...) are data in
// res. The error is non-nil when the command could not be queued
// (ErrQueueFull, ErrBusy, ErrTooLarge, ErrBadRequest, ErrGone,
// ErrClosed), when ctx ended first (the command may still run on the
// device; its outcome is dropped), or when the kernel reports the
// outcome unknown: ErrTimeout (DID_TIME_OUT) and ErrGone
// (DID_NO_CONNECT) come with res as the kernel returned it.
func (s *SG) Execute(ctx context.Context, req *Request, res *Result) error {
	_, err := s.exec(ctx, req, res, false)
	return err
}

// ExecuteLent implements [Lender]: a data-in command that runs on the
// solo descriptor leaves its data in the descriptor's mapped reserved
// buffer and lends it; the solo descriptor serves no other command until
// release is called. Other commands are executed as by Execute, with
// data a prefix of req.Data.
func (s *SG) ExecuteLent(ctx context.Context, req *Request, res *Result) ([]byte, func(), error) {
	data, err := s.exec(ctx, req, res, true)
	if err != nil || req.Dir != DirFromDevice {
		return nil, nil, err
	}
	if data != nil {
		return data, s.soloRelease, nil
	}
	return req.Data[:res.Transferred(len(req.Data))], nil, nil
}

// exec executes req. With lend set, a data-in command on the solo slot
// keeps the slot and returns its data (the caller gives the slot back
// through s.soloRelease); otherwise the data is nil.
func (s *SG) exec(ctx context.Context, req *Request, res *Result, lend bool) ([]byte, error) {
	*res = Result{}
	if err := s.check(req); err != nil {
		return nil, &OpError{Op: "submit", Path: s.info.SGPath, Err: err}
	}
	if !s.enter() {
		return nil, &OpError{Op: "submit", Path: s.info.SGPath, Err: ErrClosed}
	}
	var sl *sgSlot
	if solo := s.solo; solo != nil && req.Dir == DirFromDevice && len(req.Data) > 0 && len(req.Data) <= len(solo.mapped) &&
		s.pending.Load() == 0 && s.soloBusy.CompareAndSwap(false, true) {
		sl = solo
	} else {
		var err error
		if sl, err = s.takeSlot(ctx); err != nil {
			s.exit()
			return nil, &OpError{Op: "submit", Path: s.info.SGPath, Err: err}
		}
	}
	done := ctx.Done()
	if done != nil {
		select {
		case <-done:
			s.release(sl)
			s.exit()
			return nil, &OpError{Op: "submit", Path: s.info.SGPath, Err: ctx.Err()}
		default:
		}
	}
	if s.async {
		return s.doAsync(ctx, done, sl, req, res, lend)
	}
	return nil, s.doSync(sl, req, res)
}

// takeSlot returns a free slot, waiting for one if need be. The last
// slot released while nobody waited is kept in s.spare, so that a lone
// command takes and returns its slot with two atomic swaps instead of
// two channel operations; a waiter registers in s.waiters before its
// last look at the spare, and release looks at s.waiters after setting
// the spare, so one of them sees the other (see release).
func (s *SG) takeSlot(ctx context.Context) (*sgSlot, error) {
	if sl := s.spare.Swap(nil); sl != nil {
		return sl, nil
	}
	select {
	case sl := <-s.free:
		return sl, nil
	default:
	}
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	if sl := s.spare.Swap(nil); sl != nil {
		return sl, nil
	}
	select {
	case sl := <-s.free:
		return sl, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closing:
		return nil, ErrClosed
	}
}

// check validates a request before it takes a slot.
func (s *SG) check(req *Request) error {
	if req == nil {
		return fmt.Errorf("%w: nil request", ErrBadRequest)
	}
	if n := len(req.CDB); n < 6 || n > sgMaxCDB {
		return fmt.Errorf("%w: CDB of %d bytes (the sg driver takes 6 to %d)", ErrBadRequest, n, sgMaxCDB)
	}
	switch req.Dir {
	case DirNone:
		if len(req.Data) != 0 {
			return fmt.Errorf("%w: %d data bytes with no data direction", ErrBadRequest, len(req.Data))
		}
	case DirToDevice, DirFromDevice:
	case DirBidi:
		return fmt.Errorf("%w: bidirectional commands are not supported by the sg v3 interface", ErrBadRequest)
	default:
		return fmt.Errorf("%w: unknown direction %v", ErrBadRequest, req.Dir)
	}
	if len(req.Data) > s.limits.MaxTransferBytes {
		return fmt.Errorf("%w: %d bytes, the device takes at most %d per command", ErrTooLarge, len(req.Data), s.limits.MaxTransferBytes)
	}
	if req.Timeout < 0 {
		return fmt.Errorf("%w: negative timeout", ErrBadRequest)
	}
	return nil
}

// fill prepares the slot's header for req. When bounce is set, data-in
// goes to the slot's own buffer; on the solo slot it stays in the mapped
// reserved buffer.
func (s *SG) fill(sl *sgSlot, req *Request, bounce bool) {
	h := &sl.hdr
	*h = sgIOHdr{interfaceID: sgInterfaceID, dxferDirection: sgDxferNone, flags: sgFlagQAtTail}
	n := copy(sl.cdb[:], req.CDB)
	h.cmdLen = uint8(n)
	h.cmdp = unsafe.Pointer(&sl.cdb[0])
	h.mxSbLen = senseBufferLen
	h.sbp = unsafe.Pointer(&sl.sense[0])
	h.timeout = s.timeoutMS
	if req.Timeout != 0 {
		h.timeout = timeoutMillis(req.Timeout)
	}
	h.packID = int32(sl.gen<<sgPackIDIndexBits | sl.index)
	if len(req.Data) == 0 {
		return
	}
	h.dxferLen = uint32(len(req.Data))
	switch req.Dir {
	case DirToDevice:
		h.dxferDirection = sgDxferToDev
		h.dxferp = unsafe.Pointer(&req.Data[0])
	case DirFromDevice:
		h.dxferDirection = sgDxferFromDev
		if sl.mapped != nil {
			// No dxferp: the driver leaves the data in its reserved
			// buffer, which is sl.mapped.
			h.flags |= sgFlagMmapIO
			sl.kbuf = sl.mapped[:len(req.Data)]
			return
		}
		if bounce {
			if cap(sl.bounce) < len(req.Data) {
				sl.bounce = make([]byte, len(req.Data))
			}
			sl.kbuf = sl.bounce[:len(req.Data)]
		} else {
			sl.kbuf = req.Data
		}
		h.dxferp = unsafe.Pointer(&sl.kbuf[0])
	}
}

// doAsync runs req on sl through the asynchronous interface; done is
// ctx.Done().
func (s *SG) doAsync(ctx context.Context, done <-chan struct{}, sl *sgSlot, req *Request, res *Result, lend bool) ([]byte, error) {
	bounce := done != nil && req.Dir == DirFromDevice
	s.fill(sl, req, bounce)
	bounce = bounce || sl.mapped != nil
	// Publish the slot to the reaper before the kernel can complete it.
	sl.state.Store(slotWaited)
	sf := sl.file
	polled := s.pending.Add(1) == 1 && s.pollNow()
	var n uintptr
	var errno syscall.Errno
	for {
		if polled {
			// Does not wait for the device; see WithPollWindow for
			// the one wait it can have, ruled out by MinPollCanQueue.
			n, _, errno = unix.RawSyscall(unix.SYS_WRITE, uintptr(sf.fd), uintptr(unsafe.Pointer(&sl.hdr)), uintptr(sgIOHdrSize))
		} else {
			n, _, errno = unix.Syscall(unix.SYS_WRITE, uintptr(sf.fd), uintptr(unsafe.Pointer(&sl.hdr)), uintptr(sgIOHdrSize))
		}
		if errno != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(req.Data)
	// The kernel copied the CDB and any data-out during write(); only
	// the sense and data-in buffers stay in use until the read().
	sl.hdr.cmdp = nil
	if req.Dir == DirToDevice {
		sl.hdr.dxferp = nil
	}
	if errno == 0 && int(n) != sgIOHdrSize {
		errno = unix.EIO
	}
	if errno != 0 {
		s.pending.Add(-1)
		s.release(sl)
		s.exit()
		return nil, &OpError{Op: "write", Path: s.info.SGPath, Err: classifyErrno(errno, len(req.Data) > 0)}
	}
	collected := false
	if polled {
		collected = s.poll(sl)
		s.pollDone(collected)
	}
	// Fast devices complete the command before write() returns: collect
	// it here. Otherwise the reaper waits for it in poll(2).
	if !collected && !s.harvest(sl) {
		select {
		case s.kick <- struct{}{}:
		default: // already kicked
		}
	}
	if sl.state.Load() != slotCollected {
		select {
		case <-sl.done:
		case <-done:
			if sl.state.CompareAndSwap(slotWaited, slotAbandoned) {
				// The kernel still holds the slot's buffers: the reaper
				// releases the slot (and the ops count) at completion.
				return nil, &OpError{Op: "wait", Path: s.info.SGPath, Err: ctx.Err()}
			}
			<-sl.done
		}
	}
	err := s.result(sl, "read", res)
	if bounce && sl.err == nil {
		// Only what the device sent: the rest of the slot's buffer
		// holds an earlier command's data.
		data := sl.kbuf[:res.Transferred(len(sl.kbuf))]
		if lend && err == nil && sl == s.solo {
			// Kept, with the ops count, until soloRelease.
			s.soloLent.Store(true)
			return data, nil
		}
		copy(req.Data, data)
	}
	s.release(sl)
	s.exit()
	return nil, err
}

// pollNow reports whether a lone command takes the polled path, and
// counts down the back-off after a miss.
func (s *SG) pollNow() bool {
	if !s.info.Polled {
		return false
	}
	if s.pollSkip.Load() > 0 {
		s.pollSkip.Add(-1)
		return false
	}
	return true
}

// pollDone records whether a polled command completed in the window:
// a hit ends the back-off, a miss doubles it.
func (s *SG) pollDone(hit bool) {
	s.polls.Add(1)
	if hit {
		if s.pollMiss.Load() != 0 {
			s.pollMiss.Store(0)
		}
		return
	}
	s.pollMissed.Add(1)
	m := min(s.pollMiss.Add(1), 11)
	s.pollSkip.Store(8 << m)
}

// poll waits, within the poll window, for sl's completion on its
// descriptor and collects it. It reports whether sl completed. The
// calls are raw system calls: the reads are non-blocking, and ppoll(2)
// sleeps at most the window (the kernel counts down the timespec
// across an EINTR retry).
func (s *SG) poll(sl *sgSlot) bool {
	// Mostly the completion is ready when write() returns: the softirq
	// that completes the command ran before it did.
	if s.harvest(sl) {
		return true
	}
	sl.pfd = unix.PollFd{Fd: int32(sl.file.fd), Events: unix.POLLIN}
	sl.pts = unix.NsecToTimespec(int64(s.opts.poll))
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&sl.pfd)), 1,
			uintptr(unsafe.Pointer(&sl.pts)), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0, r == 0: // an error, or the window is over
			return s.harvest(sl)
		case sl.pfd.Revents&unix.POLLIN == 0:
			// POLLHUP/POLLERR: the device is going away; the
			// reaper deals with it.
			return s.harvest(sl)
		}
		if s.harvest(sl) {
			return true
		}
		if sl.pts.Sec == 0 && sl.pts.Nsec == 0 {
			return false
		}
	}
}

// harvest collects, without blocking, the completions already waiting on
// mine's descriptor, until mine's own is among them or none is left. It
// reports whether mine completed.
func (s *SG) harvest(mine *sgSlot) bool {
	sf := mine.file
	buf := &mine.rbuf
	for i := 0; i < MaxQueuePerFD; i++ {
		if mine.state.Load() != slotWaited {
			return true
		}
		n, errno := readCompletion(sf.fd, buf)
		if errno == unix.EAGAIN || errno == unix.ENODEV {
			break
		}
		if !s.deliver(sf, buf, n, errno, mine) {
			break
		}
	}
	return mine.state.Load() != slotWaited
}

// readCompletion reads one completed command's header into buf. It
// sets the pack_id field to -1 first, so that a read that fails before
// the kernel wrote the header is recognised.
//
// The descriptor is non-blocking: sg_read() does not wait for a command
// (at most for a page fault while copying data-in), so the read is a raw
// system call that skips the scheduler's syscall bookkeeping, which is
// costly on every completion.
func readCompletion(fd int, buf *[sgIOHdrSize]byte) (uintptr, syscall.Errno) {
	binary.NativeEndian.PutUint32(buf[offPackID:], ^uint32(0))
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if errno != unix.EINTR {
			return n, errno
		}
	}
}

func (s *SG) doSync(sl *sgSlot, req *Request, res *Result) error {
	// The command is complete and its data copied when the call returns,
	// so the caller's buffer is used directly.
	s.fill(sl, req, false)
	op := "ioctl SG_IO"
	var errno syscall.Errno
	fd := uintptr(sl.file.fd)
	func() {
		if !s.sgNode {
			// The block layer's SG_IO waits uninterruptibly.
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, sgIO, uintptr(unsafe.Pointer(&sl.hdr)))
			sl.out = sl.hdr.output()
			return
		}
		// The sg driver's SG_IO waits interruptibly, and a signal makes
		// the kernel restart the ioctl: the command would run twice. So
		// on sg nodes: write() it, then a blocking read() of this very
		// command (SG_SET_FORCE_PACK_ID), which restarts harmlessly.
		op = "write"
		if _, _, errno = unix.Syscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&sl.hdr)), uintptr(sgIOHdrSize)); errno != 0 {
			return
		}
		op = "read"
		ne := binary.NativeEndian
		ne.PutUint32(sl.rbuf[offDxferDirection:], uint32(sl.hdr.dxferDirection))
		ne.PutUint32(sl.rbuf[offPackID:], uint32(sl.hdr.packID))
		for {
			_, _, errno = unix.Syscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&sl.rbuf[0])), uintptr(sgIOHdrSize))
			if errno != unix.EINTR {
				break
			}
		}
		sl.out = decodeSGOutput(&sl.rbuf)
	}()
	runtime.KeepAlive(req.Data)
	if errno != 0 {
		s.release(sl)
		s.exit()
		return &OpError{Op: op, Path: s.info.SGPath, Err: classifyErrno(errno, len(req.Data) > 0)}
	}
	err := s.result(sl, op, res)
	s.release(sl)
	s.exit()
	return err
}

// result stores a completed slot's outcome in res and returns, for
// outcomes the kernel marks unknown, an error.
func (s *SG) result(sl *sgSlot, op string, res *Result) error {
	if sl.err != nil {
		return &OpError{Op: op, Path: s.info.SGPath, Err: classifyErrno(sl.err, len(sl.kbuf) > 0)}
	}
	o := &sl.out
	*res = Result{
		Status:       scsi.Status(o.status),
		HostStatus:   scsi.HostByte(o.hostStatus),
		DriverStatus: scsi.DriverByte(o.driverStatus),
		Info:         o.info,
		Resid:        int(o.resid),
		Duration:     time.Duration(o.duration) * time.Millisecond,
	}
	if n := int(o.sbLenWr); n > 0 {
		res.Sense = append([]byte(nil), sl.sense[:min(n, len(sl.sense))]...)
	}
	switch {
	case res.HostStatus == scsi.HostTimeOut || res.DriverStatus&scsi.DriverMask == scsi.DriverTimeout:
		return &OpError{Op: op, Path: s.info.SGPath, Err: ErrTimeout}
	case res.HostStatus == scsi.HostNoConnect:
		return &OpError{Op: op, Path: s.info.SGPath, Err: fmt.Errorf("%w: DID_NO_CONNECT", ErrGone)}
	}
	return nil
}

// release returns a slot to the free list. The caller owns the slot
// (the kernel is done with it).
func (s *SG) release(sl *sgSlot) {
	if sl == s.solo {
		// Its header points only into the slot (the CDB pointer is
		// cleared after write, data-in has no pointer): fill rewrites
		// it, and the kernel-facing buffers are the slot's own.
		sl.err = nil
		sl.gen = (sl.gen + 1) & sgPackIDGenMask
		sl.state.Store(slotFree)
		s.soloBusy.Store(false)
		return
	}
	sl.hdr = sgIOHdr{}
	sl.kbuf = nil
	if cap(sl.bounce) > maxKeptBounce {
		sl.bounce = nil
	}
	sl.err = nil
	sl.gen = (sl.gen + 1) & sgPackIDGenMask
	sl.state.Store(slotFree)
	if s.waiters.Load() == 0 && s.spare.CompareAndSwap(nil, sl) {
		if s.waiters.Load() == 0 {
			return
		}
		// A Do began to wait meanwhile and may have missed the spare:
		// hand it over through the channel, unless somebody took it.
		if sl = s.spare.Swap(nil); sl == nil {
			return
		}
	}
	s.free <- sl // never blocks: the channel holds every slot
}

// reap delivers the completions that their submitters did not collect
// inline. It sleeps on s.kick while nothing is pending; while commands
// are in flight it drains every descriptor and then waits in poll(2),
// which holds one OS thread for the device. It exits once Close has
// seen every command complete.
func (s *SG) reap() {
	defer close(s.reaped)
	// The kernel writes completed headers here. The buffer has no Go
	// pointers: the pointer fields it receives back are never used.
	var buf [sgIOHdrSize]byte
	pfds := make([]unix.PollFd, len(s.files)+1)
	for i, sf := range s.files {
		pfds[i] = unix.PollFd{Fd: int32(sf.fd), Events: unix.POLLIN}
	}
	wake := len(s.files)
	pfds[wake] = unix.PollFd{Fd: int32(s.wakefd), Events: unix.POLLIN}
	for {
		select {
		case <-s.kick:
		case <-s.stopped:
			return
		}
		for s.pending.Load() > 0 {
			progress := false
			for _, sf := range s.files {
				for {
					n, errno := readCompletion(sf.fd, &buf)
					if errno == unix.EAGAIN || errno == unix.ENODEV {
						break
					}
					if !s.deliver(sf, &buf, n, errno, nil) {
						time.Sleep(time.Millisecond) // do not spin on a persistent error
						break
					}
					progress = true
				}
			}
			if progress || s.pending.Load() == 0 {
				continue
			}
			if _, err := unix.Poll(pfds, -1); err != nil && err != unix.EINTR {
				s.log.Error().Err(err).Msg("poll on sg descriptors")
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if pfds[wake].Revents != 0 {
				var b [8]byte
				_, _ = unix.Read(s.wakefd, b[:])
				select {
				case <-s.stopped:
					return
				default:
				}
			}
			for _, p := range pfds[:wake] {
				if p.Revents&(unix.POLLHUP|unix.POLLERR) != 0 && p.Revents&unix.POLLIN == 0 {
					// The device is going away: its queued commands
					// complete with errors soon; poll reports HUP until
					// then, so do not spin on it.
					time.Sleep(10 * time.Millisecond)
					break
				}
			}
		}
	}
}

// deliver hands a completion read from sf to its slot. It reports
// false when the completion matches no command in flight. mine is the
// slot whose own Do is delivering (nil for the reaper): its completion
// needs no signal.
func (s *SG) deliver(sf *sgFile, buf *[sgIOHdrSize]byte, n uintptr, errno syscall.Errno, mine *sgSlot) bool {
	out := decodeSGOutput(buf)
	sl := sf.lookup(out.packID)
	if sl == nil {
		// A read that failed before the kernel wrote the header (or a
		// foreign pack_id): nothing to attribute it to.
		s.log.Error().Int32("pack_id", out.packID).Uint("n", uint(n)).Str("errno", errno.Error()).
			Msg("sg completion matches no command")
		return false
	}
	s.pending.Add(-1)
	sl.out = out
	if errno != 0 {
		// The header was written but the data could not be copied.
		sl.err = errno
	} else if int(n) != sgIOHdrSize {
		sl.err = unix.EIO
	}
	if sl == mine {
		// Only its own Do abandons a slot, and that Do is here.
		sl.state.Store(slotCollected)
		return true
	}
	if sl.state.CompareAndSwap(slotWaited, slotDone) {
		sl.done <- struct{}{}
		return true
	}
	// Abandoned by a cancelled Do: drop the result.
	s.log.Debug().Int32("pack_id", out.packID).Msg("dropping completion of a cancelled command")
	s.release(sl)
	s.exit()
	return true
}

// lookup finds the in-flight slot a pack_id names.
func (sf *sgFile) lookup(packID int32) *sgSlot {
	if packID < 0 {
		return nil
	}
	idx := uint32(packID) & sgPackIDIndexMask
	if idx >= uint32(len(sf.slots)) {
		return nil
	}
	sl := sf.slots[idx]
	// Loading the state orders this read of gen after Do's write of it.
	if st := sl.state.Load(); st != slotWaited && st != slotAbandoned {
		return nil
	}
	if sl.gen != uint32(packID)>>sgPackIDIndexBits {
		return nil
	}
	return sl
}

// opsClosed is the flag Close sets in SG.ops.
const opsClosed = 1 << 62

// enter counts a Do call in, unless the SG is closed.
func (s *SG) enter() bool {
	if s.ops.Add(1)&opsClosed != 0 {
		s.exit()
		return false
	}
	return true
}

// exit counts a Do call (or an abandoned command) out, and tells a
// waiting Close when it was the last.
func (s *SG) exit() {
	if s.ops.Add(-1) == opsClosed {
		s.drainOnce.Do(func() { close(s.drained) })
	}
}

// Close waits for the commands in flight, then closes the descriptors.
func (s *SG) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		if s.ops.Or(opsClosed) == 0 {
			s.drainOnce.Do(func() { close(s.drained) })
		}
		<-s.drained
		close(s.stopped)
		if s.reaped != nil {
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(s.wakefd, one[:])
			<-s.reaped
			unix.Close(s.wakefd)
		}
		s.closeErr = s.closeFiles()
		s.log.Debug().Int64("polled", s.polls.Load()).Int64("poll_misses", s.pollMissed.Load()).Msg("sg device closed")
	})
	return s.closeErr
}

func (s *SG) closeFiles() error {
	var first error
	if s.solo != nil {
		if err := unix.Munmap(s.solo.mapped); err != nil {
			first = &OpError{Op: "munmap", Path: s.info.SGPath, Err: err}
		}
	}
	for _, sf := range s.files {
		if err := unix.Close(sf.fd); err != nil && first == nil {
			first = &OpError{Op: "close", Path: s.info.SGPath, Err: err}
		}
	}
	return first
}

// classifyErrno wraps an errno with the sentinel callers branch on.
// withData tells whether the command moved data, so that EINVAL can be
// read as "transfer too large".
func classifyErrno(err error, withData bool) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	var sentinel error
	switch errno {
	case unix.ENODEV, unix.ENXIO:
		sentinel = ErrGone
	case unix.EBUSY, unix.EAGAIN:
		sentinel = ErrBusy
	case unix.EDOM:
		sentinel = ErrQueueFull
	case unix.ENOMEM:
		sentinel = ErrTooLarge
	case unix.EINVAL:
		if withData {
			sentinel = ErrTooLarge
		} else {
			sentinel = ErrBadRequest
		}
	case unix.EMSGSIZE:
		sentinel = ErrBadRequest
	case unix.ETIMEDOUT:
		sentinel = ErrTimeout
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w (%w)", sentinel, err)
}

var (
	_ Device = (*SG)(nil)
	_ Lender = (*SG)(nil)
)
