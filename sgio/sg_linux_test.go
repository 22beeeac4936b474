//go:build linux

package sgio

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestSGIOHdrLayout pins the sg_io_hdr mirror to the C layout of
// <scsi/sg.h> on 64-bit and 32-bit platforms.
func TestSGIOHdrLayout(t *testing.T) {
	var h sgIOHdr
	type field struct {
		name     string
		got      uintptr
		off64    uintptr
		off32    uintptr
		size     uintptr
		wantSize uintptr
	}
	ptr := unsafe.Sizeof(uintptr(0))
	fields := []field{
		{"interface_id", unsafe.Offsetof(h.interfaceID), 0, 0, unsafe.Sizeof(h.interfaceID), 4},
		{"dxfer_direction", unsafe.Offsetof(h.dxferDirection), 4, 4, unsafe.Sizeof(h.dxferDirection), 4},
		{"cmd_len", unsafe.Offsetof(h.cmdLen), 8, 8, unsafe.Sizeof(h.cmdLen), 1},
		{"mx_sb_len", unsafe.Offsetof(h.mxSbLen), 9, 9, unsafe.Sizeof(h.mxSbLen), 1},
		{"iovec_count", unsafe.Offsetof(h.iovecCount), 10, 10, unsafe.Sizeof(h.iovecCount), 2},
		{"dxfer_len", unsafe.Offsetof(h.dxferLen), 12, 12, unsafe.Sizeof(h.dxferLen), 4},
		{"dxferp", unsafe.Offsetof(h.dxferp), 16, 16, unsafe.Sizeof(h.dxferp), ptr},
		{"cmdp", unsafe.Offsetof(h.cmdp), 24, 20, unsafe.Sizeof(h.cmdp), ptr},
		{"sbp", unsafe.Offsetof(h.sbp), 32, 24, unsafe.Sizeof(h.sbp), ptr},
		{"timeout", unsafe.Offsetof(h.timeout), 40, 28, unsafe.Sizeof(h.timeout), 4},
		{"flags", unsafe.Offsetof(h.flags), 44, 32, unsafe.Sizeof(h.flags), 4},
		{"pack_id", unsafe.Offsetof(h.packID), 48, 36, unsafe.Sizeof(h.packID), 4},
		{"usr_ptr", unsafe.Offsetof(h.usrPtr), 56, 40, unsafe.Sizeof(h.usrPtr), ptr},
		{"status", unsafe.Offsetof(h.status), 64, 44, unsafe.Sizeof(h.status), 1},
		{"masked_status", unsafe.Offsetof(h.maskedStatus), 65, 45, unsafe.Sizeof(h.maskedStatus), 1},
		{"msg_status", unsafe.Offsetof(h.msgStatus), 66, 46, unsafe.Sizeof(h.msgStatus), 1},
		{"sb_len_wr", unsafe.Offsetof(h.sbLenWr), 67, 47, unsafe.Sizeof(h.sbLenWr), 1},
		{"host_status", unsafe.Offsetof(h.hostStatus), 68, 48, unsafe.Sizeof(h.hostStatus), 2},
		{"driver_status", unsafe.Offsetof(h.driverStatus), 70, 50, unsafe.Sizeof(h.driverStatus), 2},
		{"resid", unsafe.Offsetof(h.resid), 72, 52, unsafe.Sizeof(h.resid), 4},
		{"duration", unsafe.Offsetof(h.duration), 76, 56, unsafe.Sizeof(h.duration), 4},
		{"info", unsafe.Offsetof(h.info), 80, 60, unsafe.Sizeof(h.info), 4},
	}
	want, wantSize := func(f field) uintptr { return f.off64 }, uintptr(88)
	if ptr == 4 {
		want, wantSize = func(f field) uintptr { return f.off32 }, 64
	}
	for _, f := range fields {
		if f.got != want(f) {
			t.Errorf("offsetof(%s) = %d, want %d (%s)", f.name, f.got, want(f), runtime.GOARCH)
		}
		if f.size != f.wantSize {
			t.Errorf("sizeof(%s) = %d, want %d", f.name, f.size, f.wantSize)
		}
	}
	if got := unsafe.Sizeof(h); got != wantSize || sgIOHdrSize != int(wantSize) {
		t.Errorf("sizeof(sg_io_hdr) = %d (const %d), want %d", got, sgIOHdrSize, wantSize)
	}
	if got := unsafe.Sizeof(sgScsiID{}); got != 32 {
		t.Errorf("sizeof(sg_scsi_id) = %d, want 32", got)
	}
}

// TestDecodeSGOutput checks that a header image written by the kernel
// decodes to the fields the typed header holds.
func TestDecodeSGOutput(t *testing.T) {
	h := sgIOHdr{
		packID: 0x1234, status: 0x02, maskedStatus: 0x01, msgStatus: 0x7,
		sbLenWr: 18, hostStatus: 0x0703, driverStatus: 0x08, resid: -5,
		duration: 12345, info: 1,
	}
	var img [sgIOHdrSize]byte
	copy(img[:], unsafe.Slice((*byte)(unsafe.Pointer(&h)), sgIOHdrSize))
	if got, want := decodeSGOutput(&img), h.output(); got != want {
		t.Fatalf("decode = %+v, want %+v", got, want)
	}
	if h.output().resid != -5 || h.output().hostStatus != 0x0703 {
		t.Fatalf("output() lost fields: %+v", h.output())
	}
}

func TestClassifyErrno(t *testing.T) {
	cases := []struct {
		errno    syscall.Errno
		withData bool
		want     error
	}{
		{unix.ENODEV, false, ErrGone},
		{unix.ENXIO, true, ErrGone},
		{unix.EBUSY, false, ErrBusy},
		{unix.EAGAIN, false, ErrBusy},
		{unix.EDOM, true, ErrQueueFull},
		{unix.ENOMEM, true, ErrTooLarge},
		{unix.EINVAL, true, ErrTooLarge},
		{unix.EINVAL, false, ErrBadRequest},
		{unix.EMSGSIZE, false, ErrBadRequest},
		{unix.ETIMEDOUT, false, ErrTimeout},
		{unix.EIO, false, nil},
	}
	sentinels := []error{ErrGone, ErrBusy, ErrQueueFull, ErrTooLarge, ErrBadRequest, ErrTimeout, ErrClosed}
	for _, c := range cases {
		err := &OpError{Op: "write", Path: "/dev/sg3", Err: classifyErrno(c.errno, c.withData)}
		if !errors.Is(err, c.errno) {
			t.Errorf("%v: errors.Is(errno) false: %v", c.errno, err)
		}
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == c.want) {
				t.Errorf("%v (data %v): errors.Is(%v) = %v", c.errno, c.withData, s, got)
			}
		}
		if !strings.Contains(err.Error(), "/dev/sg3") || !strings.Contains(err.Error(), "write") {
			t.Errorf("message lacks op/path: %q", err)
		}
		if err.Timeout() != (c.want == ErrTimeout) {
			t.Errorf("%v: Timeout() = %v", c.errno, err.Timeout())
		}
	}
	// Errors that are not errnos pass through unchanged.
	if err := classifyErrno(os.ErrClosed, true); err != os.ErrClosed {
		t.Errorf("non-errno rewritten: %v", err)
	}
}

func TestLimitsFrom(t *testing.T) {
	page := os.Getpagesize()
	cases := []struct {
		name string
		in   Info
		want Limits
	}{
		{"sysfs smallest", Info{MaxSectorsBytes: 1280 << 10, MaxSectorsKB: 512, MaxHWSectorsKB: 32767, SGTableSize: 2048, MaxSegments: 2048},
			Limits{MaxTransferBytes: 512 << 10, MaxSegments: 2048, QueueDepth: 32}},
		{"segments bound", Info{MaxSectorsBytes: 1280 << 10, SGTableSize: 64},
			Limits{MaxTransferBytes: 64 * page, MaxSegments: 64, QueueDepth: 32}},
		{"tape without block node", Info{MaxSectorsBytes: 256 << 10, SGTableSize: 128},
			Limits{MaxTransferBytes: min(256<<10, 128*page), MaxSegments: 128, QueueDepth: 32}},
		{"nothing known", Info{}, Limits{MaxTransferBytes: 64 << 10, QueueDepth: 32}},
		{"reserved only", Info{ReservedSize: 32 << 10}, Limits{MaxTransferBytes: 32 << 10, QueueDepth: 32}},
	}
	for _, c := range cases {
		if got := limitsFrom(&c.in, 32); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestOpenRejectsNonSCSI(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "file")
	if err := os.WriteFile(reg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want error
	}{
		{"/dev/null", errors.ErrUnsupported},
		{reg, errors.ErrUnsupported},
		{filepath.Join(dir, "missing"), os.ErrNotExist},
	}
	for _, c := range cases {
		s, err := Open(c.path, WithSysfsRoot(dir))
		if err == nil {
			s.Close()
			t.Fatalf("Open(%s) succeeded", c.path)
		}
		var oe *OpError
		if !errors.As(err, &oe) || oe.Path != c.path {
			t.Errorf("Open(%s): %v is not an OpError on that path", c.path, err)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("Open(%s) = %v, want %v", c.path, err, c.want)
		}
	}
	if _, err := Open("/dev/null", WithQueueDepth(0)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("depth 0: %v", err)
	}
	if _, err := Open("/dev/null", WithQueueDepth(MaxQueueDepth+1)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("depth too large: %v", err)
	}
}

// TestCheckRequest covers the validation done before a slot is taken.
func TestCheckRequest(t *testing.T) {
	s := &SG{limits: Limits{MaxTransferBytes: 4096, QueueDepth: 1}}
	cdb := make([]byte, 10)
	cases := []struct {
		name string
		req  *Request
		want error
	}{
		{"nil", nil, ErrBadRequest},
		{"short cdb", &Request{CDB: make([]byte, 5)}, ErrBadRequest},
		{"long cdb", &Request{CDB: make([]byte, 253)}, ErrBadRequest},
		{"data without direction", &Request{CDB: cdb, Data: make([]byte, 1)}, ErrBadRequest},
		{"bidi", &Request{CDB: cdb, Dir: DirBidi, Data: make([]byte, 1), ReadData: make([]byte, 1)}, ErrBadRequest},
		{"bad direction", &Request{CDB: cdb, Dir: Direction(9)}, ErrBadRequest},
		{"too large", &Request{CDB: cdb, Dir: DirFromDevice, Data: make([]byte, 4097)}, ErrTooLarge},
		{"negative timeout", &Request{CDB: cdb, Timeout: -1}, ErrBadRequest},
		{"ok read", &Request{CDB: cdb, Dir: DirFromDevice, Data: make([]byte, 4096)}, nil},
		{"ok 252-byte cdb", &Request{CDB: make([]byte, 252), Dir: DirNone}, nil},
	}
	for _, c := range cases {
		err := s.check(c.req)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestFillHeader checks the header a request turns into, including the
// bounce decision and the pack_id encoding.
func TestFillHeader(t *testing.T) {
	s := &SG{opts: defaultOptions()}
	s.timeoutMS = timeoutMillis(s.opts.timeout)
	sl := &sgSlot{index: 5, gen: 3}
	data := make([]byte, 512)
	req := &Request{CDB: []byte{0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0}, Dir: DirFromDevice, Data: data}
	s.fill(sl, req, true)
	h := &sl.hdr
	if h.interfaceID != 'S' || h.dxferDirection != sgDxferFromDev || h.cmdLen != 10 || h.dxferLen != 512 {
		t.Fatalf("header %+v", h)
	}
	if h.dxferp == unsafe.Pointer(&data[0]) || h.dxferp != unsafe.Pointer(&sl.bounce[0]) {
		t.Fatal("cancellable data-in must go to the slot's bounce buffer")
	}
	if h.cmdp != unsafe.Pointer(&sl.cdb[0]) || h.sbp != unsafe.Pointer(&sl.sense[0]) || h.mxSbLen != senseBufferLen {
		t.Fatal("cdb/sense pointers not into the slot")
	}
	if h.packID != 3<<sgPackIDIndexBits|5 || h.timeout != uint32(DefaultTimeout.Milliseconds()) || h.flags != sgFlagQAtTail {
		t.Fatalf("pack_id %#x timeout %d flags %#x", h.packID, h.timeout, h.flags)
	}
	s.fill(sl, req, false)
	if sl.hdr.dxferp != unsafe.Pointer(&data[0]) {
		t.Fatal("uncancellable data-in should use the caller's buffer")
	}
	s.fill(sl, &Request{CDB: make([]byte, 6), Dir: DirToDevice, Data: data, Timeout: 1}, false)
	if sl.hdr.dxferDirection != sgDxferToDev || sl.hdr.timeout != 1 {
		t.Fatalf("data-out header %+v", sl.hdr)
	}
	s.fill(sl, &Request{CDB: make([]byte, 6), Dir: DirFromDevice}, true)
	if sl.hdr.dxferDirection != sgDxferNone || sl.hdr.dxferp != nil {
		t.Fatalf("empty data-in should be SG_DXFER_NONE: %+v", sl.hdr)
	}
	for _, c := range []struct {
		d    time.Duration
		want uint32
	}{{time.Microsecond, 1}, {1500 * time.Millisecond, 1500}, {100 * 365 * 24 * time.Hour, maxTimeoutMillisec}} {
		s.fill(sl, &Request{CDB: make([]byte, 6), Timeout: c.d}, false)
		if sl.hdr.timeout != c.want {
			t.Errorf("timeout %v: header says %d ms, want %d", c.d, sl.hdr.timeout, c.want)
		}
	}
	// The solo slot: data-in stays in the mapped buffer, no dxferp.
	solo := &sgSlot{mapped: make([]byte, 4096)}
	s.fill(solo, req, true)
	if solo.hdr.dxferp != nil || solo.hdr.flags&sgFlagMmapIO == 0 || &solo.kbuf[0] != &solo.mapped[0] || len(solo.kbuf) != len(data) {
		t.Fatalf("solo data-in header %+v", solo.hdr)
	}
}

// TestDoAfterClose uses an SG with no descriptors: a closed device
// refuses requests without touching the kernel.
func TestDoAfterClose(t *testing.T) {
	s := &SG{closing: make(chan struct{}), stopped: make(chan struct{}), drained: make(chan struct{}), free: make(chan *sgSlot), limits: Limits{MaxTransferBytes: 4096}}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Do(context.Background(), &Request{CDB: make([]byte, 6)})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}

// TestSlotHandOff has many goroutines take and release few slots, as Do
// does, with waiters: no slot may be held twice at once, and no waiter
// may be left behind while a slot sits in the spare (the test would
// hang).
func TestSlotHandOff(t *testing.T) {
	for _, depth := range []int{1, 2, 5} {
		s := &SG{free: make(chan *sgSlot, depth), closing: make(chan struct{})}
		held := make([]atomic.Bool, depth)
		for i := 0; i < depth; i++ {
			s.free <- &sgSlot{index: uint32(i)}
		}
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					sl, err := s.takeSlot(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if held[sl.index].Swap(true) {
						t.Errorf("slot %d taken twice", sl.index)
					}
					if i%7 == 0 {
						runtime.Gosched()
					}
					held[sl.index].Store(false)
					s.release(sl)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("depth %d: a waiter was never handed a slot", depth)
		}
		n := len(s.free)
		if s.spare.Load() != nil {
			n++
		}
		if n != depth {
			t.Fatalf("depth %d: %d slots free at the end", depth, n)
		}
	}
}

// TestPollBackOff pins the polled path's adaptive back-off: a miss makes
// the next 16 lone commands skip polling, consecutive misses double
// that up to 16384, and a hit starts over.
func TestPollBackOff(t *testing.T) {
	s := &SG{}
	if s.pollNow() {
		t.Fatal("polled with the polled path off")
	}
	s.info.Polled = true
	if !s.pollNow() {
		t.Fatal("not polled with no back-off")
	}
	skipped := func() int {
		n := 0
		for !s.pollNow() {
			n++
			if n > 1<<20 {
				t.Fatal("back-off never ends")
			}
		}
		return n
	}
	for i, want := range []int{16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 16384, 16384} {
		s.pollDone(false)
		if got := skipped(); got != want {
			t.Fatalf("after %d misses in a row: %d commands skipped polling, want %d", i+1, got, want)
		}
	}
	s.pollDone(true)
	s.pollDone(false)
	if got := skipped(); got != 16 {
		t.Fatalf("a miss after a hit: %d skipped, want 16", got)
	}
	if s.polls.Load() != 15 || s.pollMissed.Load() != 14 {
		t.Fatalf("counted %d polls, %d misses; want 15 and 14", s.polls.Load(), s.pollMissed.Load())
	}
}

// TestPollWindowOption: the window is validated at Open.
func TestPollWindowOption(t *testing.T) {
	for _, d := range []time.Duration{-time.Microsecond, MaxPollWindow + 1} {
		o := defaultOptions()
		WithPollWindow(d)(&o)
		if err := o.validate(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("WithPollWindow(%v): %v, want ErrBadRequest", d, err)
		}
	}
	for _, d := range []time.Duration{0, DefaultPollWindow, MaxPollWindow} {
		o := defaultOptions()
		WithPollWindow(d)(&o)
		if err := o.validate(); err != nil {
			t.Errorf("WithPollWindow(%v): %v", d, err)
		}
	}
}
