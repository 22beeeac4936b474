package bridge

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/conf"
)

// peerTool returns the path of an external initiator tool. Without it the
// test is skipped, unless SANBRIDGE_REQUIRE_PEERS is set (make test sets
// it after installing the tools), when it fails.
func peerTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SANBRIDGE_REQUIRE_PEERS") != "" {
			t.Fatalf("%s not installed (apt-get install libiscsi-bin)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// startGateway runs a gateway for the HCL config src (its portal must
// listen on 127.0.0.1:0) and returns the address it listens on.
func startGateway(t *testing.T, src string) string {
	t.Helper()
	addr, _ := startGatewayWith(t, src, Options{})
	return addr
}

// startGatewayWith is startGateway with options (the log is set here);
// stop shuts the gateway down and waits for it (also done at the end of
// the test).
func startGatewayWith(t *testing.T, src string, opts Options) (addr string, stop func()) {
	t.Helper()
	cfg, diags := conf.Parse([]byte(src), "test.hcl")
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	b, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return serveTestBridge(t, b)
}

const conformanceTarget = "iqn.2026-11.io.sanbridge:conformance"

func conformanceConfig(extra string) string {
	return fmt.Sprintf(`
portal "lo" {
  listen = "127.0.0.1:0"
}
target %q {
  alias = "conformance"
  %s
  lun "0" {
    emulated {
      size       = "64MiB"
      block_size = 512
      serial     = "CONF0001"
    }
  }
}
`, conformanceTarget, extra)
}

// cuResult is the outcome of one iscsi-test-cu test as its log shows it.
type cuResult struct {
	suite   string
	name    string
	failed  bool
	skipped bool
}

var (
	cuSuiteLine = regexp.MustCompile(`^Suite: (\S+)`)
	cuTestLine  = regexp.MustCompile(`^\s*Test: (\S+) \.\.\.(.*)$`)
)

// parseCU reads iscsi-test-cu's verbose log. A test starts with
// "Test: NAME ..." and ends with "passed" or "FAILED", on the same line
// or after the test's own log lines; "[FAILED]" lines inside a test are
// expected failures of single commands, not verdicts. CUnit counts
// [SKIPPED] tests as passed, so skips are read from the log lines.
func parseCU(log string) []cuResult {
	var out []cuResult
	var cur *cuResult
	suite := ""
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest := strings.TrimSpace(line)
		if m := cuSuiteLine.FindStringSubmatch(line); m != nil {
			suite, cur = m[1], nil
			continue
		}
		if m := cuTestLine.FindStringSubmatch(line); m != nil {
			out = append(out, cuResult{suite: suite, name: m[1]})
			cur = &out[len(out)-1]
			rest = strings.TrimSpace(m[2])
		}
		if cur == nil {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "passed"):
			cur = nil
		case strings.HasPrefix(rest, "FAILED"):
			cur.failed = true
			cur = nil
		case strings.Contains(rest, "[SKIPPED]"):
			cur.skipped = true
		}
	}
	return out
}

// Initiator names of the conformance run's two sessions (-i, -I): the
// reservation families need two initiators the gateway tells apart.
const (
	cuInitiator1 = "iqn.2026-11.io.sanbridge:cu-initiator-1"
	cuInitiator2 = "iqn.2026-11.io.sanbridge:cu-initiator-2"
)

// cuTwoInitiatorFamilies are the families whose every test must run and
// pass (a skip fails the test here): persistent reservations, SPC-2
// reservations and multipath I/O, which the gateway answers per I_T
// nexus.
var cuTwoInitiatorFamilies = []string{
	"PrinReadKeys", "PrinServiceactionRange", "PrinReportCapabilities",
	"ProutRegister", "ProutReserve", "ProutClear", "ProutPreempt",
	"Reserve6", "MultipathIO",
}

// cuCount counts a family's outcomes.
type cuCount struct{ pass, fail, skip int }

// TestConformance runs libiscsi's whole iscsi-test-cu suite (destructive
// tests included) against an emulated disk with two sessions under two
// initiator names, and requires zero failures, and every test of the
// reservation and multipath families to pass.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	tool := peerTool(t, "iscsi-test-cu")
	addr := startGateway(t, conformanceConfig(""))
	url := fmt.Sprintf("iscsi://%s/%s/0", addr, conformanceTarget)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// The URL twice: the multipath and reservation families use a second
	// session, logged in as the second initiator.
	out, err := exec.CommandContext(ctx, tool, "-d", "-v", "-i", cuInitiator1, "-I", cuInitiator2, url, url).CombinedOutput()
	logPath := os.Getenv("SANBRIDGE_CU_LOG")
	if logPath != "" {
		os.WriteFile(logPath, out, 0o644)
	}
	if ctx.Err() != nil {
		t.Fatalf("iscsi-test-cu did not finish in time: %v", ctx.Err())
	}
	results := parseCU(string(out))
	if len(results) < 100 {
		t.Fatalf("iscsi-test-cu ran only %d tests (err %v); output tail:\n%s", len(results), err, tail(string(out), 60))
	}
	var total cuCount
	family := make(map[string]*cuCount)
	for _, r := range results {
		c := family[r.suite]
		if c == nil {
			c = &cuCount{}
			family[r.suite] = c
		}
		switch {
		case r.failed:
			c.fail++
			total.fail++
			t.Errorf("iscsi-test-cu: %s.%s FAILED", r.suite, r.name)
		case r.skipped:
			c.skip++
			total.skip++
		default:
			c.pass++
			total.pass++
		}
	}
	for _, f := range cuTwoInitiatorFamilies {
		c := family[f]
		if c == nil {
			t.Errorf("iscsi-test-cu: family %s did not run", f)
			continue
		}
		t.Logf("%-24s %2d passed, %d failed, %d skipped", f, c.pass, c.fail, c.skip)
		if c.skip > 0 || c.pass == 0 {
			t.Errorf("iscsi-test-cu: family %s: %d skipped, %d passed; every test must run and pass", f, c.skip, c.pass)
		}
	}
	t.Logf("iscsi-test-cu -d: %d tests: %d passed, %d failed, %d skipped", len(results), total.pass, total.fail, total.skip)
	if total.fail > 0 {
		t.Logf("output tail:\n%s", tail(string(out), 80))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestParseCU(t *testing.T) {
	log := `Suite: iSCSIdatasn
  Test: iSCSIDataSnInvalid ...
    [FAILED] WRITE10 command failed with status 2
passed
  Test: Dpo ...passed    [SKIPPED] PERSISTENT RESERVE IN is not implemented.
  Test: Simple ...    [SKIPPED] Multipath unavailable. Skipping test
passed
Suite: Reserve6
  Test: Broken ...    [FAILED] READ10 returned GOOD
FAILED
    1. test_x.c:133  - CU_ASSERT_NOT_EQUAL(ret,0)
  Test: Quick ...FAILED
`
	got := parseCU(log)
	want := []cuResult{
		{suite: "iSCSIdatasn", name: "iSCSIDataSnInvalid"},
		{suite: "iSCSIdatasn", name: "Dpo"},
		{suite: "iSCSIdatasn", name: "Simple", skipped: true},
		{suite: "Reserve6", name: "Broken", failed: true},
		{suite: "Reserve6", name: "Quick", failed: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("test %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
