package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const maskingConfig = `
portal "lo" {
  listen = "127.0.0.1:0"
}
initiator_group "esx" {
  initiators = ["iqn.1998-01.com.vmware:*"]
}
initiator_group "linux" {
  initiators = ["iqn.1994-05.com.redhat:*"]
}
backend "shared" {
  emulated {
    size   = "8MiB"
    serial = "shared"
  }
}
backend "golden" {
  emulated {
    size   = "8MiB"
    serial = "golden"
  }
}
target "iqn.2026-11.io.sanbridge:m1" {
  lun "0" {
    backend   = "golden"
    read_only = true
  }
  view "esx" {
    lun "0" {
      backend = "shared"
    }
    lun "2" {
      backend   = "golden"
      read_only = true
    }
  }
  view "linux" {
    lun "5" {
      backend   = "shared"
      read_only = true
    }
  }
}
target "iqn.2026-11.io.sanbridge:m2" {
  view "esx" {
    lun "9" {
      backend = "shared"
    }
  }
}
`

const (
	esxHost   = "iqn.1998-01.com.vmware:host1"
	linuxHost = "iqn.1994-05.com.redhat:host2"
	otherHost = "iqn.2026-11.io.example:host3"
	m1        = "iqn.2026-11.io.sanbridge:m1"
	m2        = "iqn.2026-11.io.sanbridge:m2"
)

// dial logs initiator in to target with ISID ...isid.
func dial(t *testing.T, addr, initiator, target string, isid byte) (*testinit.Session, error) {
	t.Helper()
	s, err := testinit.Dial(context.Background(), addr, testinit.Config{
		InitiatorName: initiator, TargetName: target, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}})
	if err == nil {
		t.Cleanup(s.Close)
	}
	return s, err
}

// mustDial is dial that fails the test on error.
func mustDial(t *testing.T, addr, initiator, target string, isid byte) *testinit.Session {
	t.Helper()
	s, err := dial(t, addr, initiator, target, isid)
	if err != nil {
		t.Fatalf("%s -> %s: %v", initiator, target, err)
	}
	return s
}

// expect fails unless r has status st and, when given, sense key and ASC.
func expect(t *testing.T, what string, r *testinit.Result, st scsi.Status, kasc ...any) {
	t.Helper()
	if r.Err != nil || r.Status != st {
		t.Fatalf("%s: %v, want %v", what, r, st)
	}
	if len(kasc) == 2 {
		if s := r.SenseData(); s.Key != kasc[0].(scsi.SenseKey) || s.ASC != kasc[1].(scsi.ASC) {
			t.Fatalf("%s: %v, want %v %v", what, r, kasc[0], kasc[1])
		}
	}
}

// ready consumes the unit attentions of a new nexus on lun.
func ready(t *testing.T, s *testinit.Session, lun uint64) {
	t.Helper()
	for range 20 {
		r := s.Do(lun, testinit.TUR(), nil, 0)
		if r.Err == nil && r.Status == scsi.Good {
			return
		}
		if r.Err != nil || r.SenseData().Key != scsi.SenseUnitAttention {
			t.Fatalf("TEST UNIT READY on LUN %d: %v", lun, r)
		}
	}
	t.Fatal("unit attentions never cleared")
}

// luns returns what REPORT LUNS lists for a session.
func luns(t *testing.T, s *testinit.Session) string {
	t.Helper()
	r := s.Do(0, testinit.ReportLUNs(512), nil, 512)
	expect(t, "REPORT LUNS", r, scsi.Good)
	l, err := testinit.LUNs(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(l)
}

// TestMasking: the configuration's groups and views decide what each
// initiator sees, in REPORT LUNS, at login, in discovery and for every
// command; a backend mapped in several views and targets is one logical
// unit (its data and reservations are shared).
func TestMasking(t *testing.T) {
	addr := startGateway(t, maskingConfig)
	for _, tc := range []struct {
		initiator, target, luns string
	}{
		{esxHost, m1, "[0 2]"},
		{esxHost, m2, "[9]"},
		{linuxHost, m1, "[5]"},
		{otherHost, m1, "[0]"},
	} {
		s := mustDial(t, addr, tc.initiator, tc.target, 1)
		if got := luns(t, s); got != tc.luns {
			t.Errorf("%s in %s: REPORT LUNS %s, want %s", tc.initiator, tc.target, got, tc.luns)
		}
	}
	// An empty view: the login is refused (class 2, initiator error).
	for _, in := range []string{linuxHost, otherHost} {
		_, err := dial(t, addr, in, m2, 1)
		var le *testinit.LoginError
		if !errors.As(err, &le) || le.Class != 2 {
			t.Errorf("%s logging in to %s: %v, want a refusal", in, m2, err)
		}
	}
	// Shared data: what esx writes at m1 LUN 0 linux reads at m1 LUN 5.
	esx := mustDial(t, addr, esxHost, m1, 2)
	esx2 := mustDial(t, addr, esxHost, m2, 2)
	linux := mustDial(t, addr, linuxHost, m1, 2)
	ready(t, esx, 0)
	ready(t, esx2, 9)
	ready(t, linux, 5)
	data := []byte(strings.Repeat("shared block ", 40))[:512]
	expect(t, "WRITE by esx", esx.Do(0, testinit.Write10(7, 1), data, 0), scsi.Good)
	r := linux.Do(5, testinit.Read10(7, 1), nil, 512)
	expect(t, "READ by linux", r, scsi.Good)
	if string(r.Data) != string(data) {
		t.Fatal("linux does not read what esx wrote to the same backend")
	}
	expect(t, "WRITE by linux (read-only)", linux.Do(5, testinit.Write10(7, 1), data, 0), scsi.CheckCondition, scsi.SenseDataProtect, scsi.ASCWriteProtected)
	expect(t, "LUN outside the view", linux.Do(0, testinit.TUR(), nil, 0), scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
	if got, err := linux.TMF(iscsi.TMFLogicalUnitReset, 0, 0); err != nil || got != iscsi.TMFLUNNotExist {
		t.Errorf("LUN RESET outside the view: %v %v", got, err)
	}
	// Shared reservations: esx's RESERVE through m1 holds against linux
	// and against esx's own session through m2 (another I_T nexus).
	expect(t, "RESERVE by esx", esx.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)
	expect(t, "READ by linux", linux.Do(5, testinit.Read10(7, 1), nil, 512), scsi.ReservationConflict)
	expect(t, "READ by esx through m2", esx2.Do(9, testinit.Read10(7, 1), nil, 512), scsi.ReservationConflict)
	expect(t, "RELEASE by esx", esx.Do(0, testinit.Release6(), nil, 0), scsi.Good)
	expect(t, "READ by linux after the release", linux.Do(5, testinit.Read10(7, 1), nil, 512), scsi.Good)
}

// TestMaskingDiscovery: SendTargets lists a target only to initiators
// that see a LUN in it.
func TestMaskingDiscovery(t *testing.T) {
	addr := startGateway(t, maskingConfig)
	for _, tc := range []struct {
		initiator string
		m2        bool
	}{{esxHost, true}, {linuxHost, false}, {otherHost, false}} {
		out, err := tool(t, "iscsi-ls", "-i", tc.initiator, "iscsi://"+addr)
		if err != nil {
			t.Fatalf("iscsi-ls as %s: %v\n%s", tc.initiator, err, out)
		}
		if !strings.Contains(out, "Target:"+m1) || strings.Contains(out, "Target:"+m2) != tc.m2 {
			t.Errorf("discovery as %s (m2 expected %v):\n%s", tc.initiator, tc.m2, out)
		}
	}
}
