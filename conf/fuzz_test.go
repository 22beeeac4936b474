package conf

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
)

// FuzzParse feeds arbitrary files to Parse: it must never panic, must
// return a Config exactly when there is no error, and a returned Config
// must satisfy every invariant validation promises (LUN masking included:
// views name known groups, every LUN names a backend and shares its
// settings, no initiator is in two groups). Seeds: the examples, the error
// files and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{filepath.Join(examplesDir, "*.hcl"), "testdata/errors/*.hcl"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("portal \"lo\" {\n  listen = \"127.0.0.1:3260\"\n}\ntarget \"iqn.2026-11.x.y:z\" {\n  lun \"0\" {\n    emulated {\n      size = \"1KiB\"\n    }\n  }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p := NewParser()
		cfg, diags := p.Parse(src, "fuzz.hcl")
		if (cfg == nil) != diags.HasErrors() {
			t.Fatalf("config %v with errors=%v", cfg != nil, diags.HasErrors())
		}
		if err := p.WriteDiagnostics(io.Discard, diags, true); err != nil {
			t.Fatalf("WriteDiagnostics: %v", err)
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Fatalf("diagnostic without summary: %#v", d)
			}
		}
		if cfg == nil {
			return
		}
		if _, err := json.Marshal(cfg); err != nil {
			t.Fatalf("json: %v", err)
		}
		_ = cfg.String()
		_ = cfg.GoString()
		if len(cfg.Portals) == 0 {
			t.Fatal("config without portals")
		}
		for _, pt := range cfg.Portals {
			if pt.Listen == "" || pt.Group == 0 {
				t.Fatalf("portal %+v", pt)
			}
		}
		for i := range cfg.Targets {
			tg := &cfg.Targets[i]
			if n, err := iscsi.NormalizeName(tg.Name); err != nil || n != tg.Name {
				t.Fatalf("target name %q not normalized", tg.Name)
			}
			if len(tg.Portals) == 0 {
				t.Fatalf("target %s has no portals", tg.Name)
			}
			for _, pn := range tg.Portals {
				if cfg.Portal(pn) == nil {
					t.Fatalf("target %s names unknown portal %q", tg.Name, pn)
				}
			}
			for _, in := range tg.Initiators {
				if n, err := iscsi.NormalizeName(in.Name); err != nil || n != in.Name {
					t.Fatalf("initiator name %q not normalized", in.Name)
				}
			}
			for _, c := range append([]*CHAP{tg.CHAP}, initiatorCHAPs(tg)...) {
				if c != nil && (len(c.Secret) < MinCHAPSecret || c.Username == "" || c.MutualSecret == c.Secret) {
					t.Fatalf("invalid CHAP accepted: %v", c)
				}
			}
			maps := [][]LUN{tg.LUNs}
			views := map[string]bool{}
			for _, v := range tg.Views {
				if cfg.InitiatorGroup(v.Group) == nil || views[v.Group] {
					t.Fatalf("target %s: view of unknown or repeated group %q", tg.Name, v.Group)
				}
				views[v.Group] = true
				maps = append(maps, v.LUNs)
			}
			for _, luns := range maps {
				ids := map[uint64]bool{}
				for _, l := range luns {
					b := cfg.Backend(l.Backend)
					if l.ID > MaxLUN || ids[l.ID] || b == nil || l.Emulated != b.Emulated || l.Device != b.Device || (b.ReadOnly() && !l.ReadOnly) {
						t.Fatalf("target %s: LUN %+v (backend %+v)", tg.Name, l, b)
					}
					ids[l.ID] = true
				}
			}
		}
		checkBackends(t, cfg)
		checkGroups(t, cfg)
	})
}

// checkBackends checks the invariants of resolved backends.
func checkBackends(t *testing.T, cfg *Config) {
	t.Helper()
	names := map[string]bool{}
	for _, b := range cfg.Backends {
		if b.Name == "" || names[b.Name] || (b.Emulated == nil) == (b.Device == nil) {
			t.Fatalf("backend %+v: want a unique name and exactly one definition", b)
		}
		names[b.Name] = true
		if d := b.Device; d != nil {
			if d.WWN == "" && d.Serial == "" && d.Path == "" {
				t.Fatalf("device without selector accepted: %+v", d)
			}
			continue
		}
		e := b.Emulated
		if e.SizeBytes <= 0 || (e.BlockSize != 512 && e.BlockSize != 4096) || e.SizeBytes%int64(e.BlockSize) != 0 {
			t.Fatalf("emulated %+v", e)
		}
	}
}

// checkGroups checks that groups are well formed and that no initiator
// can be in two of them.
func checkGroups(t *testing.T, cfg *Config) {
	t.Helper()
	names := map[string]bool{}
	for i, g := range cfg.InitiatorGroups {
		if !isIdent(g.Name) || names[g.Name] {
			t.Fatalf("group name %q invalid or repeated", g.Name)
		}
		names[g.Name] = true
		for _, in := range g.Initiators {
			if got, _ := cfg.GroupOf(in); got != g.Name {
				t.Fatalf("GroupOf(%q) = %q, want %q", in, got, g.Name)
			}
		}
		for _, p := range g.Patterns {
			if q, msg := normalizePattern(p); msg != "" || q != p || !strings.Contains(p, "*") {
				t.Fatalf("group %s: pattern %q accepted", g.Name, p)
			}
			for _, o := range cfg.InitiatorGroups[:i] {
				for _, op := range o.Patterns {
					if w, ok := patternsOverlap(op, p); ok {
						t.Fatalf("patterns %q (%s) and %q (%s) overlap on %q", op, o.Name, p, g.Name, w)
					}
				}
			}
		}
	}
}

// initiatorCHAPs returns the initiators' CHAP settings.
func initiatorCHAPs(t *Target) []*CHAP {
	var out []*CHAP
	for _, in := range t.Initiators {
		out = append(out, in.CHAP)
	}
	return out
}
