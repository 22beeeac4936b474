//go:build !cgo || nousb

package bot

import (
	"errors"
	"testing"
)

func TestOpenNotBuiltIn(t *testing.T) {
	_, err := Open(Selector{BusPath: "1-1"})
	if !errors.Is(err, ErrNotBuiltIn) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Open: %v", err)
	}
	if BuiltIn {
		t.Error("BuiltIn in a nousb build")
	}
}
