package conf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"
)

// examplesDir holds the shipped example configurations.
const examplesDir = "../deploy/examples"

// diagKey identifies a diagnostic for the marker comparison.
type diagKey struct {
	line     int
	severity string
	summary  string
}

func (k diagKey) String() string {
	return fmt.Sprintf("line %d: %s: %s", k.line, k.severity, k.summary)
}

// markerRE finds "# ERROR: <summary>" and "# WARNING: <summary>" markers;
// one line may carry several.
var markerRE = regexp.MustCompile(`#\s*(ERROR|WARNING):\s*([^#]*[^#\s])`)

// expectedMarkers reads the markers of a test file.
func expectedMarkers(t *testing.T, src []byte) map[diagKey]bool {
	t.Helper()
	want := map[diagKey]bool{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		for _, m := range markerRE.FindAllStringSubmatch(sc.Text(), -1) {
			want[diagKey{line, m[1], m[2]}] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// gotMarkers turns diagnostics into marker keys; every diagnostic must have
// a subject in file.
func gotMarkers(t *testing.T, file string, diags hcl.Diagnostics) map[diagKey]bool {
	t.Helper()
	got := map[diagKey]bool{}
	for _, d := range diags {
		if d.Subject == nil || d.Subject.Filename != file {
			t.Errorf("diagnostic without a subject in %s: %s: %s", file, d.Summary, d.Detail)
			continue
		}
		sev := "ERROR"
		if d.Severity == hcl.DiagWarning {
			sev = "WARNING"
		}
		if d.Detail == "" {
			t.Errorf("%s: %q has no detail", d.Subject, d.Summary)
		}
		got[diagKey{d.Subject.Start.Line, sev, d.Summary}] = true
	}
	return got
}

func compareMarkers(t *testing.T, want, got map[diagKey]bool, diags hcl.Diagnostics) {
	t.Helper()
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k.String())
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k.String())
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, m := range missing {
		t.Errorf("missing diagnostic: %s", m)
	}
	for _, e := range extra {
		t.Errorf("unexpected diagnostic: %s", e)
	}
	if t.Failed() {
		for _, d := range diags {
			t.Logf("got %s", d.Error())
		}
	}
}

func TestErrorFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d error files", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedMarkers(t, src)
			if len(want) == 0 {
				t.Fatalf("%s has no markers", file)
			}
			cfg, diags := LoadFile(file)
			hasErr := false
			for k := range want {
				hasErr = hasErr || k.severity == "ERROR"
			}
			if hasErr != diags.HasErrors() || (cfg == nil) != diags.HasErrors() {
				t.Errorf("markers expect errors=%v; got errors=%v, config=%v", hasErr, diags.HasErrors(), cfg != nil)
			}
			compareMarkers(t, want, gotMarkers(t, file, diags), diags)
		})
	}
}

// exampleWarnings lists the warnings each shipped example is expected to
// produce, by summary; every example must be listed.
var exampleWarnings = map[string][]string{
	"demo.hcl":      {"Open target"},
	"chap.hcl":      nil,
	"appliance.hcl": nil,
	"reference.hcl": nil,
	"masking.hcl":   {"Open target", "Open target"},
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for name := range exampleWarnings {
		if !slices.Contains(names, name) {
			t.Errorf("example %s is missing", name)
		}
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			want, ok := exampleWarnings[name]
			if !ok {
				t.Fatalf("new example %s: add it to exampleWarnings", name)
			}
			p := NewParser()
			cfg, diags := p.LoadFile(file)
			if diags.HasErrors() || cfg == nil {
				var b strings.Builder
				_ = p.WriteDiagnostics(&b, diags, false)
				t.Fatalf("example does not load:\n%s", b.String())
			}
			var got []string
			for _, d := range diags {
				got = append(got, d.Summary)
			}
			if !slices.Equal(got, want) {
				t.Errorf("warnings %q, want %q", got, want)
			}
			if len(cfg.Portals) == 0 || len(cfg.Targets) == 0 {
				t.Errorf("example has %d portals and %d targets", len(cfg.Portals), len(cfg.Targets))
			}
			for _, tg := range cfg.Targets {
				luns := len(tg.LUNs)
				for _, v := range tg.Views {
					luns += len(v.LUNs)
				}
				if luns == 0 {
					t.Errorf("target %s has no LUN", tg.Name)
				}
			}
		})
	}
}

func TestDefaultMatchesExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join(examplesDir, "demo.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(DefaultSource(), example) {
		t.Fatal("conf/demo.hcl and deploy/examples/demo.hcl differ; copy the example over the embedded file")
	}
	// DefaultSource returns a copy.
	src := DefaultSource()
	src[0] ^= 0xff
	if !bytes.Equal(DefaultSource(), example) {
		t.Fatal("DefaultSource exposes the embedded bytes")
	}
}

func TestDefault(t *testing.T) {
	cfg, diags := Default()
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("Default: %v", diags)
	}
	if cfg.LogLevel != zerolog.InfoLevel {
		t.Errorf("LogLevel = %v", cfg.LogLevel)
	}
	if len(cfg.Portals) != 1 {
		t.Fatalf("portals: %+v", cfg.Portals)
	}
	p := cfg.Portals[0]
	if p.Name != "lo" || p.Listen != "127.0.0.1:3260" || p.Advertise != "127.0.0.1:3260" || p.Group != 1 {
		t.Errorf("portal = %+v", p)
	}
	tg := cfg.Target("iqn.2026-11.io.sanbridge:demo")
	if tg == nil || len(cfg.Targets) != 1 {
		t.Fatalf("targets: %v", cfg)
	}
	if !tg.Open() || tg.CHAP != nil || !slices.Equal(tg.Portals, []string{"lo"}) {
		t.Errorf("demo target should be open, without CHAP, on lo: %v", cfg)
	}
	l := tg.LUN(0)
	if l == nil || len(tg.LUNs) != 1 || l.Emulated == nil {
		t.Fatalf("LUNs: %v", cfg)
	}
	want := Emulated{SizeBytes: 64 << 20, BlockSize: 512}
	got := *l.Emulated
	got.DeclRange, got.FileRange = hcl.Range{}, hcl.Range{}
	if got != want {
		t.Errorf("emulated = %+v, want %+v", got, want)
	}
}

func TestResolvedExample(t *testing.T) {
	cfg, diags := LoadFile(filepath.Join(examplesDir, "chap.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Discovery == nil || cfg.Discovery.CHAP == nil || cfg.Discovery.CHAP.Username != "discovery" || cfg.Discovery.CHAP.Mutual() {
		t.Errorf("discovery = %+v", cfg.Discovery)
	}
	lo6 := cfg.Portal("lo6")
	if lo6 == nil || lo6.Listen != "[::1]:3260" || lo6.Group != 2 || lo6.ListenRange.Start.Line != 31 {
		t.Errorf("lo6 = %+v", lo6)
	}
	if cfg.Portal("nope") != nil {
		t.Error("Portal(nope) found something")
	}

	db := cfg.Target("IQN.2026-11.io.sanbridge:DB")
	if db == nil || db.Name != "iqn.2026-11.io.sanbridge:db" || db.Alias != "database volumes" {
		t.Fatalf("db = %+v", db)
	}
	if g := cfg.TargetGroups(db); !slices.Equal(g, []uint16{1, 2}) {
		t.Errorf("TargetGroups(db) = %v", g)
	}
	if db.Open() {
		t.Error("db is open")
	}
	for _, tc := range []struct {
		initiator string
		allowed   bool
		user      string
		mutual    bool
	}{
		{"iqn.1994-05.com.redhat:db1", true, "db-hosts", false},
		{"IQN.1994-05.COM.REDHAT:DB1", true, "db-hosts", false},
		{"iqn.1994-05.com.redhat:db2", true, "db2", true},
		{"iqn.1994-05.com.redhat:db3", false, "", false},
		{"not a name", false, "", false},
	} {
		ok, chap := db.Authorize(tc.initiator)
		user := ""
		if chap != nil {
			user = chap.Username
		}
		if ok != tc.allowed || user != tc.user || chap.Mutual() != tc.mutual {
			t.Errorf("Authorize(%q) = %v, %v; want %v, user %q, mutual %v", tc.initiator, ok, chap, tc.allowed, tc.user, tc.mutual)
		}
	}
	if in := db.Initiator("iqn.1994-05.com.redhat:db2"); in == nil || in.CHAP.MutualUsername != "sanbridge-db" {
		t.Errorf("Initiator(db2) = %+v", in)
	}
	l1 := db.LUN(1)
	if l1 == nil || l1.Emulated.BlockSize != 4096 || !l1.Emulated.ReadOnly || l1.Emulated.SizeBytes != 256<<20 || l1.Emulated.File != "" {
		t.Errorf("db LUN 1 = %+v", l1)
	}
	l0 := db.LUN(0)
	if l0 == nil || l0.Emulated.File != "/var/lib/sanbridge/db0.img" || l0.Emulated.FileRange.Start.Line == 0 || l0.Emulated.SizeBytes != 1<<30 {
		t.Errorf("db LUN 0 = %+v", l0)
	}
	if db.LUN(7) != nil {
		t.Error("LUN(7) found something")
	}

	scratch := cfg.Target("iqn.2026-11.io.sanbridge:scratch")
	if scratch == nil {
		t.Fatal("no scratch target")
	}
	if ok, chap := scratch.Authorize("iqn.1991-05.com.microsoft:win-build01"); !ok || chap == nil || chap.Username != "win-build01" {
		t.Errorf("scratch Authorize = %v, %v", ok, chap)
	}
	var names []string
	for _, tg := range cfg.TargetsForPortal("lo") {
		names = append(names, tg.Name)
	}
	if !slices.Equal(names, []string{"iqn.2026-11.io.sanbridge:db", "iqn.2026-11.io.sanbridge:scratch"}) {
		t.Errorf("TargetsForPortal(lo) = %q", names)
	}
	names = nil
	for _, tg := range cfg.TargetsForPortal("lo6") {
		names = append(names, tg.Name)
	}
	if !slices.Equal(names, []string{"iqn.2026-11.io.sanbridge:db"}) {
		t.Errorf("TargetsForPortal(lo6) = %q", names)
	}
}

func TestDefaults(t *testing.T) {
	src := `
portal "any" {
  listen = "0.0.0.0:3260"
}
portal "six" {
  listen = "[0:0::1]:3261"
  group  = 9
}
portal "ephemeral" {
  listen = "127.0.0.1:0"
  group  = 3
}
portal "nat" {
  listen    = "[::]:3262"
  advertise = "192.0.2.7:13260"
  group     = 4
}
target "IQN.2026-11.IO.SANBRIDGE:X" {
  chap {
    username = "u"
    secret   = 123456789012
  }
  lun "007" {
    emulated {
      size = 8192
      file = "/srv//disk.img"
    }
  }
}
`
	cfg, diags := Parse([]byte(src), "defaults.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, tc := range []struct {
		name, listen, advertise string
		group                   uint16
	}{
		{"any", "0.0.0.0:3260", "", 1},
		{"six", "[::1]:3261", "[::1]:3261", 9},
		{"ephemeral", "127.0.0.1:0", "", 3},
		{"nat", "[::]:3262", "192.0.2.7:13260", 4},
	} {
		p := cfg.Portal(tc.name)
		if p == nil || p.Listen != tc.listen || p.Advertise != tc.advertise || p.Group != tc.group {
			t.Errorf("portal %s = %+v, want listen %q advertise %q group %d", tc.name, p, tc.listen, tc.advertise, tc.group)
		}
	}
	if cfg.LogLevel != zerolog.InfoLevel {
		t.Errorf("default LogLevel = %v", cfg.LogLevel)
	}
	tg := &cfg.Targets[0]
	if tg.Name != "iqn.2026-11.io.sanbridge:x" {
		t.Errorf("name not normalized: %q", tg.Name)
	}
	if !slices.Equal(tg.Portals, []string{"any", "six", "ephemeral", "nat"}) {
		t.Errorf("default portals = %q", tg.Portals)
	}
	if tg.CHAP == nil || tg.CHAP.Secret != "123456789012" {
		t.Errorf("numeric secret not converted: %v", tg.CHAP)
	}
	l := tg.LUN(7)
	if l == nil || l.Emulated.BlockSize != DefaultBlockSize || l.Emulated.SizeBytes != 8192 || l.Emulated.File != "/srv/disk.img" || l.Emulated.ReadOnly {
		t.Errorf("LUN 7 = %+v", l)
	}
	if g := cfg.TargetGroups(tg); !slices.Equal(g, []uint16{1, 3, 4, 9}) {
		t.Errorf("TargetGroups = %v", g)
	}
}

func TestLogLevels(t *testing.T) {
	for in, want := range map[string]zerolog.Level{
		"trace": zerolog.TraceLevel, "debug": zerolog.DebugLevel, "info": zerolog.InfoLevel,
		"WARN": zerolog.WarnLevel, "error": zerolog.ErrorLevel,
	} {
		src := fmt.Sprintf("log_level = %q\nportal \"lo\" {\n  listen = \"127.0.0.1:3260\"\n}\n", in)
		cfg, diags := Parse([]byte(src), "level.hcl")
		if diags.HasErrors() {
			t.Fatalf("%s: %v", in, diags)
		}
		if cfg.LogLevel != want {
			t.Errorf("log_level %q = %v, want %v", in, cfg.LogLevel, want)
		}
	}
}

func TestTargetAddress(t *testing.T) {
	for _, tc := range []struct {
		p     Portal
		local net.Addr
		want  string
	}{
		{Portal{Advertise: "192.0.2.1:3260", Group: 1}, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 3260}, "192.0.2.1:3260,1"},
		{Portal{Advertise: "san.example.com:13260", Group: 7}, nil, "san.example.com:13260,7"},
		{Portal{Group: 2}, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 3261}, "10.0.0.1:3261,2"},
		{Portal{Group: 1}, &net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.2"), Port: 3260}, "10.0.0.2:3260,1"},
		{Portal{Group: 1}, &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 3260, Zone: "eth0"}, "[fe80::1]:3260,1"},
		{Portal{Group: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 3260}, "[2001:db8::5]:3260,1"},
	} {
		if got := tc.p.TargetAddress(tc.local); got != tc.want {
			t.Errorf("%+v.TargetAddress(%v) = %q, want %q", tc.p, tc.local, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"512B", 512, true},
		{"64MiB", 64 << 20, true},
		{"64 mib", 64 << 20, true},
		{" 2GiB ", 2 << 30, true},
		{"1TiB", 1 << 40, true},
		{"1PiB", 1 << 50, true},
		{"4KiB", 4096, true},
		{"4KB", 4000, true},
		{"1MB", 1000000, true},
		{"3GB", 3000000000, true},
		{"2TB", 2000000000000, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"8191PiB", 8191 << 50, true},
		{"8192PiB", 0, false},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"MiB", 0, false},
		{"64M", 0, false},
		{"64K", 0, false},
		{"1.5GiB", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"64MiBs", 0, false},
		{"0x100", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// secretsIn lists the secrets of the chap.hcl example.
var secretsIn = []string{"disc0very-Secret", "db-hosts-Secret1", "db2-initiator-Secret", "db-target-Secret9", "scratch-Secret42"}

func TestRedaction(t *testing.T) {
	cfg, diags := LoadFile(filepath.Join(examplesDir, "chap.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	chap := cfg.Target("iqn.2026-11.io.sanbridge:db").Initiator("iqn.1994-05.com.redhat:db2").CHAP
	if chap.Secret != "db2-initiator-Secret" || chap.MutualSecret != "db-target-Secret9" {
		t.Fatalf("secrets not resolved: %q %q", chap.Secret, chap.MutualSecret)
	}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%s", "%#v"} {
		outputs["Config "+verb] = fmt.Sprintf(verb, cfg)
		outputs["*Config "+verb] = fmt.Sprintf(verb, *cfg)
		outputs["CHAP "+verb] = fmt.Sprintf(verb, *chap)
		outputs["*CHAP "+verb] = fmt.Sprintf(verb, chap)
		outputs["Target "+verb] = fmt.Sprintf(verb, cfg.Targets[0])
		outputs["Initiator "+verb] = fmt.Sprintf(verb, cfg.Targets[0].Initiators[1])
		outputs["Discovery "+verb] = fmt.Sprintf(verb, *cfg.Discovery)
	}
	for name, v := range map[string]any{"Config": cfg, "CHAP": chap, "Target": cfg.Targets[0]} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json %s: %v", name, err)
		}
		outputs["json "+name] = string(b)
	}
	var logBuf bytes.Buffer
	log := zerolog.New(&logBuf)
	log.Info().Object("config", cfg).Object("chap", chap).Msg("loaded")
	log.Info().Object("nil", (*CHAP)(nil)).Object("nilcfg", (*Config)(nil)).Msg("nil")
	outputs["zerolog"] = logBuf.String()

	for name, out := range outputs {
		for _, s := range secretsIn {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks secret %q: %s", name, s, out)
			}
		}
	}
	for _, name := range []string{"Config %v", "Config %#v", "CHAP %v", "*CHAP %#v", "json Config", "json CHAP", "Initiator %+v"} {
		if !strings.Contains(outputs[name], Redacted) || !strings.Contains(outputs[name], "db2") {
			t.Errorf("%s should show the user name and %s: %s", name, Redacted, outputs[name])
		}
	}
	if !strings.Contains(outputs["zerolog"], `"username":"db2"`) || !strings.Contains(outputs["zerolog"], `"mutual":true`) {
		t.Errorf("zerolog output lacks the CHAP user: %s", outputs["zerolog"])
	}

	// The JSON form round-trips the non-secret settings.
	var back struct {
		Targets []struct {
			Name string
			LUNs []struct {
				ID       uint64
				Emulated struct {
					SizeBytes int64 `json:"size_bytes"`
				}
			} `json:"luns"`
		}
	}
	if err := json.Unmarshal([]byte(outputs["json Config"]), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Targets) != 2 || back.Targets[0].Name != "iqn.2026-11.io.sanbridge:db" || back.Targets[0].LUNs[0].Emulated.SizeBytes != 1<<30 {
		t.Errorf("JSON lost settings: %s", outputs["json Config"])
	}
}

func TestWriteDiagnostics(t *testing.T) {
	src := "portal \"lo\" {\n  listen = \"127.0.0.1:3260\"\n}\ntarget \"iqn.2026-11.io.sanbridge:x\" {\n  chap {\n    username = \"u\"\n    secret   = \"tooshort\"\n  }\n}\n"
	p := NewParser()
	cfg, diags := p.Parse([]byte(src), "snippet.hcl")
	if cfg != nil || !diags.HasErrors() {
		t.Fatalf("expected an error, got %v", diags)
	}
	var b strings.Builder
	if err := p.WriteDiagnostics(&b, diags, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Error: CHAP secret too short",
		"on snippet.hcl line 7",
		`7:     secret   = "tooshort"`,
		"refused at config time",
		"Warning: Target has no LUNs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var colored strings.Builder
	if err := p.WriteDiagnostics(&colored, diags, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(colored.String(), "\x1b[") {
		t.Error("color output has no escape sequences")
	}
}

func TestDiagnosticsSorted(t *testing.T) {
	_, diags := LoadFile("testdata/errors/luns.hcl")
	if len(diags) < 10 {
		t.Fatalf("only %d diagnostics", len(diags))
	}
	for i := 1; i < len(diags); i++ {
		if diags[i-1].Subject.Start.Byte > diags[i].Subject.Start.Byte {
			t.Fatalf("diagnostic %d (%s) comes before %d (%s)", i-1, diags[i-1].Subject, i, diags[i].Subject)
		}
	}
}

func TestParserReuse(t *testing.T) {
	p := NewParser()
	a := []byte("portal \"lo\" {\n  listen = \"127.0.0.1:3260\"\n}\n")
	if _, diags := p.Parse(a, "x.hcl"); diags.HasErrors() {
		t.Fatal(diags)
	}
	if _, diags := p.Parse(a, "x.hcl"); diags.HasErrors() {
		t.Fatalf("same bytes again: %v", diags)
	}
	b := []byte("portal \"lo\" {\n  listen = \"127.0.0.1:3261\"\n}\n")
	if cfg, diags := p.Parse(b, "x.hcl"); cfg != nil || !diags.HasErrors() || diags[0].Summary != "File already parsed" {
		t.Fatalf("different bytes under the same name: %v, %v", cfg, diags)
	}
	if cfg, diags := p.Parse(b, "y.hcl"); diags.HasErrors() || cfg.Portals[0].Listen != "127.0.0.1:3261" {
		t.Fatalf("y.hcl: %v", diags)
	}
	if len(p.Files()) != 2 {
		t.Errorf("Files() has %d entries", len(p.Files()))
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, diags := LoadFile(filepath.Join(dir, "missing.hcl"))
	if !diags.HasErrors() || diags[0].Summary != "Failed to read configuration file" || !strings.Contains(diags[0].Detail, "missing.hcl") {
		t.Errorf("missing file: %v", diags)
	}
	big := filepath.Join(dir, "big.hcl")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), MaxFileSize/10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, diags = LoadFile(big)
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "file too large") {
		t.Errorf("big file: %v", diags)
	}
	_, diags = LoadFile(dir)
	if !diags.HasErrors() {
		t.Errorf("directory loaded without error")
	}
}

func TestCHAPMutualNil(t *testing.T) {
	var c *CHAP
	if c.Mutual() {
		t.Error("nil CHAP is mutual")
	}
	if (&CHAP{Secret: "x"}).Mutual() || !(&CHAP{MutualSecret: "y"}).Mutual() {
		t.Error("Mutual wrong")
	}
	if s := fmt.Sprint(CHAP{Username: "u"}); strings.Contains(s, Redacted) || strings.Contains(s, "Mutual") {
		t.Errorf("unset secrets should print empty: %s", s)
	}
}

func BenchmarkParseReference(b *testing.B) {
	src, err := os.ReadFile(filepath.Join(examplesDir, "reference.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, diags := Parse(src, "reference.hcl"); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
