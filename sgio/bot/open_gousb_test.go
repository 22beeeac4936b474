//go:build cgo && !nousb

package bot

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/google/gousb"

	"github.com/sanbridge/sanbridge/sgio"
)

// TestDeviceHandleField pins what deviceHandle reads out of gousb: an
// upgrade that renames or retypes Device.handle must fail here, not
// silently fall back to a clear halt that leaves the host's data toggle.
func TestDeviceHandleField(t *testing.T) {
	f, ok := reflect.TypeOf(gousb.Device{}).FieldByName("handle")
	if !ok || f.Type.Kind() != reflect.Pointer {
		t.Fatalf("gousb.Device.handle: %v %v; deviceHandle needs a pointer field", ok, f.Type)
	}
	if deviceHandle(&gousb.Device{}) != nil {
		t.Error("a Device without a handle gave one")
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	done, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want error
	}{
		{ctx, gousb.TransferStall, ErrStall},
		{ctx, gousb.ErrorPipe, ErrStall},
		{ctx, gousb.TransferNoDevice, sgio.ErrGone},
		{ctx, gousb.ErrorNoDevice, sgio.ErrGone},
		{ctx, gousb.TransferOverflow, ErrOverflow},
		{ctx, gousb.ErrorBusy, sgio.ErrBusy},
		{done, gousb.TransferCancelled, context.Canceled},
	} {
		got := classify(tc.ctx, tc.err)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("classify(%v) = %v, want %v wrapping it", tc.err, got, tc.want)
		}
	}
	// A cancellation while ctx is still live is not ctx's.
	if err := classify(ctx, gousb.TransferCancelled); errors.Is(err, context.Canceled) {
		t.Errorf("classify(cancelled, live ctx) = %v", err)
	}
}

// TestOpenNoSuchDevice runs libusb's enumeration on this machine: a
// selector nothing matches is ErrNotFound (or, without usbfs, a libusb
// that cannot start); both wrap ErrGone.
func TestOpenNoSuchDevice(t *testing.T) {
	_, err := Open(Selector{VendorID: 0xfffe, ProductID: 0xfffd, Serial: "none"})
	if !errors.Is(err, sgio.ErrGone) {
		t.Fatalf("Open: %v", err)
	}
	t.Log(err)
}

// TestContextHandleField pins what contextHandle reads out of gousb (the
// synchronous transfers need the libusb_context to handle its events).
func TestContextHandleField(t *testing.T) {
	f, ok := reflect.TypeOf(gousb.Context{}).FieldByName("ctx")
	if !ok || f.Type.Kind() != reflect.Pointer {
		t.Fatalf("gousb.Context.ctx: %v %v; contextHandle needs a pointer field", ok, f.Type)
	}
	if contextHandle(&gousb.Context{}) != nil || contextHandle(nil) != nil {
		t.Error("a Context without a libusb context gave one")
	}
	if newSyncBulk(&gousb.Context{}, nil) != nil {
		t.Error("synchronous transfers without a handle")
	}
}
