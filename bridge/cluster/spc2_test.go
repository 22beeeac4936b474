package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// TestSharedReserve: an SPC-2 reservation made through gateway A is
// enforced on gateway B as soon as RESERVE returns, and ends everywhere
// on RELEASE, on the holder's nexus loss and on a LOGICAL UNIT RESET
// through the other gateway.
func TestSharedReserve(t *testing.T) {
	_, _, a, b, h1, h2 := twoGateways(t)
	write := testinit.Write10(0, 1)
	block := make([]byte, 512)

	start := time.Now()
	wantStatus(t, "RESERVE(6) h1 through A", a.run(h1, testinit.Reserve6(), nil, 0), scsi.Good)
	t.Logf("RESERVE(6) across two gateways took %v", time.Since(start))
	wantStatus(t, "WRITE from h2 through B", b.run(h2, write, block, 0), scsi.ReservationConflict)
	if _, holder := b.lu.Reservations(); holder != "another gateway" {
		t.Errorf("B's status names SPC-2 holder %q", holder)
	}
	st, err := b.node.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "iqn.2026-11.io.sanbridge:h1,i,0x800000000001 via " + testTarget + ",t,0x0001 on gw-a"; len(st.LUs) != 1 || st.LUs[0].SPC2Holder != want {
		t.Errorf("cluster status %+v, want SPC-2 holder %s", st.LUs, want)
	}
	wantStatus(t, "RESERVE(6) h2 through B", b.run(h2, testinit.Reserve6(), nil, 0), scsi.ReservationConflict)
	wantStatus(t, "INQUIRY from h2 through B", b.run(h2, testinit.Inquiry(36), nil, 36), scsi.Good)
	wantStatus(t, "RELEASE(6) from h2 through B", b.run(h2, testinit.Release6(), nil, 0), scsi.Good)
	wantStatus(t, "WRITE from h2 through B after its RELEASE", b.run(h2, write, block, 0), scsi.ReservationConflict)
	wantStatus(t, "WRITE from h1 through A", a.run(h1, write, block, 0), scsi.Good)
	wantStatus(t, "RESERVE(6) h1 again", a.run(h1, testinit.Reserve6(), nil, 0), scsi.Good)

	start = time.Now()
	wantStatus(t, "RELEASE(6) h1 through A", a.run(h1, testinit.Release6(), nil, 0), scsi.Good)
	t.Logf("RELEASE(6) across two gateways took %v", time.Since(start))
	wantStatus(t, "WRITE from h2 through B after the RELEASE", b.run(h2, write, block, 0), scsi.Good)

	// B's nexus reserves; A's h1 conflicts; B's session ends: h1 writes
	// once B has published it (the detach returns after).
	wantStatus(t, "RESERVE(6) h2 through B", b.run(h2, testinit.Reserve6(), nil, 0), scsi.Good)
	wantStatus(t, "WRITE from h1 through A", a.run(h1, write, block, 0), scsi.ReservationConflict)
	b.tg.Detach(h2)
	waitFor(t, 2*testTTL, func() bool { return a.run(h1, write, block, 0).Status == scsi.Good })

	// h1 reserves through A; a LOGICAL UNIT RESET through B ends it.
	h3 := b.login(t, "iqn.2026-11.io.sanbridge:h3", 3)
	wantStatus(t, "RESERVE(6) h1 through A", a.run(h1, testinit.Reserve6(), nil, 0), scsi.Good)
	wantStatus(t, "WRITE from h3 through B", b.run(h3, write, block, 0), scsi.ReservationConflict)
	b.lunReset(t, h3)
	waitFor(t, 2*testTTL, func() bool { return b.run(h3, write, block, 0).Status == scsi.Good })
}

// lunReset sends LOGICAL UNIT RESET for LUN 0 from in through g.
func (g *gateway) lunReset(t *testing.T, in *iscsi.Nexus) {
	t.Helper()
	if r := g.tg.TaskManagement(context.Background(), in, iscsi.TMFLogicalUnitReset, iscsi.MakeLUN(0)); r != iscsi.TMFComplete {
		t.Fatalf("LOGICAL UNIT RESET: %v", r)
	}
}
