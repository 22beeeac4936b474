//go:build linux

package discover

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// openMonitor opens a monitor or skips the test where netlink is not
// permitted (sandboxes).
func openMonitor(t *testing.T, subsystems ...string) *UeventMonitor {
	t.Helper()
	m, err := OpenUeventMonitor(subsystems...)
	if err != nil {
		t.Skipf("netlink uevent socket not permitted here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// synthesize makes the kernel emit a synthetic "change" uevent for the
// device at sysfs path dev (writing "change UUID" to its uevent file,
// Documentation/ABI/testing/sysfs-uevent) and returns the UUID the event
// carries as SYNTH_UUID. It skips the test where /sys is read-only.
func synthesize(t *testing.T, dev string) string {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if err := os.WriteFile("/sys"+dev+"/uevent", []byte("change "+uuid), 0); err != nil {
		t.Skipf("cannot trigger a uevent (needs root and a writable /sys): %v", err)
	}
	return uuid
}

// next returns the next event with SYNTH_UUID uuid (other tests or the
// machine may produce events meanwhile), bounded generously.
func next(t *testing.T, m *UeventMonitor, uuid string) Uevent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		u, err := m.Next(ctx)
		if errors.Is(err, ErrUeventOverflow) {
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if u.Env["SYNTH_UUID"] == uuid {
			return u
		}
	}
}

// TestUeventMonitorLive receives real kernel uevents: synthetic "change"
// events of /dev/null (subsystem mem) and of lo (subsystem net); only the
// monitored subsystem comes through.
func TestUeventMonitorLive(t *testing.T) {
	m := openMonitor(t, "mem")
	skipped := synthesize(t, "/devices/virtual/net/lo") // net: filtered out
	want := synthesize(t, "/devices/virtual/mem/null")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		u, err := m.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if u.Env["SYNTH_UUID"] == skipped {
			t.Fatalf("event of an unmonitored subsystem: %+v", u)
		}
		if u.Env["SYNTH_UUID"] != want {
			continue
		}
		if u.Action != ActionChange || u.Subsystem != "mem" || u.DevName != "null" || u.DevPath != "/devices/virtual/mem/null" || u.Seq == 0 {
			t.Fatalf("event %+v", u)
		}
		break
	}
}

// TestUeventMonitorCancel: Next returns when its context ends, and the
// monitor still works afterwards.
func TestUeventMonitorCancel(t *testing.T) {
	m := openMonitor(t, "mem")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := m.Next(ctx)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel: %v", err)
	}
	uuid := synthesize(t, "/devices/virtual/mem/null")
	if u := next(t, m, uuid); u.Subsystem != "mem" {
		t.Fatalf("event %+v", u)
	}
	// Close unblocks a pending Next.
	go func() {
		_, err := m.Next(context.Background())
		done <- err
	}()
	m.Close()
	if err := <-done; err == nil {
		t.Fatal("Next on a closed monitor succeeded")
	}
}
