package cluster

import (
	"context"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// TestSharedTaskManagement: a LOGICAL UNIT RESET, a TARGET RESET and a
// CLEAR TASK SET through one gateway raise their unit attentions on the
// other gateway's I_T nexuses by the time the function completes.
func TestSharedTaskManagement(t *testing.T) {
	_, _, a, b, h1, h2 := twoGateways(t)
	tur := testinit.TUR()
	ctx := context.Background()

	b.lunReset(t, h2)
	wantSense(t, "h2 after its LOGICAL UNIT RESET", b.run(h2, tur, nil, 0), scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
	wantSense(t, "h1 through A after the reset through B", a.run(h1, tur, nil, 0), scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
	wantStatus(t, "h1 once told", a.run(h1, tur, nil, 0), scsi.Good)

	if r := a.tg.TaskManagement(ctx, h1, iscsi.TMFClearTaskSet, iscsi.MakeLUN(0)); r != iscsi.TMFComplete {
		t.Fatalf("CLEAR TASK SET: %v", r)
	}
	wantStatus(t, "h1 after its own CLEAR TASK SET", a.run(h1, tur, nil, 0), scsi.Good)
	wantSense(t, "h2 through B after the CLEAR TASK SET through A", b.run(h2, tur, nil, 0), scsi.SenseUnitAttention, scsi.ASCCommandsClearedByAnother)

	if r := a.tg.TaskManagement(ctx, h1, iscsi.TMFTargetWarmReset, iscsi.MakeLUN(0)); r != iscsi.TMFComplete {
		t.Fatalf("TARGET WARM RESET: %v", r)
	}
	wantSense(t, "h2 through B after the target reset through A", b.run(h2, tur, nil, 0), scsi.SenseUnitAttention, scsi.ASCBusDeviceResetOccurred)
}
