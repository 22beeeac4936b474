package bridge

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// PERSISTENT RESERVE OUT service actions and types these tests use.
const (
	prRegister       = 0x00
	prReserve        = 0x01
	prWriteExclusive = 0x01
	prAPTPL          = 0x01
	prAllTgPt        = 0x04
	prReadResv       = 0x01
	prReadFullStatus = 0x03
)

func prOut(s *testinit.Session, lun uint64, sa, typ byte, param []byte) *testinit.Result {
	return s.Do(lun, testinit.PersistentReserveOut(sa, typ, len(param)), param, 0)
}

const aptplConfig = `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:aptpl" {
  lun "0" {
    emulated {
      size   = "8MiB"
      serial = "APTPL001"
    }
  }
}
`

// TestPRAcrossRestart: a persistent reservation made with APTPL is still
// there after the gateway restarts with the same state directory: the
// holder writes, the other initiator's writes conflict, its reads pass.
func TestPRAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	const target = "iqn.2026-11.io.sanbridge:aptpl"
	addr, stop := startGatewayWith(t, aptplConfig, Options{StateDir: dir})
	a := mustDial(t, addr, esxHost, target, 1)
	b := mustDial(t, addr, linuxHost, target, 1)
	ready(t, a, 0)
	ready(t, b, 0)
	expect(t, "REGISTER with APTPL", prOut(a, 0, prRegister, 0, testinit.PRParams(0, 0xa1, prAPTPL)), scsi.Good)
	expect(t, "RESERVE WE", prOut(a, 0, prReserve, prWriteExclusive, testinit.PRParams(0xa1, 0, 0)), scsi.Good)
	expect(t, "WRITE by B", b.Do(0, testinit.Write10(0, 1), make([]byte, 512), 0), scsi.ReservationConflict)
	a.Close()
	b.Close()
	stop()
	if files, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(files) != 1 {
		t.Fatalf("state directory holds %v, want one record", files)
	}

	addr, _ = startGatewayWith(t, aptplConfig, Options{StateDir: dir})
	a = mustDial(t, addr, esxHost, target, 1)
	b = mustDial(t, addr, linuxHost, target, 1)
	ready(t, a, 0)
	ready(t, b, 0)
	r := b.Do(0, testinit.PersistentReserveIn(prReadResv, 64), nil, 64)
	expect(t, "READ RESERVATION after the restart", r, scsi.Good)
	if len(r.Data) < 24 || binary.BigEndian.Uint64(r.Data[8:]) != 0xa1 || r.Data[21]&0x0f != prWriteExclusive {
		t.Fatalf("READ RESERVATION after the restart: % x", r.Data)
	}
	expect(t, "WRITE by B after the restart", b.Do(0, testinit.Write10(0, 1), make([]byte, 512), 0), scsi.ReservationConflict)
	expect(t, "READ by B after the restart", b.Do(0, testinit.Read10(0, 1), nil, 512), scsi.Good)
	expect(t, "WRITE by A after the restart", a.Do(0, testinit.Write10(0, 1), make([]byte, 512), 0), scsi.Good)
}

// TestPRTargetPorts: an ALL_TG_PT registration covers every target port
// that reaches the logical unit, each with its relative target port
// identifier (assigned in the configuration's order), and READ FULL
// STATUS reports them.
func TestPRTargetPorts(t *testing.T) {
	addr := startGateway(t, maskingConfig)
	esx := mustDial(t, addr, esxHost, m1, 1)
	esx2 := mustDial(t, addr, esxHost, m2, 1)
	ready(t, esx, 0)
	ready(t, esx2, 9)
	expect(t, "REGISTER ALL_TG_PT through m1", prOut(esx, 0, prRegister, 0, testinit.PRParams(0, 0xe5, prAllTgPt)), scsi.Good)
	r := esx2.Do(9, testinit.PersistentReserveIn(prReadFullStatus, 1024), nil, 1024)
	expect(t, "READ FULL STATUS through m2", r, scsi.Good)
	var rel []uint16
	for off := 8; off+24 <= len(r.Data); {
		if binary.BigEndian.Uint64(r.Data[off:]) != 0xe5 {
			t.Fatalf("descriptor at %d: key %x", off, r.Data[off:off+8])
		}
		rel = append(rel, binary.BigEndian.Uint16(r.Data[off+18:]))
		off += 24 + int(binary.BigEndian.Uint32(r.Data[off+20:]))
	}
	if len(rel) != 2 || rel[0] == rel[1] || rel[0] == 0 || rel[1] == 0 {
		t.Fatalf("relative target port identifiers %v, want m1's and m2's", rel)
	}
	// The registration holds through m2 as well: esx reserves there.
	expect(t, "RESERVE through m2", prOut(esx2, 9, prReserve, prWriteExclusive, testinit.PRParams(0xe5, 0, 0)), scsi.Good)
}
