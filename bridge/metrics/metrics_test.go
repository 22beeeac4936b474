package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const (
	tgt  = "iqn.2026-11.io.sanbridge:t1"
	host = "iqn.1998-01.com.vmware:esx1"
)

// scrape fetches /metrics from a live listener and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return fams
}

// find returns the metric of family name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("family %s missing", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s%v not found", name, want)
	return nil
}

func counter(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	return find(t, fams, name, want).GetCounter().GetValue()
}

func TestScrape(t *testing.T) {
	r := New("1.2.3")
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := r.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := srv.Wait(); err != nil {
			t.Error(err)
		}
	}()

	c := r.Command(tgt, 3, host)
	c.Done(KindRead, DirRead, 4096, 200*time.Microsecond, scsi.Good, 0)
	c.Done(KindRead, DirRead, 8192, 3*time.Millisecond, scsi.Good, 0)
	c.Done(KindWrite, DirWrite, 512, 2*time.Second, scsi.Good, 0)
	c.Done(KindOther, DirNone, 0, time.Millisecond, scsi.CheckCondition, scsi.SenseNotReady)
	c.Done(KindOther, DirNone, 0, time.Millisecond, scsi.CheckCondition, scsi.SenseNotReady)
	c.Done(KindRead, DirRead, 0, time.Millisecond, scsi.ReservationConflict, scsi.SenseIllegalRequest)
	// A second initiator on the same LUN shares the per-LUN series.
	c2 := r.Command(tgt, 3, "iqn.2026-11.io.example:host2")
	c2.Done(KindRead, DirRead, 1000, time.Millisecond, scsi.Good, 0)

	r.SessionStarted(tgt)
	r.SessionStarted(tgt)
	r.SessionEnded(tgt)
	r.LoginFailed("authentication failure")
	r.CHAPFailed(tgt)
	r.DeviceArrived()
	r.DeviceArrived()
	r.DeviceRemoved()
	r.Reloaded(nil, time.Unix(1700000000, 0))
	r.Reloaded(errors.New("bad config"), time.Unix(1700000100, 0))
	r.SetMemoryBudget(64<<20, func() int64 { return 12345 })

	fams := scrape(t, srv.Addr().String())
	lun := map[string]string{"target": tgt, "lun": "3"}
	with := func(m map[string]string, kv ...string) map[string]string {
		o := map[string]string{}
		for k, v := range m {
			o[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			o[kv[i]] = kv[i+1]
		}
		return o
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sanbridge_lun_commands_total", with(lun, "kind", "read"), 4},
		{"sanbridge_lun_commands_total", with(lun, "kind", "write"), 1},
		{"sanbridge_lun_commands_total", with(lun, "kind", "other"), 2},
		{"sanbridge_lun_bytes_total", with(lun, "direction", "read"), 4096 + 8192 + 1000},
		{"sanbridge_lun_bytes_total", with(lun, "direction", "write"), 512},
		{"sanbridge_lun_command_errors_total", with(lun, "status", "CHECK CONDITION", "sense_key", "NOT READY"), 2},
		{"sanbridge_lun_command_errors_total", with(lun, "status", "RESERVATION CONFLICT", "sense_key", "none"), 1},
		{"sanbridge_initiator_commands_total", map[string]string{"initiator": host, "kind": "read"}, 3},
		{"sanbridge_initiator_bytes_total", map[string]string{"initiator": host, "direction": "read"}, 4096 + 8192},
		{"sanbridge_initiator_command_errors_total", map[string]string{"initiator": host, "status": "CHECK CONDITION", "sense_key": "NOT READY"}, 2},
		{"sanbridge_logins_total", map[string]string{"target": tgt}, 2},
		{"sanbridge_login_failures_total", map[string]string{"reason": "authentication failure"}, 1},
		{"sanbridge_chap_failures_total", map[string]string{"target": tgt}, 1},
		{"sanbridge_device_arrivals_total", nil, 2},
		{"sanbridge_device_removals_total", nil, 1},
		{"sanbridge_reloads_total", map[string]string{"result": "ok"}, 1},
		{"sanbridge_reloads_total", map[string]string{"result": "error"}, 1},
	}
	for _, c := range checks {
		if got := counter(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	gauges := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sanbridge_sessions", map[string]string{"target": tgt}, 1},
		{"sanbridge_memory_budget_bytes", nil, 64 << 20},
		{"sanbridge_memory_in_use_bytes", nil, 12345},
		{"sanbridge_last_reload_success_timestamp_seconds", nil, 1700000000},
		{"sanbridge_build_info", map[string]string{"version": "1.2.3"}, 1},
	}
	for _, g := range gauges {
		if got := find(t, fams, g.name, g.labels).GetGauge().GetValue(); got != g.want {
			t.Errorf("%s%v = %v, want %v", g.name, g.labels, got, g.want)
		}
	}

	h := find(t, fams, "sanbridge_lun_command_duration_seconds", with(lun, "kind", "read")).GetHistogram()
	if h.GetSampleCount() != 4 {
		t.Errorf("read latency count %d, want 4", h.GetSampleCount())
	}
	if want := 0.0002 + 0.003 + 0.001 + 0.001; h.GetSampleSum() < want*0.999 || h.GetSampleSum() > want*1.001 {
		t.Errorf("read latency sum %v, want %v", h.GetSampleSum(), want)
	}
	// 200 µs falls in the 250 µs bucket; 3 ms is above 2.5 ms.
	for _, b := range h.GetBucket() {
		switch b.GetUpperBound() {
		case 0.00025:
			if b.GetCumulativeCount() != 1 {
				t.Errorf("bucket le=0.00025: %d, want 1", b.GetCumulativeCount())
			}
		case 0.0025:
			if b.GetCumulativeCount() != 3 {
				t.Errorf("bucket le=0.0025: %d, want 3", b.GetCumulativeCount())
			}
		}
	}
	w := find(t, fams, "sanbridge_lun_command_duration_seconds", with(lun, "kind", "write")).GetHistogram()
	if w.GetSampleCount() != 1 || w.GetSampleSum() != 2 {
		t.Errorf("write latency: count %d sum %v", w.GetSampleCount(), w.GetSampleSum())
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("go runtime collector missing")
	}

	// ForgetLUN drops the LUN's series, not the initiator's.
	r.ForgetLUN(tgt, 3)
	fams = scrape(t, srv.Addr().String())
	if f := fams["sanbridge_lun_commands_total"]; f != nil && len(f.GetMetric()) > 0 {
		t.Errorf("ForgetLUN left %d series", len(f.GetMetric()))
	}
	if got := counter(t, fams, "sanbridge_initiator_commands_total", map[string]string{"initiator": host, "kind": "read"}); got != 3 {
		t.Errorf("initiator series after ForgetLUN: %v", got)
	}
	r.ForgetInitiator(host)
	fams = scrape(t, srv.Addr().String())
	for _, m := range fams["sanbridge_initiator_commands_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetValue() == host {
				t.Errorf("ForgetInitiator left %v", m)
			}
		}
	}
}

// TestNoSecretLabels: the label names of every family are from the
// fixed vocabulary; none could hold a CHAP name or secret.
func TestNoSecretLabels(t *testing.T) {
	r := New("dev")
	r.Command(tgt, 0, host).Done(KindOther, DirNone, 0, time.Millisecond, scsi.CheckCondition, scsi.SenseIllegalRequest)
	r.SessionStarted(tgt)
	r.LoginFailed("authentication failure")
	r.CHAPFailed(tgt)
	fams, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"target": true, "lun": true, "initiator": true, "kind": true, "direction": true, "status": true, "sense_key": true, "reason": true, "result": true, "version": true}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "sanbridge_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !allowed[lp.GetName()] {
					t.Errorf("%s has label %q", f.GetName(), lp.GetName())
				}
			}
		}
	}
}

// TestListenBusy: a bind error is returned, not logged away.
func TestListenBusy(t *testing.T) {
	r := New("dev")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := r.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New("dev").Listen(ctx, srv.Addr().String()); err == nil {
		t.Fatal("second Listen on a bound address succeeded")
	}
	cancel()
	if err := srv.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestDoneAllocs: recording a successful command allocates nothing.
func TestDoneAllocs(t *testing.T) {
	c := New("dev").Command(tgt, 1, host)
	c.Done(KindRead, DirRead, 1, time.Millisecond, scsi.CheckCondition, scsi.SenseUnitAttention)
	n := testing.AllocsPerRun(1000, func() {
		c.Done(KindRead, DirRead, 4096, 100*time.Microsecond, scsi.Good, 0)
		c.Done(KindRead, DirRead, 0, time.Millisecond, scsi.CheckCondition, scsi.SenseUnitAttention)
	})
	if n != 0 {
		t.Fatalf("Done allocates %v times per run", n)
	}
}

func BenchmarkDone(b *testing.B) {
	c := New("dev").Command(tgt, 1, host)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Done(KindRead, DirRead, 4096, 100*time.Microsecond, scsi.Good, 0)
		}
	})
}
