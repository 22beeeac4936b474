package conf

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// maskingSrc has two groups (a pattern group with an exact exception in
// another group), named and inline backends, a view per group in one
// target, and a second target where only one group has a view.
const maskingSrc = `
portal "lo" {
  listen = "127.0.0.1:3260"
}

initiator_group "esx" {
  initiators = ["IQN.1998-01.com.vmware:*", "iqn.2026-01.io.example:host1"]
}

initiator_group "backup" {
  initiators = ["iqn.1998-01.com.vmware:esx-backup"]
}

initiator_group "quiet" {
  initiators = ["eui.0123456789abcdef"]
}

backend "shelf1" {
  device {
    wwn = "naa.5000c50015ea71a0"
  }
}

backend "golden" {
  emulated {
    size      = "1MiB"
    read_only = true
  }
}

backend "tape" {
  device {
    serial    = "TAPE01"
    read_only = true
  }
}

target "iqn.2026-11.io.sanbridge:t1" {
  lun "0" {
    backend = "shelf1"
  }
  lun "1" {
    emulated {
      size = "1MiB"
    }
  }
  view "esx" {
    lun "3" {
      backend   = "shelf1"
      read_only = true
    }
    lun "4" {
      backend = "golden"
    }
    lun "5" {
      emulated {
        size = "2MiB"
      }
    }
  }
  view "backup" {
    lun "0" {
      backend   = "shelf1"
      read_only = false
    }
    lun "1" {
      backend = "tape"
    }
  }
  view "quiet" {
  }
}

target "iqn.2026-11.io.sanbridge:t2" {
  lun "7" {
    backend = "shelf1"
  }
  view "backup" {
    lun "2" {
      backend = "shelf1"
    }
  }
}
`

// lunSummary renders a LUN map as "id:backend[:ro]" entries.
func lunSummary(luns []LUN) []string {
	var out []string
	for _, l := range luns {
		s := fmt.Sprintf("%d:%s", l.ID, l.Backend)
		if l.ReadOnly {
			s += ":ro"
		}
		out = append(out, s)
	}
	return out
}

func loadMasking(t *testing.T) *Config {
	t.Helper()
	cfg, diags := Parse([]byte(maskingSrc), "masking.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	// Open targets on loopback: the only warnings.
	for _, d := range diags {
		if d.Summary != "Open target" {
			t.Errorf("unexpected diagnostic: %s", d.Error())
		}
	}
	return cfg
}

func TestMaskingDecode(t *testing.T) {
	cfg := loadMasking(t)
	if len(cfg.InitiatorGroups) != 3 {
		t.Fatalf("groups: %+v", cfg.InitiatorGroups)
	}
	esx := cfg.InitiatorGroup("esx")
	if esx == nil || !slices.Equal(esx.Patterns, []string{"iqn.1998-01.com.vmware:*"}) || !slices.Equal(esx.Initiators, []string{"iqn.2026-01.io.example:host1"}) {
		t.Errorf("esx = %+v", esx)
	}
	if esx.DeclRange.Start.Line != 6 {
		t.Errorf("esx declared at %s", esx.DeclRange)
	}
	if cfg.InitiatorGroup("nope") != nil {
		t.Error("InitiatorGroup(nope) found something")
	}

	// Named backends in file order, then inline ones in lun order.
	var keys []string
	for _, b := range cfg.Backends {
		keys = append(keys, b.Name)
	}
	want := []string{"shelf1", "golden", "tape", "iqn.2026-11.io.sanbridge:t1/lun/1", "iqn.2026-11.io.sanbridge:t1/view/esx/lun/5"}
	if !slices.Equal(keys, want) {
		t.Errorf("backends %q, want %q", keys, want)
	}
	for _, b := range cfg.Backends {
		if b.Inline != strings.Contains(b.Name, "/") || (b.Emulated == nil) == (b.Device == nil) || b.DeclRange.Start.Line == 0 {
			t.Errorf("backend %+v", b)
		}
	}
	if b := cfg.Backend("golden"); b == nil || !b.ReadOnly() || b.Emulated.SizeBytes != 1<<20 {
		t.Errorf("golden = %+v", b)
	}
	if b := cfg.Backend("tape"); b == nil || !b.ReadOnly() || b.Device.Serial != "TAPE01" {
		t.Errorf("tape = %+v", b)
	}
	if b := cfg.Backend("shelf1"); b == nil || b.ReadOnly() {
		t.Errorf("shelf1 = %+v", b)
	}
	if b := cfg.Backend("iqn.2026-11.io.sanbridge:t1/view/esx/lun/5"); b == nil || !b.Inline || b.Emulated.SizeBytes != 2<<20 || b.DeclRange.Start.Line != 56 {
		t.Errorf("inline view backend = %+v", b)
	}
	if cfg.Backend("nope") != nil {
		t.Error("Backend(nope) found something")
	}

	t1 := cfg.Target("iqn.2026-11.io.sanbridge:t1")
	if got := lunSummary(t1.LUNs); !slices.Equal(got, []string{"0:shelf1", "1:iqn.2026-11.io.sanbridge:t1/lun/1"}) {
		t.Errorf("t1 default map %q", got)
	}
	if len(t1.Views) != 3 || t1.Views[0].Group != "esx" || t1.Views[2].Group != "quiet" || len(t1.Views[2].LUNs) != 0 {
		t.Errorf("t1 views %+v", t1.Views)
	}
	// Every use of a backend shares its settings.
	shelf := cfg.Backend("shelf1").Device
	if t1.LUN(0).Device != shelf || t1.View("esx").LUNs[0].Device != shelf || cfg.Targets[1].LUNs[0].Device != shelf {
		t.Error("uses of shelf1 do not share its Device")
	}
	if t1.View("esx").LUNs[1].Emulated != cfg.Backend("golden").Emulated {
		t.Error("golden's use does not share its Emulated")
	}
	if got := t1.Backends(); !slices.Equal(got, []string{"shelf1", "iqn.2026-11.io.sanbridge:t1/lun/1", "golden", "iqn.2026-11.io.sanbridge:t1/view/esx/lun/5", "tape"}) {
		t.Errorf("t1.Backends() = %q", got)
	}
	if got := cfg.Targets[1].Backends(); !slices.Equal(got, []string{"shelf1"}) {
		t.Errorf("t2.Backends() = %q", got)
	}

	// The JSON form carries groups, backends and views.
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		InitiatorGroups []InitiatorGroup `json:"initiator_groups"`
		Backends        []struct{ Name string }
		Targets         []struct {
			Views []struct {
				Group string
				LUNs  []struct {
					ID       uint64
					Backend  string
					ReadOnly bool `json:"read_only"`
				} `json:"luns"`
			}
		}
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.InitiatorGroups) != 3 || len(back.Backends) != 5 || back.Targets[0].Views[0].LUNs[0].Backend != "shelf1" || !back.Targets[0].Views[0].LUNs[0].ReadOnly {
		t.Errorf("JSON lost masking settings: %s", b)
	}
}

func TestGroupOf(t *testing.T) {
	cfg := loadMasking(t)
	for _, tc := range []struct {
		initiator, group string
	}{
		{"iqn.1998-01.com.vmware:esx01", "esx"},          // pattern
		{"IQN.1998-01.COM.VMWARE:ESX02-4D3C2B1A", "esx"}, // pattern, normalized
		{"iqn.1998-01.com.vmware:esx-backup", "backup"},  // exact beats the esx pattern
		{"iqn.1998-01.com.vmware:esx-backup2", "esx"},    // exact means exact
		{"iqn.2026-01.io.example:host1", "esx"},          // exact
		{"iqn.2026-01.io.example:host2", ""},             // no group
		{"eui.0123456789ABCDEF", "quiet"},                // exact, normalized
		{"iqn.1998-01.com.vmware", ""},                   // the pattern needs the ':'
		{"not a name", ""},                               // invalid: no group
		{"iqn.1998-01.com.vmware:esx01\x00", ""},         // invalid
		{"iqn.1998-01.com.vmwarex:esx01", ""},            // different authority
		{"iqn.1998-01.com.vmware:" + strings.Repeat("a", 150), "esx"},
	} {
		g, ok := cfg.GroupOf(tc.initiator)
		if g != tc.group || ok != (tc.group != "") {
			t.Errorf("GroupOf(%q) = %q, %v; want %q", tc.initiator, g, ok, tc.group)
		}
	}
}

func TestViewFor(t *testing.T) {
	cfg := loadMasking(t)
	t1 := cfg.Target("iqn.2026-11.io.sanbridge:t1")
	t2 := cfg.Target("iqn.2026-11.io.sanbridge:t2")
	const inline = "iqn.2026-11.io.sanbridge:t1/lun/1"
	for _, tc := range []struct {
		target    *Target
		initiator string
		want      []string
	}{
		// A group with a view sees exactly the view.
		{t1, "iqn.1998-01.com.vmware:esx01", []string{"3:shelf1:ro", "4:golden:ro", "5:iqn.2026-11.io.sanbridge:t1/view/esx/lun/5"}},
		{t1, "iqn.1998-01.com.vmware:esx-backup", []string{"0:shelf1", "1:tape:ro"}},
		// An empty view hides every LUN.
		{t1, "eui.0123456789abcdef", nil},
		// No group: the default map.
		{t1, "iqn.1994-05.com.redhat:db1", []string{"0:shelf1", "1:" + inline}},
		{t1, "not a name", []string{"0:shelf1", "1:" + inline}},
		// A group without a view in this target: the default map.
		{t2, "iqn.1998-01.com.vmware:esx01", []string{"7:shelf1"}},
		{t2, "iqn.1998-01.com.vmware:esx-backup", []string{"2:shelf1"}},
		{t2, "iqn.1994-05.com.redhat:db1", []string{"7:shelf1"}},
	} {
		if got := lunSummary(cfg.LUNsFor(tc.target, tc.initiator)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: LUNsFor(%q) = %q, want %q", tc.target.Name, tc.initiator, got, tc.want)
		}
	}
	if got := lunSummary(t1.ViewFor("")); !slices.Equal(got, []string{"0:shelf1", "1:" + inline}) {
		t.Errorf(`ViewFor("") = %q`, got)
	}
	if got := lunSummary(t1.ViewFor("unknown")); !slices.Equal(got, []string{"0:shelf1", "1:" + inline}) {
		t.Errorf(`ViewFor("unknown") = %q`, got)
	}
	if v := t1.ViewFor("quiet"); len(v) != 0 {
		t.Errorf(`ViewFor("quiet") = %q, want an empty map`, lunSummary(v))
	}
	if t2.View("esx") != nil || t1.View("esx") == nil {
		t.Error("View lookup wrong")
	}
}

// TestMaskingInlineCompat: a file without masking blocks resolves as it
// always did, with each inline backend under its synthesized key.
func TestMaskingInlineCompat(t *testing.T) {
	cfg := loadExample(t, "chap.hcl")
	if len(cfg.InitiatorGroups) != 0 {
		t.Errorf("groups %+v", cfg.InitiatorGroups)
	}
	db := cfg.Target("iqn.2026-11.io.sanbridge:db")
	for _, l := range db.LUNs {
		b := cfg.Backend(l.Backend)
		if b == nil || !b.Inline || b.Emulated != l.Emulated || l.Backend != fmt.Sprintf("%s/lun/%d", db.Name, l.ID) {
			t.Errorf("LUN %d: backend %q = %+v", l.ID, l.Backend, b)
		}
	}
	// chap.hcl's LUN 1 is a read-only emulated disk: its mapping is too.
	if l := db.LUN(1); !l.ReadOnly || !l.Emulated.ReadOnly {
		t.Errorf("LUN 1 = %+v", l)
	}
	if g, ok := cfg.GroupOf("iqn.1994-05.com.redhat:db1"); ok || g != "" {
		t.Errorf("GroupOf without groups = %q, %v", g, ok)
	}
	if got := lunSummary(cfg.LUNsFor(db, "iqn.1994-05.com.redhat:db1")); len(got) != len(db.LUNs) {
		t.Errorf("LUNsFor = %q", got)
	}
}

// TestMaskingExample pins what deploy/examples/masking.hcl says in its
// header.
func TestMaskingExample(t *testing.T) {
	cfg := loadExample(t, "masking.hcl")
	main := cfg.Target("iqn.2026-11.io.sanbridge:masking")
	esxOnly := cfg.Target("iqn.2026-11.io.sanbridge:masking-esx")
	const linuxData = "iqn.2026-11.io.sanbridge:masking/view/linux/lun/0"
	for _, tc := range []struct {
		initiator     string
		group         string
		main, esxOnly []string
	}{
		{"iqn.1998-01.com.vmware:esx01-4d3c2b1a", "esx", []string{"0:shared", "1:esx-vmfs", "2:golden:ro"}, []string{"9:shared"}},
		{"iqn.1994-05.com.redhat:vcenter", "esx", []string{"0:shared", "1:esx-vmfs", "2:golden:ro"}, []string{"9:shared"}},
		{"iqn.1994-05.com.redhat:db1", "linux", []string{"0:" + linuxData, "5:shared:ro"}, nil},
		{"iqn.1991-05.com.microsoft:win1", "", []string{"0:golden:ro"}, nil},
	} {
		if g, _ := cfg.GroupOf(tc.initiator); g != tc.group {
			t.Errorf("GroupOf(%q) = %q, want %q", tc.initiator, g, tc.group)
		}
		if got := lunSummary(cfg.LUNsFor(main, tc.initiator)); !slices.Equal(got, tc.main) {
			t.Errorf("masking: %s sees %q, want %q", tc.initiator, got, tc.main)
		}
		if got := lunSummary(cfg.LUNsFor(esxOnly, tc.initiator)); !slices.Equal(got, tc.esxOnly) {
			t.Errorf("masking-esx: %s sees %q, want %q", tc.initiator, got, tc.esxOnly)
		}
	}
	for _, b := range cfg.Backends {
		if b.Device != nil {
			t.Errorf("backend %s is a device; the example must run anywhere", b.Name)
		}
	}
}

// loadExample loads a shipped example and fails on errors.
func loadExample(t *testing.T, name string) *Config {
	t.Helper()
	cfg, diags := LoadFile(examplesDir + "/" + name)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "iqn.x", true},
		{"iqn.*", "iqn.", true},
		{"iqn.*", "iqn", false},
		{"*:esx", "iqn.1998-01.com.vmware:esx", true},
		{"*:esx", "iqn.1998-01.com.vmware:esx1", false},
		{"iqn.*:esx*", "iqn.1998-01.com.vmware:esx01", true},
		{"iqn.*:esx*", "iqn.1998-01.com.vmware:host:esx", true},
		{"iqn.*:esx*", "iqn.1998-01.com.vmware:host", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a**b", "ab", true},
		{"a*a*a", "aa", false},
		{"a*a*a", "aaa", true},
		{"*ab", "aab", true},
		{"*ab", "aba", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"", "", true},
		{"", "a", false},
	} {
		if got := matchPattern(tc.pattern, tc.name); got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestPatternsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b    string
		witness string // "" means disjoint
	}{
		{"iqn.1998-01.com.vmware:*", "iqn.1998-01.com.vmware:esx*", "iqn.1998-01.com.vmware:esx"},
		{"iqn.1998-01.com.vmware:*", "iqn.1994-05.com.redhat:*", ""},
		{"*:db*", "iqn.1998-01.com.vmware:*", "iqn.1998-01.com.vmware:db"},
		{"*x", "*y", ""},
		{"*x*", "*y*", "xy"},
		{"a*", "*b", "ab"},
		{"ab*", "*ba", "aba"},
		{"abc", "a*c", "abc"},
		{"abc", "a*d", ""},
		{"*", "*", ""}, // the empty string matches both
	} {
		w, ok := patternsOverlap(tc.a, tc.b)
		wantOK := tc.witness != "" || tc.a == "*"
		if ok != wantOK || w != tc.witness {
			t.Errorf("patternsOverlap(%q, %q) = %q, %v; want %q, %v", tc.a, tc.b, w, ok, tc.witness, wantOK)
		}
	}
}

// TestPatternsOverlapExhaustive checks patternsOverlap against brute
// force: every pair of patterns up to 4 bytes over {a, b, *} overlaps
// exactly when some string of up to 8 bytes over {a, b} matches both (a
// common match, when one exists, is never longer than the two patterns'
// literal bytes together), and the witness matches both.
func TestPatternsOverlapExhaustive(t *testing.T) {
	patterns := stringsOver("ab*", 4)
	names := stringsOver("ab", 8)
	for _, a := range patterns {
		for _, b := range patterns {
			w, ok := patternsOverlap(a, b)
			if ok && (!matchPattern(a, w) || !matchPattern(b, w)) {
				t.Fatalf("patternsOverlap(%q, %q) = %q, which does not match both", a, b, w)
			}
			brute := false
			for _, n := range names {
				if matchPattern(a, n) && matchPattern(b, n) {
					brute = true
					if ok && len(w) > len(n) {
						t.Fatalf("patternsOverlap(%q, %q) = %q, but %q is shorter", a, b, w, n)
					}
					break
				}
			}
			if ok != brute {
				t.Fatalf("patternsOverlap(%q, %q) = %v, brute force says %v", a, b, ok, brute)
			}
		}
	}
}

// stringsOver returns every string of at most n bytes from alphabet, by
// length.
func stringsOver(alphabet string, n int) []string {
	out := []string{""}
	level := []string{""}
	for range n {
		var next []string
		for _, s := range level {
			for i := 0; i < len(alphabet); i++ {
				next = append(next, s+alphabet[i:i+1])
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

func TestNormalizePattern(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"IQN.1998-01.COM.VMWARE:*", "iqn.1998-01.com.vmware:*"},
		{"*", "*"},
		{"*:esx*", "*:esx*"},
		{"i*", "i*"},
		{"eui.0123*", "eui.0123*"},
		{"naa.*", "naa.*"},
		{"esx*", ""},
		{"iqx.*", ""},
		{"iqn.*?", ""},
		{"iqn.[ab]*", ""},
		{"iqn.*_x", ""},
		{"iqn.é*", ""},
		{"iqn.*" + strings.Repeat("a", MaxPattern), ""},
	} {
		got, msg := normalizePattern(tc.in)
		if got != tc.want || (msg == "") != (tc.want != "") {
			t.Errorf("normalizePattern(%q) = %q, %q; want %q", tc.in, got, msg, tc.want)
		}
	}
}
