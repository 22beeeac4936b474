package passthrough

import (
	"context"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// BenchmarkExecuteRead measures the pipeline around a 4 KiB read from an
// emulated disk, the common case: no unit attention pending, no
// reservation. The device request (request and result) is the only
// allocation.
func BenchmarkExecuteRead(b *testing.B) {
	tg, n := benchTarget(b)
	cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(0), CDB: testinit.Read10(0, 8), Read: true, ReadBuf: make([]byte, 4096)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := tg.Execute(ctx, cmd); r.Status != scsi.Good {
			b.Fatalf("status %v", r.Status)
		}
	}
}

func benchTarget(b *testing.B) (*Target, *iscsi.Nexus) {
	d := newDisk(b, "bench")
	lu, err := NewLU(context.Background(), LUConfig{Name: "bench", Device: d})
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewView(Mapping{LUN: 0, LU: lu})
	if err != nil {
		b.Fatal(err)
	}
	tg, err := NewTarget(TargetConfig{Name: testTarget, LUs: []*LU{lu}, Views: Everyone(v)})
	if err != nil {
		b.Fatal(err)
	}
	n := nexusOf(iqnA, 1)
	tg.Attach(n, nil)
	tg.nexusOf(n).view.Load().itls[0].ua.take()
	return tg, n
}
