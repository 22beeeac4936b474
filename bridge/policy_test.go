package bridge

import (
	"slices"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/conf"
)

// TestLUPolicy: a device block's policy settings reach the logical unit.
func TestLUPolicy(t *testing.T) {
	src := `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:p" {
  lun "0" {
    device {
      wwn           = "naa.5000c50015ea7100"
      queue_depth   = 8
      allow_opcodes = ["0x04"]
      deny_opcodes  = ["0xa3", "0x3c"]
      timeout       = "2m"
      long_timeout  = "5h"
    }
  }
}
`
	cfg, diags := conf.Parse([]byte(src), "p.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, depth := luPolicy(cfg.Targets[0].LUNs[0].Device)
	if depth != 8 || !slices.Equal(p.Allow, []byte{0x04}) || !slices.Equal(p.Deny, []byte{0xa3, 0x3c}) || p.Timeout != 2*time.Minute || p.LongTimeout != 5*time.Hour {
		t.Fatalf("policy %+v, depth %d", p, depth)
	}
	if p, depth := luPolicy(nil); depth != 0 || p.Allow != nil || p.Timeout != 0 {
		t.Fatalf("emulated backend: %+v %d", p, depth)
	}
}
