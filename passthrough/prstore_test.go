package passthrough

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

func TestMemStoreCompareAndSwap(t *testing.T) {
	var s MemStore
	ctx := t.Context()
	rec, ver, err := s.Load(ctx, "lu")
	if err != nil || ver != 0 || len(rec.Registrations) != 0 {
		t.Fatalf("empty store: %+v version %d, %v", rec, ver, err)
	}
	rec.Registrations = []PRRegistration{{Key: 1, InitiatorName: "iqn.x:a", ISID: "000000000001", TargetPort: "t,t,0x1"}}
	if ver, err = s.CompareAndSwap(ctx, "lu", 0, rec); err != nil || ver != 1 {
		t.Fatalf("first swap: version %d, %v", ver, err)
	}
	if _, err := s.CompareAndSwap(ctx, "lu", 0, rec); !errors.Is(err, ErrPRConflict) {
		t.Fatalf("swap from a stale version: %v", err)
	}
	// The store keeps its own copy: changing the caller's changes nothing.
	rec.Registrations[0].Key = 99
	got, ver, _ := s.Load(ctx, "lu")
	if ver != 1 || got.Registrations[0].Key != 1 {
		t.Fatalf("stored record changed through the caller's: %+v version %d", got, ver)
	}
	got.Registrations[0].Key = 98
	if again, _, _ := s.Load(ctx, "lu"); again.Registrations[0].Key != 1 {
		t.Fatal("stored record changed through a loaded copy")
	}
	if other, ver, _ := s.Load(ctx, "other"); ver != 0 || len(other.Registrations) != 0 {
		t.Fatal("keys share records")
	}
}

func TestFileStorePaths(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, key := range []string{"naa.5000c50015ea71a0", "../../etc/passwd", "a/b", "a_b", ".", "..", "", strings.Repeat("x", 300), "serial:ZA1234 5678"} {
		p := s.path(key)
		if filepath.Dir(p) != dir || !strings.HasPrefix(filepath.Base(p), "pr-") || len(filepath.Base(p)) > 100 {
			t.Errorf("key %q: file %q", key, p)
		}
		if prev, dup := seen[p]; dup {
			t.Errorf("keys %q and %q share %q", prev, key, p)
		}
		seen[p] = key
	}
	// A missing directory is created; a file in the way is an error.
	if _, err := NewFileStore(filepath.Join(dir, "sub", "deeper")); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileStore(f); err == nil {
		t.Fatal("NewFileStore over a file succeeded")
	}
}

// prFiles lists the files in dir.
func prFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestPRAPTPLRestart(t *testing.T) {
	dir := t.TempDir()
	store, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newPRHarness(t, store, port1, port2)
	h.good(hostA, saRegister, 0, basicParams(0, 0xa, flagAPTPL))
	h.good(hostB, saRegisterAndIgnore, 0, basicParams(0, 0xb, flagAPTPL|flagAllTgPt))
	h.good(hostC, saRegister, 0, specParams(0, 0xc, flagAPTPL, wireTID(hostD.InitiatorName, "")))
	h.good(hostA, saReserve, PRWriteExclusiveRegistrantsOnly, basicParams(0xa, 0, 0))
	if files := prFiles(t, dir); len(files) != 1 || !strings.HasSuffix(files[0], ".json") {
		t.Fatalf("files %q", files)
	}
	before := h.in(hostC, saReadFullStatus)

	// The gateway restarts: a new store on the same directory.
	store2, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h2 := newPRHarness(t, store2, port1, port2)
	if after := h2.in(hostC, saReadFullStatus); string(after) != string(before) {
		t.Fatalf("READ FULL STATUS after restart\n% x\nwant\n% x", after, before)
	}
	if key, typ := h2.reservation(); key != 0xa || typ != PRWriteExclusiveRegistrantsOnly {
		t.Fatalf("reservation after restart: %x %v", key, typ)
	}
	caps := h2.in(hostA, saReportCapabilities)
	if caps[2]&0x01 == 0 || caps[3]&0x01 == 0 {
		t.Fatalf("REPORT CAPABILITIES % x: want PTPL_C and PTPL_A", caps)
	}
	write10 := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	hostB2 := PRNexus{InitiatorName: hostB.InitiatorName, ISID: hostB.ISID, TargetPort: port2.Name, RelTargetPortID: 2}
	hostDnew := PRNexus{InitiatorName: hostD.InitiatorName, ISID: "400001370009", TargetPort: port1.Name, RelTargetPortID: 1}
	for n, conflict := range map[PRNexus]bool{hostA: false, hostB: false, hostB2: false, hostDnew: false, hostAnew: true, hostA2: true} {
		if got := h2.pr.Conflict(n, write10); got != conflict {
			t.Errorf("after restart, WRITE from %v: conflict %v, want %v", n, got, conflict)
		}
	}
	if gen, _ := h2.readKeys(); gen != 3 {
		t.Fatalf("generation %d after restart, want 3", gen)
	}

	// APTPL 0 from the last registration change: the file goes, and the
	// next restart finds nothing, while this run keeps the state.
	h2.good(hostB, saRegister, 0, basicParams(0xb, 0xbb, 0))
	if files := prFiles(t, dir); len(files) != 0 {
		t.Fatalf("files %q after APTPL 0", files)
	}
	if _, typ := h2.reservation(); typ != PRWriteExclusiveRegistrantsOnly {
		t.Fatal("APTPL 0 dropped the live state")
	}
	if caps := h2.in(hostA, saReportCapabilities); caps[3]&0x01 != 0 {
		t.Fatal("PTPL_A still set")
	}
	store3, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h3 := newPRHarness(t, store3)
	if gen, keys := h3.readKeys(); gen != 0 || len(keys) != 0 || h3.pr.Active() {
		t.Fatalf("state without APTPL came back: generation %d keys %x", gen, keys)
	}
}

func TestFileStoreBadFiles(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":       "{",
		"other format":   `{"format":2,"key":"lu","version":1,"record":{}}`,
		"other key":      `{"format":1,"key":"other","version":1,"record":{}}`,
		"version 0":      `{"format":1,"key":"lu","version":0,"record":{}}`,
		"zero key":       `{"format":1,"key":"lu","version":1,"record":{"registrations":[{"key":0,"initiator":"iqn.x:a","target_port":"t"}]}}`,
		"no holder":      `{"format":1,"key":"lu","version":1,"record":{"type":1,"registrations":[{"key":1,"initiator":"iqn.x:a","target_port":"t"}]}}`,
		"unknown type":   `{"format":1,"key":"lu","version":1,"record":{"type":2,"registrations":[{"key":1,"initiator":"iqn.x:a","target_port":"t","holder":true}]}}`,
		"bad ISID":       `{"format":1,"key":"lu","version":1,"record":{"registrations":[{"key":1,"initiator":"iqn.x:a","isid":"xyz","target_port":"t"}]}}`,
		"overlapping":    `{"format":1,"key":"lu","version":1,"record":{"registrations":[{"key":1,"initiator":"iqn.x:a","target_port":"t"},{"key":2,"initiator":"IQN.X:A","isid":"000000000001","target_port":"t"}]}}`,
		"no reservation": `{"format":1,"key":"lu","version":1,"record":{"type":7}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := NewFileStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.path("lu"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := NewPR(t.Context(), s, "lu", PRHooks{}); err == nil {
				t.Fatal("NewPR accepted the file")
			}
		})
	}
}

// faultyStore is a MemStore whose operations fail on demand.
type faultyStore struct {
	MemStore
	mu      sync.Mutex
	loadErr error
	casErr  error // returned instead of storing
	cas     int   // CompareAndSwap calls
}

func (s *faultyStore) fail(load, cas error) {
	s.mu.Lock()
	s.loadErr, s.casErr = load, cas
	s.mu.Unlock()
}

func (s *faultyStore) Load(ctx context.Context, key string) (PRRecord, uint64, error) {
	s.mu.Lock()
	err := s.loadErr
	s.mu.Unlock()
	if err != nil {
		return PRRecord{}, 0, err
	}
	return s.MemStore.Load(ctx, key)
}

func (s *faultyStore) CompareAndSwap(ctx context.Context, key string, version uint64, rec PRRecord) (uint64, error) {
	s.mu.Lock()
	s.cas++
	err := s.casErr
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return s.MemStore.CompareAndSwap(ctx, key, version, rec)
}

func TestPRStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		key  scsi.SenseKey
		asc  scsi.ASC
	}{
		{"I/O error", &os.PathError{Op: "write", Path: "/var/lib/sanbridge/pr", Err: syscall.EIO}, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure},
		{"no space", &os.PathError{Op: "write", Path: "/var/lib/sanbridge/pr", Err: syscall.ENOSPC}, scsi.SenseIllegalRequest, scsi.ASCInsufficientRegResources},
		{"lost every race", fmt.Errorf("shared store: %w", ErrPRConflict), scsi.SenseAbortedCommand, scsi.ASCNoAdditionalSense},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &faultyStore{}
			h := newPRHarness(t, store)
			h.register(hostA, 0xa)
			h.register(hostB, 0xb)
			h.good(hostB, saReserve, PRExclusiveAccess, basicParams(0xb, 0, 0))
			h.takeUAs()
			before := prState(h)
			store.fail(nil, tc.err)
			store.cas = 0
			st, sense := h.out(hostA, saPreemptAndAbort, PRExclusiveAccess, basicParams(0xa, 0xb, 0))
			wantSense(t, st, sense, tc.key, tc.asc, false, -1, 0)
			if got := prState(h); got != before {
				t.Fatalf("state %q after a failed store, was %q", got, before)
			}
			if uas, aborts := h.takeUAs(), h.takeAborts(); len(uas) != 0 || len(aborts) != 0 {
				t.Fatalf("failed PREEMPT AND ABORT raised %v and aborted %v", uas, aborts)
			}
			if !h.pr.Conflict(hostA, []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}) {
				t.Fatal("B's reservation no longer enforced")
			}
			want := 1
			if errors.Is(tc.err, ErrPRConflict) {
				want = prMaxCASTries
			}
			if store.cas != want {
				t.Fatalf("%d tries, want %d", store.cas, want)
			}
			store.fail(nil, nil)
			h.good(hostA, saPreemptAndAbort, PRExclusiveAccess, basicParams(0xa, 0xb, 0))
			if got := prState(h); got != "a* type 3" {
				t.Fatalf("state %q after the store recovered", got)
			}
		})
	}
	t.Run("load", func(t *testing.T) {
		store := &faultyStore{}
		h := newPRHarness(t, store)
		h.register(hostA, 0xa)
		store.fail(&os.PathError{Op: "read", Path: "/var/lib/sanbridge/pr", Err: syscall.EIO}, nil)
		st, sense := h.out(hostA, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0))
		wantSense(t, st, sense, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure, false, -1, 0)
		w, wanted, st, sense := h.pr.In(t.Context(), hostA, prinCDB(saReadKeys, 100), make([]byte, 100))
		if w != 0 || wanted != 0 {
			t.Fatalf("PR IN moved %d/%d bytes", w, wanted)
		}
		wantSense(t, st, sense, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure, false, -1, 0)
		if err := h.pr.Refresh(t.Context()); err == nil {
			t.Fatal("Refresh succeeded")
		}
		if got := prState(h); got != "a type 0" {
			t.Fatalf("state %q", got)
		}
	})
}

// TestFileStoreWriteFailure fails a real write: the state directory is
// gone when an APTPL registration must be saved.
func TestFileStoreWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	store, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := newPRHarness(t, store)
	h.good(hostA, saRegister, 0, basicParams(0, 0xa, flagAPTPL))
	h.good(hostA, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	st, sense := h.out(hostB, saRegister, 0, basicParams(0, 0xb, flagAPTPL))
	wantSense(t, st, sense, scsi.SenseHardwareError, scsi.ASCInternalTargetFailure, false, -1, 0)
	if got := prState(h); got != "a* type 1" {
		t.Fatalf("state %q after the failed write", got)
	}
	if gen, keys := h.readKeys(); gen != 1 || !slices.Equal(keys, []uint64{0xa}) {
		t.Fatalf("the store kept the failed write: generation %d keys %x", gen, keys)
	}
	// Once the directory is back, the same command works and is saved.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.good(hostB, saRegister, 0, basicParams(0, 0xb, flagAPTPL))
	if files := prFiles(t, dir); len(files) != 1 {
		t.Fatalf("files %q", files)
	}
}

// TestPRConcurrentGateways runs two PRs, as two gateways would, on one
// store: registrations and key changes from many I_T nexuses at once, none
// of them lost.
func TestPRConcurrentGateways(t *testing.T) {
	var store faultyStore // fails nothing; counts the swaps
	prs := [2]*prHarness{newPRHarness(t, &store), newPRHarness(t, &store)}
	const workers, each = 4, 16
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				n := PRNexus{InitiatorName: fmt.Sprintf("iqn.2026-01.io.example:host%d", w), ISID: fmt.Sprintf("%012x", i),
					TargetPort: port1.Name, RelTargetPortID: 1}
				key := uint64(w<<8 | i + 1)
				for step, params := range [][]byte{basicParams(0, key, 0), basicParams(key, key<<16, 0)} {
					pr := prs[(w+i+step)%2].pr
					// An initiator retries ABORTED COMMAND; the store must
					// never lose what was answered GOOD.
					st, sense := pr.Out(t.Context(), n, proutCDB(saRegister, 0, 0, 24), params)
					for try := 0; st == scsi.CheckCondition && try < 100; try++ {
						s, _ := scsi.ParseSense(sense)
						if s.Key != scsi.SenseAbortedCommand {
							break
						}
						st, sense = pr.Out(t.Context(), n, proutCDB(saRegister, 0, 0, 24), params)
					}
					if st != scsi.Good {
						errs <- fmt.Errorf("%v step %d: %v %s", n, step, st, senseString(sense))
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, h := range prs {
		gen, keys := h.readKeys()
		slices.Sort(keys)
		var want []uint64
		for w := range workers {
			for i := range each {
				want = append(want, uint64(w<<8|i+1)<<16)
			}
		}
		slices.Sort(want)
		if gen != 2*workers*each || !slices.Equal(keys, want) {
			t.Fatalf("generation %d, %d keys, want %d and %d keys", gen, len(keys), 2*workers*each, len(want))
		}
	}
	t.Logf("%d swaps for %d changes", store.cas, 2*workers*each)
	// The PR that did not run the last command learns of it by Refresh.
	for _, h := range prs {
		if err := h.pr.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(h.pr.Snapshot().Registrations); n != workers*each {
			t.Fatalf("cached %d registrations", n)
		}
	}
}
