package bridge

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
)

// TestNewReportsBackendErrorsWithPosition: a LUN whose backing file can't
// be opened fails New with the file:line of the offending attribute, and
// the LUNs opened before it are closed again.
func TestNewReportsBackendErrorsWithPosition(t *testing.T) {
	dir := t.TempDir()
	src := `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:bad" {
  lun "0" {
    emulated {
      size = "1MiB"
      file = "` + dir + `/ok.img"
    }
  }
  lun "1" {
    emulated {
      size = "1MiB"
      file = "` + dir + `/missing/dir/disk.img"
    }
  }
}
`
	cfg, diags := conf.Parse([]byte(src), "bad.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b, err := New(cfg, Options{Log: zerolog.Nop()})
	if err == nil {
		b.closeDevices()
		t.Fatal("New succeeded with an unopenable backing file")
	}
	if !strings.HasPrefix(err.Error(), "bad.hcl:15,") || !strings.Contains(err.Error(), "LUN 1") {
		t.Fatalf("error %q does not point at bad.hcl line 15, LUN 1", err)
	}
}
