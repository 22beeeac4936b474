package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// TestStoreUnavailable: while etcd has no quorum, the store's errors are
// passthrough.ErrPRUnavailable, and a PERSISTENT RESERVE OUT or a
// RESERVE, whether the fence has tripped yet or not, is answered NOT READY, LOGICAL UNIT
// NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION (retried by
// initiators), never HARDWARE ERROR; once the quorum is back the same
// command succeeds.
func TestStoreUnavailable(t *testing.T) {
	ec, _, a, _, h1, _ := twoGateways(t)
	ctx := context.Background()
	store := a.node.Store()
	pr, err := passthrough.NewPR(ctx, store, "direct", passthrough.PRHooks{})
	if err != nil {
		t.Fatal(err)
	}
	nx := passthrough.PRNexus{InitiatorName: "iqn.2026-11.io.sanbridge:h9", ISID: "800000000009", TargetPort: testTarget + ",t,0x0001", RelTargetPortID: 1}
	register := testinit.PersistentReserveOut(0, 0, 24)

	// Gateway A's member lives, the two others die: no quorum.
	ec.Members[1].Kill()
	ec.Members[2].Kill()
	r := a.prOut(h1, 0, 0, testinit.PRParams(0, 0x11, 0))
	wantSense(t, "REGISTER through A without quorum", r, scsi.SenseNotReady, scsi.NewASC(0x04, 0x0a))
	wantSense(t, "RESERVE(6) through A without quorum", a.run(h1, testinit.Reserve6(), nil, 0), scsi.SenseNotReady, scsi.NewASC(0x04, 0x0a))

	// The store itself, with no fence in between.
	start := time.Now()
	if _, _, err := store.Load(ctx, "direct"); !errors.Is(err, passthrough.ErrPRUnavailable) {
		t.Fatalf("load without quorum: %v, want ErrPRUnavailable", err)
	}
	t.Logf("load without quorum failed after %v", time.Since(start))
	if _, err := store.CompareAndSwap(ctx, "direct", 0, passthrough.PRRecord{Generation: 1}); !errors.Is(err, passthrough.ErrPRUnavailable) {
		t.Fatalf("compare-and-swap without quorum: %v, want ErrPRUnavailable", err)
	}
	st, sense := pr.Out(ctx, nx, register, testinit.PRParams(0, 0x99, 0))
	if s, _ := scsi.ParseSense(sense); st != scsi.CheckCondition || s.Key != scsi.SenseNotReady || s.ASC != scsi.NewASC(0x04, 0x0a) {
		t.Fatalf("PR OUT without quorum: %v %v, want NOT READY 04/0A", st, &s)
	}

	ec.Members[1].Start()
	ec.Members[2].Start()
	ec.Members[1].WaitHealthy()
	ec.Members[2].WaitHealthy()
	st, sense = pr.Out(ctx, nx, register, testinit.PRParams(0, 0x99, 0))
	if st != scsi.Good {
		s, _ := scsi.ParseSense(sense)
		t.Fatalf("PR OUT with the quorum back: %v %v", st, &s)
	}
	// Through A, retried as initiators do on unit attentions and on NOT
	// READY while A catches up.
	end := time.Now().Add(30 * time.Second)
	for {
		r = a.prOut(h1, 0, 0, testinit.PRParams(0, 0x11, 0))
		s, _ := scsi.ParseSense(r.Sense)
		retry := r.Status == scsi.CheckCondition && (s.Key == scsi.SenseUnitAttention || s.Key == scsi.SenseNotReady && s.ASC == scsi.NewASC(0x04, 0x0a))
		if !retry || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantStatus(t, "REGISTER through A with the quorum back", r, scsi.Good)
}
