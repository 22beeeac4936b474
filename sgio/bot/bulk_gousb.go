//go:build cgo && !nousb

package bot

/*
#cgo pkg-config: libusb-1.0
#include <stdlib.h>
#include <libusb.h>

static void LIBUSB_CALL sb_bulk_done(struct libusb_transfer *t) {
	*(int *)t->user_data = 1;
}

// sb_bulk runs one bulk transfer on buf, in the calling thread: it
// submits the transfer and handles libusb's events until the transfer
// ends (another thread, gousb's event loop, may be the one that
// completes it; libusb wakes this one then). It returns a libusb error
// code of the submission (0 when submitted) and stores the transfer's
// status and length. The transfer is over when it returns, also after a
// libusb_cancel_transfer from another thread: buf is not used afterwards.
static int sb_bulk(libusb_context *ctx, libusb_device_handle *h, struct libusb_transfer *t,
		unsigned char ep, unsigned char *buf, int len, unsigned int timeout,
		int *completed, int *status, int *actual) {
	*completed = 0;
	libusb_fill_bulk_transfer(t, h, ep, buf, len, sb_bulk_done, completed, timeout);
	int rc = libusb_submit_transfer(t);
	if (rc < 0)
		return rc;
	while (!*completed) {
		rc = libusb_handle_events_completed(ctx, completed);
		if (rc < 0 && rc != LIBUSB_ERROR_INTERRUPTED) {
			// As libusb's own synchronous transfers do: cancel, and
			// wait for the cancellation to complete.
			libusb_cancel_transfer(t);
		}
	}
	*status = t->status;
	*actual = t->actual_length;
	t->buffer = NULL;
	t->user_data = NULL;
	return 0;
}
*/
import "C"

import (
	"context"
	"reflect"
	"sync"
	"unsafe"

	"github.com/google/gousb"
)

// syncBulk runs the bulk transfers of one interface synchronously in the
// calling goroutine's thread through the smallest libusb shim above,
// instead of gousb's ReadContext/WriteContext. Measured on the rig's
// USB stick (46-usb-bot, BenchmarkIntegration), gousb's path costs per
// transfer a C buffer allocated and freed, a copy through it, and two
// goroutine hand-offs (its event loop calls back into Go, which wakes the
// waiting goroutine); a BOT command is three transfers. Here the
// transfer is allocated once, libusb moves the data into the caller's
// buffer directly (the cgo call pins it until the transfer is over), and
// completion is a libusb condition variable, no Go scheduler in between.
//
// One transfer is in flight at a time (the Transport holds the
// interface); mu and gen keep a cancellation that races with the end of
// its transfer off the next one.
type syncBulk struct {
	ctx    *C.libusb_context
	handle *C.libusb_device_handle
	xfer   *C.struct_libusb_transfer

	// results of the transfer, in C memory: libusb writes completed
	// from its event thread while the Go side is inside the cgo call.
	res *[3]C.int

	mu     sync.Mutex
	active uint64 // gen of the transfer in flight, 0 when none
	gen    uint64
}

// newSyncBulk prepares synchronous transfers on dev's handle, or returns
// nil when gousb's private fields are not where this package reads them
// (then gousb's own transfers are used).
func newSyncBulk(uctx *gousb.Context, handle unsafe.Pointer) *syncBulk {
	c := contextHandle(uctx)
	if c == nil || handle == nil {
		return nil
	}
	x := C.libusb_alloc_transfer(0)
	if x == nil {
		return nil
	}
	return &syncBulk{
		ctx:    (*C.libusb_context)(c),
		handle: (*C.libusb_device_handle)(handle),
		xfer:   x,
		res:    (*[3]C.int)(C.calloc(3, C.size_t(unsafe.Sizeof(C.int(0))))),
	}
}

// contextHandle returns the libusb_context gousb keeps in the unexported
// field Context.ctx (see deviceHandle; TestContextHandleField pins it).
func contextHandle(c *gousb.Context) unsafe.Pointer {
	if c == nil {
		return nil
	}
	v := reflect.ValueOf(c).Elem().FieldByName("ctx")
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	return v.UnsafePointer()
}

// transfer moves buf on endpoint address ep and returns the bytes moved
// and the libusb outcome (nil, a gousb.TransferStatus or a gousb.Error).
// ctx's end (its deadline or its cancellation) cancels the transfer, as
// with gousb's ReadContext: libusb's own timeout is not used, so that a
// timed-out transfer is always ctx's (classify).
func (s *syncBulk) transfer(ctx context.Context, ep uint8, buf []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.gen++
	s.active = s.gen
	gen := s.gen
	s.mu.Unlock()
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			s.mu.Lock()
			if s.active == gen {
				C.libusb_cancel_transfer(s.xfer)
			}
			s.mu.Unlock()
		})
	}
	var p *C.uchar
	if len(buf) > 0 {
		p = (*C.uchar)(unsafe.Pointer(&buf[0]))
	}
	rc := C.sb_bulk(s.ctx, s.handle, s.xfer, C.uchar(ep), p, C.int(len(buf)), 0,
		&s.res[0], &s.res[1], &s.res[2])
	s.mu.Lock()
	s.active = 0
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if rc != 0 {
		return 0, gousb.Error(rc)
	}
	n := int(s.res[2])
	if st := gousb.TransferStatus(s.res[1]); st != gousb.TransferCompleted {
		return n, st
	}
	return n, nil
}

// close frees the transfer; no transfer is in flight.
func (s *syncBulk) close() {
	C.libusb_free_transfer(s.xfer)
	C.free(unsafe.Pointer(s.res))
}
