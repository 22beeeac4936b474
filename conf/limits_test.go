package conf

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	cfg, diags := LoadFile(filepath.Join(examplesDir, "reference.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := Limits{
		Memory: 1 << 30, MaxTransfer: 16 << 20, MaxSessions: 1024, MaxSessionsPerInitiator: 64,
		MaxPendingLogins: 64, MaxPendingLoginsPerSource: 8, LoginTimeout: 15 * time.Second,
		MaxTasksPerSession: 160, MaxOutstandingR2T: 16, MaxPendingTMF: 16, MaxTextKeys: 256,
		AuthFreeFailures: 3, AuthDelay: 250 * time.Millisecond, AuthMaxDelay: 4 * time.Second,
		AuthLockoutAfter: 10, AuthLockout: 5 * time.Minute, AuthForget: 15 * time.Minute, AuthTableSize: 4096,
	}
	got := cfg.Limits
	got.DeclRange = want.DeclRange
	if got != want {
		t.Errorf("reference limits\n got %+v\nwant %+v", got, want)
	}
	if cfg.Limits.DeclRange.Start.Line == 0 {
		t.Error("no DeclRange")
	}
	b, err := json.Marshal(cfg.Limits)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"memory":1073741824`, `"login_timeout":"15s"`, `"auth_delay":"250ms"`, `"max_pending_task_management":16`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON %s lacks %s", b, s)
		}
	}

	// No limits block, or an empty one: every field zero (the defaults).
	for _, src := range []string{"", "limits {\n}\n"} {
		cfg, diags := Parse([]byte(`portal "lo" {
  listen = "127.0.0.1:3260"
}
`+src), "nolimits.hcl")
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		cfg.Limits.DeclRange = Limits{}.DeclRange
		if cfg.Limits != (Limits{}) {
			t.Errorf("%q: limits %+v", src, cfg.Limits)
		}
	}
	// Sizes take numbers too.
	cfg, diags = Parse([]byte(`portal "lo" {
  listen = "127.0.0.1:3260"
}
limits {
  memory       = 67108864
  max_transfer = "1MiB"
}
`), "numbers.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Limits.Memory != 64<<20 || cfg.Limits.MaxTransfer != 1<<20 {
		t.Errorf("limits %+v", cfg.Limits)
	}
}
