package passthrough

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const testTarget = "iqn.2026-11.io.sanbridge:t"

// newDisk returns an emulated 1 MiB disk, closed at the end of the test.
func newDisk(t *testing.T, serial string) *emul.Disk {
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

// CDBs.
func cdbTUR() []byte { return make([]byte, 6) }
func cdbInquiry(alloc uint16) []byte {
	return []byte{byte(scsi.OpInquiry), 0, 0, byte(alloc >> 8), byte(alloc), 0}
}
func cdbRequestSense(alloc byte) []byte { return []byte{byte(scsi.OpRequestSense), 0, 0, 0, alloc, 0} }
func cdbReportLUNs(alloc uint32) []byte {
	c := make([]byte, 12)
	c[0] = byte(scsi.OpReportLUNs)
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}
func cdbRW10(op scsi.Opcode, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = byte(op)
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}
func cdbRead10(lba uint32, blocks uint16) []byte  { return cdbRW10(scsi.OpRead10, lba, blocks) }
func cdbWrite10(lba uint32, blocks uint16) []byte { return cdbRW10(scsi.OpWrite10, lba, blocks) }
func cdbReserve6() []byte                         { return []byte{byte(scsi.OpReserve6), 0, 0, 0, 0, 0} }
func cdbRelease6() []byte                         { return []byte{byte(scsi.OpRelease6), 0, 0, 0, 0, 0} }
func cdbModeSense6(alloc byte) []byte {
	return []byte{byte(scsi.OpModeSense6), 0, 0x3f, 0, alloc, 0}
}
func cdbModeSense10(alloc uint16) []byte {
	return []byte{byte(scsi.OpModeSense10), 0, 0x3f, 0, 0, 0, 0, byte(alloc >> 8), byte(alloc), 0}
}

// reportedLUNs decodes REPORT LUNS data.
func reportedLUNs(t *testing.T, data []byte) []uint64 {
	t.Helper()
	if len(data) < 8 {
		t.Fatalf("REPORT LUNS data of %d bytes", len(data))
	}
	n := int(binary.BigEndian.Uint32(data))
	var out []uint64
	for i := 8; i < 8+n && i+8 <= len(data); i += 8 {
		var l iscsi.LUN
		copy(l[:], data[i:])
		v, ok := l.Number()
		if !ok {
			t.Fatalf("bad LUN %x", l)
		}
		out = append(out, v)
	}
	return out
}
