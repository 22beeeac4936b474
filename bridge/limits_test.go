package bridge

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func TestEngineLimits(t *testing.T) {
	l := conf.Limits{Memory: 64 << 20, MaxTransfer: 1 << 20, MaxSessions: 9, MaxOutstandingR2T: 4,
		LoginTimeout: 7 * time.Second, AuthDelay: time.Second, AuthLockoutAfter: 5}
	got, timeout := engineLimits(&l)
	if got.Memory != 64<<20 || got.MaxTransfer != 1<<20 || got.MaxSessions != 9 || got.MaxOutstandingR2T != 4 ||
		got.Auth.Delay != time.Second || got.Auth.LockoutAfter != 5 || timeout != 7*time.Second {
		t.Errorf("engineLimits = %+v, %v", got, timeout)
	}
	// Without limits.memory: a quarter of the machine, within bounds.
	b := MemoryBudget(&conf.Limits{})
	if total, ok := physicalMemory(); ok {
		if want := min(max(total/4, minMemoryBudget), maxMemoryBudget); b != want {
			t.Errorf("MemoryBudget = %d with %d bytes of memory, want %d", b, total, want)
		}
	} else if b != iscsi.DefaultMemoryBudget {
		t.Errorf("MemoryBudget = %d without /proc/meminfo", b)
	}
	if GoMemoryLimit(1<<30) <= 1<<30 {
		t.Error("the Go memory limit leaves no room above the budget")
	}
}

// TestHugeReadAnsweredAtOnce is issue 10's reproduction through the
// whole gateway: a READ(16) of 0xFFFFFFFF blocks with an expected length
// of 4 GiB - 1 against a 64 MiB emulated disk is answered at once with
// LOGICAL BLOCK ADDRESS OUT OF RANGE, nothing near its size allocated,
// and the session goes on.
func TestHugeReadAnsweredAtOnce(t *testing.T) {
	cfg, diags := conf.Parse([]byte(conformanceConfig("")+`
limits {
  memory = "64MiB"
}
`), "huge.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b, err := New(cfg, Options{Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs, err := b.Listen(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	s := mustDial(t, addrs[0].String(), "iqn.2026-11.io.sanbridge:huge", conformanceTarget, 1)
	for s.Do(0, make([]byte, 6), nil, 0).Status != scsi.Good { // unit attentions
	}
	cdb := make([]byte, 16)
	cdb[0] = byte(scsi.OpRead16)
	binary.BigEndian.PutUint32(cdb[10:], 0xffffffff)
	start := time.Now()
	r := s.Do(0, cdb, nil, 1<<32-1)
	took := time.Since(start)
	expect(t, "READ(16) of 4G blocks", r, scsi.CheckCondition, scsi.SenseIllegalRequest, scsi.ASCLBAOutOfRange)
	expect(t, "TEST UNIT READY after it", s.Do(0, make([]byte, 6), nil, 0), scsi.Good)
	st := b.Server().LimitStats()
	t.Logf("answered in %v; the server held at most %d bytes (budget %d)", took, st.MemoryPeak, st.MemoryLimit)
	if st.MemoryPeak > 1<<20 || st.TransferRefused != 1 {
		t.Errorf("stats %+v", st)
	}
}
