package passthrough

import (
	"path/filepath"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/emul"
)

// TestInline: the data path of a memory disk may run on the reader;
// a file-backed disk, reservations, LUNs outside the view and nexuses
// that never attached may not.
func TestInline(t *testing.T) {
	file, err := emul.New(emul.Config{SizeBytes: 1 << 20, BlockSize: 512, File: filepath.Join(t.TempDir(), "disk.img")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	mem, onFile := newLU(t, "mem", nil), newLU(t, "file", file)
	tg := newTarget(t, Everyone(mustView(t, Mapping{LUN: 0, LU: mem}, Mapping{LUN: 1, LU: onFile})), mem, onFile)
	n := nexusOf("iqn.2026-11.io.sanbridge:inline", 1)
	tg.Attach(n, nil)
	t.Cleanup(func() { tg.Detach(n) })
	read10 := []byte{0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0}
	prOut := []byte{0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0}
	for _, c := range []struct {
		name  string
		nexus *iscsi.Nexus
		lun   uint64
		cdb   []byte
		want  bool
	}{
		{"read on a memory disk", n, 0, read10, true},
		{"TEST UNIT READY on a memory disk", n, 0, make([]byte, 6), true},
		{"PERSISTENT RESERVE OUT", n, 0, prOut, false},
		{"read on a file-backed disk", n, 1, read10, false},
		{"LUN outside the view", n, 7, read10, false},
		{"nexus never attached", nexusOf("iqn.2026-11.io.sanbridge:other", 2), 0, read10, false},
		{"no CDB", n, 0, nil, false},
	} {
		cmd := &iscsi.Command{Nexus: c.nexus, LUN: iscsi.MakeLUN(c.lun), CDB: c.cdb}
		if got := tg.Inline(cmd); got != c.want {
			t.Errorf("%s: Inline = %v, want %v", c.name, got, c.want)
		}
	}
}
