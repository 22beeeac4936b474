package bot

import (
	"errors"
	"slices"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"
)

func TestParseBusPath(t *testing.T) {
	for _, tc := range []struct {
		in     string
		bus    int
		ports  []int
		config int
		iface  int
		device string
	}{
		{"2-1", 2, []int{1}, 0, -1, "2-1"},
		{"1-1.4.2", 1, []int{1, 4, 2}, 0, -1, "1-1.4.2"},
		{"3-2:1.0", 3, []int{2}, 1, 0, "3-2"},
		{"1-10.3:2.1", 1, []int{10, 3}, 2, 1, "1-10.3"},
	} {
		bp, err := parseBusPath(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if bp.bus != tc.bus || !slices.Equal(bp.ports, tc.ports) || bp.config != tc.config || bp.iface != tc.iface || bp.device() != tc.device {
			t.Errorf("%s: %+v", tc.in, bp)
		}
	}
	for _, bad := range []string{"", "2", "2-", "-1", "usb2-1", "0-1", "2-0", "2-1.", "2-1:1", "2-1:0.0", "2-1:1.x", "2-1.2.3.4.5.6.7.8", "256-1"} {
		if _, err := parseBusPath(bad); !errors.Is(err, sgio.ErrBadRequest) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSelector(t *testing.T) {
	if _, err := (Selector{}).validate(); !errors.Is(err, sgio.ErrBadRequest) {
		t.Error("empty selector accepted")
	}
	if _, err := (Selector{BusPath: "x"}).validate(); !errors.Is(err, sgio.ErrBadRequest) {
		t.Error("bad bus path accepted")
	}
	s := Selector{VendorID: 0x46f4, ProductID: 1, Serial: "USB0123456789", BusPath: "2-1"}
	if _, err := s.validate(); err != nil {
		t.Error(err)
	}
	if got := s.String(); got != `vid=46f4 pid=0001 serial="USB0123456789" path=2-1` {
		t.Errorf("String() = %s", got)
	}
}
