package conf

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sanbridge/sanbridge/iscsi"
)

// FuzzParse feeds arbitrary files to Parse: it must never panic, must
// return a Config exactly when there is no error, and a returned Config
// must satisfy every invariant validation promises. Seeds: the examples,
// the error files and testdata/fuzz/FuzzParse.
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
			for _, l := range tg.LUNs {
				if l.ID > MaxLUN || (l.Emulated == nil) == (l.Device == nil) {
					t.Fatalf("LUN %+v: want exactly one backend", l)
				}
				if d := l.Device; d != nil {
					if d.WWN == "" && d.Serial == "" && d.Path == "" {
						t.Fatalf("device without selector accepted: %+v", d)
					}
					continue
				}
				e := l.Emulated
				if e.SizeBytes <= 0 || (e.BlockSize != 512 && e.BlockSize != 4096) || e.SizeBytes%int64(e.BlockSize) != 0 {
					t.Fatalf("emulated %+v", e)
				}
			}
		}
	})
}

// initiatorCHAPs returns the initiators' CHAP settings.
func initiatorCHAPs(t *Target) []*CHAP {
	var out []*CHAP
	for _, in := range t.Initiators {
		out = append(out, in.CHAP)
	}
	return out
}
