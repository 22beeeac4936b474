package bridge

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/bridge/cluster/etcdtest"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const clusterTarget = "iqn.2026-11.io.sanbridge:cluster"

// clusterConfig is gateway id's configuration: portal group pg on
// 127.0.0.1:0, cluster port group pg, the shared backend over file.
func clusterConfig(id string, pg int, endpoints []string, file string) string {
	return fmt.Sprintf(`
portal "lo" {
  listen = "127.0.0.1:0"
  group  = %d
}
backend "disk" {
  shared = true
  emulated {
    size   = "64MiB"
    file   = %q
    serial = "CLUSTER0001"
  }
}
cluster {
  node_id    = %q
  port_group = %d
  endpoints  = [%s]
  lease_ttl  = "2s"
}
target %q {
  lun "0" {
    backend = "disk"
  }
}
`, pg, file, id, pg, `"`+strings.Join(endpoints, `", "`)+`"`, clusterTarget)
}

// TestClusterGateways: two gateways serving one file-backed disk as a
// shared logical unit, each with its own etcd member: a Write Exclusive
// reservation taken through A is enforced on B at once, and libiscsi's
// reservation and multipath families pass with the multipath session
// through the other gateway. It also measures the latency a shared
// logical unit adds to PERSISTENT RESERVE OUT and to a read.
func TestClusterGateways(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	eps := ec.Endpoints()
	file := filepath.Join(t.TempDir(), "disk.img")
	addrA, _ := startGatewayWith(t, clusterConfig("gw-a", 1, eps[:1], file), Options{})
	addrB, _ := startGatewayWith(t, clusterConfig("gw-b", 2, eps[1:2], file), Options{})

	ctx := context.Background()
	dial := func(addr, target, name string, isid byte) *testinit.Session {
		s, err := testinit.Dial(ctx, addr, testinit.Config{InitiatorName: name, TargetName: target, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		for r := s.Do(0, testinit.TUR(), nil, 0); r.Status != scsi.Good; r = s.Do(0, testinit.TUR(), nil, 0) {
			if r.Status != scsi.CheckCondition || r.SenseData().Key != scsi.SenseUnitAttention {
				t.Fatalf("TEST UNIT READY: %v", r)
			}
		}
		return s
	}
	// do retries a command that reports a unit attention, as initiators
	// do: the membership changes raise ASYMMETRIC ACCESS STATE CHANGED
	// whenever each gateway learns of the other.
	do := func(s *testinit.Session, cdb, wdata []byte, rlen int) *testinit.Result {
		for range 5 {
			r := s.Do(0, cdb, wdata, rlen)
			if r.Status != scsi.CheckCondition || r.SenseData().Key != scsi.SenseUnitAttention {
				return r
			}
		}
		t.Fatalf("unit attentions without end")
		return nil
	}
	h1 := dial(addrA, clusterTarget, "iqn.2026-11.io.sanbridge:h1", 1)
	h2 := dial(addrB, clusterTarget, "iqn.2026-11.io.sanbridge:h2", 2)
	block := make([]byte, 512)
	if r := do(h2, testinit.Write10(0, 1), block, 0); r.Status != scsi.Good {
		t.Fatalf("write through B: %v", r)
	}
	if r := do(h1, testinit.PersistentReserveOut(0, 0, 24), testinit.PRParams(0, 0x11, 0), 0); r.Status != scsi.Good {
		t.Fatalf("REGISTER through A: %v", r)
	}
	if r := do(h1, testinit.PersistentReserveOut(1, 1, 24), testinit.PRParams(0x11, 0, 0), 0); r.Status != scsi.Good {
		t.Fatalf("RESERVE through A: %v", r)
	}
	if r := do(h2, testinit.Write10(0, 1), block, 0); r.Status != scsi.ReservationConflict {
		t.Fatalf("write through B under A's Write Exclusive: %v", r)
	}
	if r := do(h2, testinit.Read10(0, 1), nil, 512); r.Status != scsi.Good {
		t.Fatalf("read through B under A's Write Exclusive: %v", r)
	}

	// Latency: PR OUT (REGISTER AND IGNORE EXISTING KEY with a new key)
	// and a 512-byte read, both through A.
	const rounds = 50
	start := time.Now()
	for i := range rounds {
		if r := do(h1, testinit.PersistentReserveOut(6, 0, 24), testinit.PRParams(0, uint64(0x100+i), 0), 0); r.Status != scsi.Good {
			t.Fatalf("REGISTER AND IGNORE through A: %v", r)
		}
	}
	prOut := time.Since(start) / rounds
	start = time.Now()
	for range 10 * rounds {
		if r := do(h1, testinit.Read10(0, 1), nil, 512); r.Status != scsi.Good {
			t.Fatalf("read through A: %v", r)
		}
	}
	read := time.Since(start) / (10 * rounds)
	if r := do(h1, testinit.PersistentReserveOut(3, 0, 24), testinit.PRParams(uint64(0x100+rounds-1), 0, 0), 0); r.Status != scsi.Good {
		t.Fatalf("CLEAR through A: %v", r)
	}
	// The same reads from a gateway that is not clustered, for comparison.
	plain := dial(startGateway(t, conformanceConfig("")), conformanceTarget, "iqn.2026-11.io.sanbridge:h3", 3)
	start = time.Now()
	for range 10 * rounds {
		if r := do(plain, testinit.Read10(0, 1), nil, 512); r.Status != scsi.Good {
			t.Fatalf("read through an unclustered gateway: %v", r)
		}
	}
	plainRead := time.Since(start) / (10 * rounds)
	t.Logf("latency through a gateway of a 2-gateway cluster: PR OUT %v, READ(10) of one block %v (unclustered gateway: %v)", prOut, read, plainRead)
	h1.Close()
	h2.Close()

	cu, err := exec.LookPath("iscsi-test-cu")
	if err != nil {
		t.Logf("iscsi-test-cu not installed: libiscsi families across gateways not run")
		return
	}
	urlA := fmt.Sprintf("iscsi://%s/%s/0", addrA, clusterTarget)
	urlB := fmt.Sprintf("iscsi://%s/%s/0", addrB, clusterTarget)
	for _, fam := range []string{"ALL.PrinReadKeys", "ALL.PrinReportCapabilities", "ALL.ProutRegister", "ALL.ProutReserve", "ALL.ProutClear", "ALL.ProutPreempt", "ALL.Reserve6", "ALL.MultipathIO"} {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		out, err := exec.CommandContext(cctx, cu, "-d", "-v", "-t", fam, "-i", cuInitiator1, "-I", cuInitiator2, urlA, urlB).CombinedOutput()
		cancel()
		results := parseCU(string(out))
		if len(results) == 0 {
			t.Fatalf("%s: no test ran (%v):\n%s", fam, err, tail(string(out), 40))
		}
		for _, r := range results {
			switch {
			case r.failed:
				t.Errorf("iscsi-test-cu %s.%s FAILED across gateways", r.suite, r.name)
			case r.skipped:
				t.Errorf("iscsi-test-cu %s.%s skipped across gateways", r.suite, r.name)
			}
		}
		passed := 0
		for _, r := range results {
			if !r.failed && !r.skipped {
				passed++
			}
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", fam, tail(string(out), 80))
			return
		}
		t.Logf("%s: %d of %d tests passed with the multipath session through the other gateway", fam, passed, len(results))
	}
}
