package bridge

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/discover"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// runGateway starts a gateway for src (portals on 127.0.0.1:0) and
// returns it with its first portal's address; it stops at the end of the
// test.
func runGateway(t *testing.T, src string, opts Options) (*Bridge, string) {
	t.Helper()
	b, err := newTestBridge(t, mustParse(t, src, "gw.hcl"), opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveTestBridge(t, b)
	return b, addr
}

// newTestBridge is New with a fake inventory and sg opener when given.
func newTestBridge(t *testing.T, cfg *conf.Config, opts Options, inv *inventory, open sgOpener) (*Bridge, error) {
	t.Helper()
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	b := &Bridge{log: opts.Log, cfg: cfg, opts: opts, listeners: map[string]*portalListener{},
		known: map[string]bool{}, serveErr: make(chan error, 1), rescan: make(chan struct{}, 1), openSG: openSGDevice,
		sessions: newSessionCount()}
	b.inv = inv
	if inv == nil {
		b.inv = &inventory{scan: func() ([]discover.Device, error) { return nil, nil }}
	}
	if open != nil {
		b.openSG = open
	}
	return b.start(cfg)
}

// serveTestBridge serves b until the end of the test and returns its
// first portal's address; stop stops it and waits (also done at the end
// of the test).
func serveTestBridge(t *testing.T, b *Bridge) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs, err := b.Listen(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("gateway did not stop within 30 s")
			}
		})
	}
	t.Cleanup(stop)
	return addrs[0].String(), stop
}

func mustParse(t *testing.T, src, name string) *conf.Config {
	t.Helper()
	cfg, diags := conf.Parse([]byte(src), name)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", name, diags)
	}
	return cfg
}

const (
	reloadT1   = "iqn.2026-11.io.sanbridge:r1"
	reloadT2   = "iqn.2026-11.io.sanbridge:r2"
	reloadT3   = "iqn.2026-11.io.sanbridge:r3"
	hostA      = "iqn.2026-11.io.example:a"
	hostB      = "iqn.2026-11.io.example:b"
	hostGroupC = "iqn.2026-11.io.example:c"
)

// reloadConfig is the test configuration with extra text in target r1's
// default map, in r1's target block and at the end.
func reloadConfig(r1LUNs, r1Extra, tail string) string {
	return `
portal "lo" {
  listen = "127.0.0.1:0"
}
initiator_group "cgroup" {
  initiators = ["` + hostGroupC + `"]
}
backend "d0" {
  emulated {
    size   = "4MiB"
    serial = "d0"
  }
}
backend "d1" {
  emulated {
    size   = "4MiB"
    serial = "d1"
  }
}
backend "d2" {
  emulated {
    size   = "4MiB"
    serial = "d2"
  }
}
target "` + reloadT1 + `" {
  lun "0" {
    backend = "d0"
  }
` + r1LUNs + `
` + r1Extra + `
}
target "` + reloadT2 + `" {
  lun "0" {
    backend = "d1"
  }
}
` + tail
}

// TestReloadViews: a reload that adds a LUN to a target's default map
// gives the sessions that see it REPORTED LUNS DATA HAS CHANGED and the
// new LUN, keeps the data of the logical units it does not change, and
// leaves a session of another target, with commands running, alone; an
// invalid configuration changes nothing.
func TestReloadViews(t *testing.T) {
	src := reloadConfig("", "", "")
	b, addr := runGateway(t, src, Options{})
	a := mustDial(t, addr, hostA, reloadT1, 1)
	ready(t, a, 0)
	other := mustDial(t, addr, hostB, reloadT2, 2)
	ready(t, other, 0)
	data := bytes.Repeat([]byte("sanbridge"), 512)[:4096]
	expect(t, "WRITE LUN 0", a.Do(0, testinit.Write10(8, 8), data, 0), scsi.Good)
	if got := luns(t, a); got != "[0]" {
		t.Fatalf("REPORT LUNS before the reload: %s", got)
	}

	// The other session keeps a READ running throughout the reload.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var otherErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := other.Do(0, testinit.Read10(0, 64), nil, 64*512); r.Err != nil || r.Status != scsi.Good {
				otherErr = &reloadErr{r.String()}
				return
			}
		}
	}()

	res := b.Reload(mustParse(t, reloadConfig(`  lun "1" {
    backend = "d2"
  }`, "", ""), "gw2.hcl"))
	if !res.OK || !strings.Contains(strings.Join(res.Changes, "\n"), "views changed: "+reloadT1) {
		t.Fatalf("reload: %+v", res)
	}
	r := a.Do(0, testinit.TUR(), nil, 0)
	expect(t, "first command after the reload", r, scsi.CheckCondition, scsi.SenseUnitAttention, scsi.ASCReportedLUNsDataChanged)
	if got := luns(t, a); got != "[0 1]" {
		t.Fatalf("REPORT LUNS after the reload: %s", got)
	}
	rd := a.Do(0, testinit.Read10(8, 8), nil, 4096)
	expect(t, "READ LUN 0 after the reload", rd, scsi.Good)
	if !bytes.Equal(rd.Data, data) {
		t.Fatal("LUN 0 lost its data across the reload")
	}
	ready(t, a, 1)

	// An invalid configuration: a backing file that cannot be opened.
	bad := reloadConfig(`  lun "1" {
    backend = "d2"
  }
  lun "2" {
    emulated {
      size = "1MiB"
      file = "/nonexistent/dir/disk.img"
    }
  }`, "", "")
	res = b.Reload(mustParse(t, bad, "bad.hcl"))
	if res.OK || !strings.Contains(res.Error, "bad.hcl:") {
		t.Fatalf("invalid reload: %+v", res)
	}
	expect(t, "TUR after the failed reload", a.Do(0, testinit.TUR(), nil, 0), scsi.Good)
	if got := luns(t, a); got != "[0 1]" {
		t.Fatalf("REPORT LUNS after the failed reload: %s", got)
	}
	if last := b.LastReload(); last.OK || last.Error != res.Error {
		t.Fatalf("LastReload: %+v", last)
	}

	close(stop)
	wg.Wait()
	if otherErr != nil {
		t.Fatalf("the session of the unchanged target saw an error: %v", otherErr)
	}
	expect(t, "the other session after the reloads", other.Do(0, testinit.TUR(), nil, 0), scsi.Good)
}

type reloadErr struct{ s string }

func (e *reloadErr) Error() string { return e.s }

// TestReloadAccess: sessions that lose their access are asked to log out
// and end; a new target and a new portal serve at once; a removed portal
// closes.
func TestReloadAccess(t *testing.T) {
	b, addr := runGateway(t, reloadConfig("", "", ""), Options{})
	a := mustDial(t, addr, hostA, reloadT1, 1)
	ready(t, a, 0)
	bb := mustDial(t, addr, hostB, reloadT1, 2)
	ready(t, bb, 0)
	c := mustDial(t, addr, hostB, reloadT2, 3)
	ready(t, c, 0)

	// Only hostB may use r1 now; r2 is removed; r3 is new, on a new
	// portal.
	next := strings.Replace(reloadConfig("", `  initiator "`+hostB+`" {
  }`, `target "`+reloadT3+`" {
  portals = ["extra"]
  lun "0" {
    backend = "d2"
  }
}
portal "extra" {
  listen = "127.0.0.1:0"
  group  = 2
}`), `target "`+reloadT2+`" {
  lun "0" {
    backend = "d1"
  }
}`, "", 1)
	next = strings.Replace(next, `target "`+reloadT1+`" {`, `target "`+reloadT1+`" {
  portals = ["lo"]`, 1)
	res := b.Reload(mustParse(t, next, "access.hcl"))
	if !res.OK || res.LoggedOut != 2 {
		t.Fatalf("reload: %+v", res)
	}
	for _, s := range []*testinit.Session{a, c} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := s.Do(0, testinit.TUR(), nil, 0)
			if r.Err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a session that lost its access is still served")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	expect(t, "the session that kept its access", bb.Do(0, testinit.TUR(), nil, 0), scsi.Good)
	if _, err := dial(t, addr, hostA, reloadT1, 4); err == nil {
		t.Fatal("hostA logged in to r1 after losing access")
	}
	if _, err := dial(t, addr, hostB, reloadT2, 5); err == nil {
		t.Fatal("logged in to the removed target r2")
	}
	st := b.Status()
	extra := ""
	for _, p := range st.Portals {
		if p.Group == 2 {
			extra = p.Bound
		}
	}
	if extra == "" {
		t.Fatalf("the new portal is not bound: %+v", st.Portals)
	}
	n := mustDial(t, extra, hostA, reloadT3, 6)
	ready(t, n, 0)

	// The extra portal goes again.
	res = b.Reload(mustParse(t, reloadConfig("", "", ""), "back.hcl"))
	if !res.OK {
		t.Fatalf("reload back: %+v", res)
	}
	if _, err := dial(t, extra, hostA, reloadT3, 7); err == nil {
		t.Fatal("logged in through a removed portal")
	}
}
