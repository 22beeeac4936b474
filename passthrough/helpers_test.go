package passthrough

import (
	"context"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const testTarget = "iqn.2026-11.io.sanbridge:t"

// newDisk returns an emulated 1 MiB disk, closed at the end of the test.
func newDisk(t testing.TB, serial string) *emul.Disk {
	t.Helper()
	d, err := emul.New(emul.Config{SizeBytes: 1 << 20, BlockSize: 512, Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// newLU returns a logical unit for dev (a new emulated disk when nil).
func newLU(t *testing.T, name string, dev sgio.Device) *LU {
	t.Helper()
	if dev == nil {
		dev = newDisk(t, name)
	}
	lu, err := NewLU(context.Background(), LUConfig{Name: name, Device: dev, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	return lu
}

// mustView builds a view or fails the test.
func mustView(t *testing.T, maps ...Mapping) View {
	t.Helper()
	v, err := NewView(maps...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newTarget returns a target whose initiators see views(name), over the
// registry lus.
func newTarget(t *testing.T, views ViewFunc, lus ...*LU) *Target {
	t.Helper()
	tg, err := NewTarget(TargetConfig{Name: testTarget, LUs: lus, Views: views, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// everyone returns a target with one emulated disk per LUN number, all
// visible to every initiator.
func everyone(t *testing.T, luns ...uint64) *Target {
	t.Helper()
	var maps []Mapping
	var lus []*LU
	for _, n := range luns {
		lu := newLU(t, fmt.Sprintf("lu%d", n), nil)
		lus = append(lus, lu)
		maps = append(maps, Mapping{LUN: n, LU: lu})
	}
	return newTarget(t, Everyone(mustView(t, maps...)), lus...)
}

// nexusOf returns an I_T nexus of initiator name with ISID ...isid.
func nexusOf(name string, isid byte) *iscsi.Nexus {
	return &iscsi.Nexus{InitiatorName: name, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}, TargetName: testTarget, TPGT: 1}
}

// run executes cdb from n on lun with room for alloc bytes of data-in.
func run(t *testing.T, tg *Target, n *iscsi.Nexus, lun uint64, cdb []byte, alloc int) iscsi.Response {
	t.Helper()
	cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(lun), CDB: cdb, Read: alloc > 0, ReadBuf: make([]byte, alloc)}
	return tg.Execute(context.Background(), cmd)
}

// runData is run that also returns the data-in.
func runData(t *testing.T, tg *Target, n *iscsi.Nexus, lun uint64, cdb []byte, alloc int) (iscsi.Response, []byte) {
	t.Helper()
	cmd := &iscsi.Command{Nexus: n, LUN: iscsi.MakeLUN(lun), CDB: cdb, Read: alloc > 0, ReadBuf: make([]byte, alloc)}
	r := tg.Execute(context.Background(), cmd)
	data := cmd.ReadBuf
	if r.ReadData != nil {
		data = r.ReadData
	}
	return r, data[:r.ReadLen]
}

// senseOf returns the sense of a CHECK CONDITION response.
func senseOf(t *testing.T, r iscsi.Response) scsi.Sense {
	t.Helper()
	if r.Status != scsi.CheckCondition {
		t.Fatalf("status %v, want CHECK CONDITION", r.Status)
	}
	s, err := scsi.ParseSense(r.Sense)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantCheck fails unless r is CHECK CONDITION with key and asc.
func wantCheck(t *testing.T, r iscsi.Response, key scsi.SenseKey, asc scsi.ASC) {
	t.Helper()
	if s := senseOf(t, r); s.Key != key || s.ASC != asc {
		t.Fatalf("sense %v, want %v %v", &s, key, asc)
	}
}

// wantSt fails unless r has status st.
func wantSt(t *testing.T, r iscsi.Response, st scsi.Status) {
	t.Helper()
	if r.Status != st {
		s, _ := scsi.ParseSense(r.Sense)
		t.Fatalf("status %v (%v), want %v", r.Status, &s, st)
	}
}

// reportedLUNs decodes REPORT LUNS data.
func reportedLUNs(t *testing.T, data []byte) []uint64 {
	t.Helper()
	luns, err := testinit.LUNs(data)
	if err != nil {
		t.Fatal(err)
	}
	return luns
}
