package emul

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"
)

// TestReset: a reset keeps the data and the disk usable; a closed disk
// refuses it.
func TestReset(t *testing.T) {
	d, err := New(Config{SizeBytes: 1 << 20, Serial: "RESET"})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xa5}, 512)
	good(t, exec(t, d, []byte{0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0}, data))
	if err := d.Reset(context.Background()); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	got := make([]byte, 512)
	good(t, exec(t, d, []byte{0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0}, got))
	if !bytes.Equal(got, data) {
		t.Fatal("data changed across a reset")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Reset(context.Background()); !errors.Is(err, sgio.ErrClosed) {
		t.Fatalf("Reset after Close: %v, want ErrClosed", err)
	}
}
