package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sanbridge/sanbridge/bridge/metrics"
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// TestStatusAndAdmin: sanbridge status's JSON (through the admin
// endpoint on a unix socket) lists the sessions with what they
// negotiated, the logical units with their reservations, the targets and
// the last reload; POST /reload reloads, and a failing reload answers 409
// with the error.
func TestStatusAndAdmin(t *testing.T) {
	src := reloadConfig("", "", "")
	next := src
	loadErr := error(nil)
	b, addr := runGateway(t, src, Options{Load: func() (*conf.Config, error) {
		if loadErr != nil {
			return nil, loadErr
		}
		cfg, diags := conf.Parse([]byte(next), "next.hcl")
		if diags.HasErrors() {
			return nil, diags
		}
		return cfg, nil
	}})
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ls, err := AdminListeners(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { ServeAdmin(ctx, b.AdminHandler(), ls, b.log); close(served) }()
	t.Cleanup(func() { cancel(); <-served })
	if _, err := AdminListeners(sock, ""); err == nil {
		t.Fatal("a second admin endpoint took the live socket")
	}

	s := mustDial(t, addr, hostA, reloadT1, 7)
	ready(t, s, 0)
	expect(t, "PR REGISTER", s.Do(0, testinit.PersistentReserveOut(0, 0, 24), testinit.PRParams(0, 0xabc, 0), 0), scsi.Good)
	s2 := mustDial(t, addr, hostB, reloadT2, 8)
	ready(t, s2, 0)
	expect(t, "RESERVE(6)", s2.Do(0, testinit.Reserve6(), nil, 0), scsi.Good)

	client, base := AdminClient(sock)
	get := func() Status {
		resp, err := client.Get(base + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := get()
	if len(st.Sessions) != 2 {
		t.Fatalf("sessions: %+v", st.Sessions)
	}
	ss := st.Sessions[0]
	if ss.Target != reloadT1 || ss.Initiator != hostA || ss.ISID != "800000000007" || ss.Portal != "127.0.0.1:0" ||
		ss.PortalGroup != 1 || ss.LoginTime.IsZero() || ss.Params.MaxBurstLength == 0 || ss.TSIH == 0 || !strings.HasPrefix(ss.Remote, "127.0.0.1:") {
		t.Fatalf("session: %+v", ss)
	}
	lus := map[string]LUStatus{}
	for _, l := range st.LUs {
		lus[l.Backend] = l
	}
	if d0 := lus["d0"]; d0.Kind != "emulated" || d0.State != "present" || d0.Key != "emulated:d0" ||
		len(d0.Registrations) != 1 || d0.Registrations[0].Key != "0xabc" || d0.Registrations[0].Initiator != hostA {
		t.Fatalf("LU d0: %+v", d0)
	}
	if d1 := lus["d1"]; d1.SPC2Holder != hostB+",i,0x800000000008" || len(d1.Registrations) != 0 {
		t.Fatalf("LU d1: %+v", d1)
	}
	if len(st.Targets) != 2 || st.Targets[0].Name != reloadT1 || len(st.Targets[0].LUNs) != 1 || st.Targets[0].LUNs[0].Backend != "d0" {
		t.Fatalf("targets: %+v", st.Targets)
	}
	if !st.LastReload.OK || st.LastReload.Summary == "" || len(st.Portals) != 1 || st.Portals[0].Bound == "" {
		t.Fatalf("last reload %+v, portals %+v", st.LastReload, st.Portals)
	}

	reload := func() (int, ReloadResult) {
		resp, err := client.Post(base+"/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r ReloadResult
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	next = reloadConfig(`  lun "1" {
    backend = "d2"
  }`, "", "")
	if code, r := reload(); code != http.StatusOK || !r.OK || len(r.Changes) == 0 {
		t.Fatalf("reload: %d %+v", code, r)
	}
	loadErr = errors.New("next.hcl:3,1-7: Unsupported block type")
	if code, r := reload(); code != http.StatusConflict || r.OK || r.Error != loadErr.Error() {
		t.Fatalf("failing reload: %d %+v", code, r)
	}
	if st := get(); st.LastReload.OK || len(st.Targets[0].LUNs) != 2 {
		t.Fatalf("after the failing reload: %+v, %+v", st.LastReload, st.Targets[0].LUNs)
	}
}

// TestMetricsAfterTraffic: a scrape after commands, a failed login and a
// reload shows them in the per-LUN and per-initiator series, the session
// gauge, the login counters and the reload counter.
func TestMetricsAfterTraffic(t *testing.T) {
	reg := metrics.New("test")
	b, addr := runGateway(t, reloadConfig("", "", ""), Options{Metrics: reg})
	s := mustDial(t, addr, hostA, reloadT1, 1)
	ready(t, s, 0)
	data := make([]byte, 8*512)
	expect(t, "WRITE", s.Do(0, testinit.Write10(0, 8), data, 0), scsi.Good)
	expect(t, "READ", s.Do(0, testinit.Read10(0, 8), nil, 4096), scsi.Good)
	expect(t, "TEST UNIT READY to a LUN outside the view", s.Do(5, testinit.TUR(), nil, 0), scsi.CheckCondition)
	if _, err := dial(t, addr, hostA, "iqn.2026-11.io.sanbridge:nope", 2); err == nil {
		t.Fatal("login to a missing target succeeded")
	}
	if r := b.Reload(mustParse(t, reloadConfig("", "", ""), "same.hcl")); !r.OK {
		t.Fatalf("reload: %+v", r)
	}

	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	lun := map[string]string{"target": reloadT1, "lun": "0"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"sanbridge_lun_commands_total", with(lun, "kind", "write"), 1},
		{"sanbridge_lun_commands_total", with(lun, "kind", "read"), 1},
		{"sanbridge_lun_bytes_total", with(lun, "direction", "read"), 4096},
		{"sanbridge_lun_bytes_total", with(lun, "direction", "write"), 4096},
		{"sanbridge_lun_command_errors_total", map[string]string{"target": reloadT1, "lun": "5", "sense_key": "ILLEGAL REQUEST"}, 1},
		{"sanbridge_initiator_commands_total", map[string]string{"initiator": hostA, "kind": "read"}, 1},
		{"sanbridge_sessions", map[string]string{"target": reloadT1}, 1},
		{"sanbridge_logins_total", map[string]string{"target": reloadT1}, 1},
		{"sanbridge_login_failures_total", map[string]string{"reason": "target not found"}, 1},
		{"sanbridge_reloads_total", map[string]string{"result": "ok"}, 1},
	} {
		if got := metricValue(t, fams, c.name, c.labels); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	if got := metricValue(t, fams, "sanbridge_memory_budget_bytes", nil); got <= 0 {
		t.Errorf("memory budget %v", got)
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

// metricValue returns the value of the counter or gauge of family name
// whose labels include want.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("family %s missing", name)
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	var have []string
	for _, m := range f.GetMetric() {
		have = append(have, m.String())
	}
	t.Fatalf("%s%v not found in %s", name, want, strings.Join(have, "; "))
	return 0
}

// TestGracefulStop: the stop refuses new logins and asks the sessions to
// log out; a session whose command is at the device when the stop
// begins, and which does not log out (testinit ignores the request),
// gets the command's answer even when the device takes longer than its
// DefaultTime2Wait.
func TestGracefulStop(t *testing.T) {
	shelf := newFakeShelf(t)
	shelf.plug(1, wwnA, "A1")
	src := `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:stop" {
  lun "0" {
    device {
      wwn = "` + wwnA + `"
    }
  }
}
`
	b, addr, stop := shelf.gateway(t, src, Options{DrainTimeout: 20 * time.Second})
	s := mustDial(t, addr, hostA, "iqn.2026-11.io.sanbridge:stop", 1)
	ready(t, s, 0)
	fd := shelf.disks["wwn:"+wwnA]
	fd.hold, fd.entered = make(chan struct{}), make(chan struct{}, 1)
	task := s.Start(0, testinit.Read10(0, 8), nil, 8*512)
	<-fd.entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	for len(b.Server().SessionDetails()) > 0 && b.Server().SessionDetails()[0].LogoutRequested.IsZero() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := dial(t, addr, hostB, "iqn.2026-11.io.sanbridge:stop", 2); err == nil {
		t.Fatal("a login succeeded during the stop")
	}
	time.Sleep(2500 * time.Millisecond) // past DefaultTime2Wait (2 s): the session is not dropped with the READ at the device
	close(fd.hold)
	r := task.Wait()
	expect(t, "the READ in flight at the stop", r, scsi.Good)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the stop did not end")
	}
}
