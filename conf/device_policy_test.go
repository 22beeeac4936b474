package conf

import (
	"slices"
	"testing"
	"time"
)

// TestDevicePolicy: the per-device policy settings resolve to numbers
// and durations; absent ones stay zero (the device type's defaults).
func TestDevicePolicy(t *testing.T) {
	src := `
portal "lo" {
  listen = "127.0.0.1:3260"
}
target "iqn.2026-11.io.sanbridge:policy" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    device {
      wwn           = "naa.5000c50015ea7100"
      queue_depth   = 4
      allow_opcodes = ["0x04", "48h", 59, "0XC0"]
      deny_opcodes  = ["0x0a"]
      timeout       = "90s"
      long_timeout  = "6h"
    }
  }
  lun "1" {
    device {
      wwn = "naa.5000c50015ea7101"
    }
  }
}
`
	cfg, diags := Parse([]byte(src), "policy.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	d := cfg.Targets[0].LUNs[0].Device
	if d.QueueDepth != 4 || !slices.Equal(d.AllowOpcodes, []int{0x04, 0x48, 59, 0xc0}) || !slices.Equal(d.DenyOpcodes, []int{0x0a}) ||
		d.Timeout != 90*time.Second || d.LongTimeout != 6*time.Hour {
		t.Fatalf("resolved %+v", d)
	}
	d = cfg.Targets[0].LUNs[1].Device
	if d.QueueDepth != 0 || d.AllowOpcodes != nil || d.DenyOpcodes != nil || d.Timeout != 0 || d.LongTimeout != 0 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestParseOpcode(t *testing.T) {
	for s, want := range map[string]int{"0x04": 4, "0XfF": 255, "04h": 4, "c0H": 0xc0, "255": 255, " 7 ": 7, "0": 0} {
		if got, ok := parseOpcode(s); !ok || got != want {
			t.Errorf("parseOpcode(%q) = %d %v, want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "0x", "h", "256", "0x100", "-1", "1.5", "0x1g", "1000", "abc"} {
		if got, ok := parseOpcode(s); ok {
			t.Errorf("parseOpcode(%q) = %d, want an error", s, got)
		}
	}
}
