package isns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// peer returns the path of an open-isns program. Without it the test is
// skipped, unless SANBRIDGE_REQUIRE_PEERS is set (make test sets it).
func peer(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		if os.Getenv("SANBRIDGE_REQUIRE_PEERS") != "" {
			t.Fatalf("%s not installed (apt-get install open-isns-server open-isns-utils)", name)
		}
		t.Skipf("%s not installed (apt-get install open-isns-server open-isns-utils)", name)
	}
	return p
}

// isnsd is a real open-isns server on loopback, its database in a
// temporary directory.
type isnsd struct {
	t    *testing.T
	dir  string
	addr string
	conf string
	cmd  *exec.Cmd
	log  *os.File
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startISNSD runs isnsd with the given extra configuration lines.
func startISNSD(t *testing.T, extra ...string) *isnsd {
	t.Helper()
	bin := peer(t, "isnsd")
	peer(t, "isnsadm")
	d := &isnsd{t: t, dir: t.TempDir(), addr: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	lines := []string{
		"BindAddress = " + d.addr,
		"Security = 0",
		"SLPRegister = 0",
		// Debian's packaged isnsd.conf sets it too: nodes in no discovery
		// domain are visible to each other (and to the isnsadm checks).
		"DefaultDiscoveryDomain = 1",
		"SourceName = iqn.2026-11.io.sanbridge:isns-server",
	}
	d.conf = filepath.Join(d.dir, "isnsd.conf")
	body := strings.Join(append(append(lines, extra...), d.paths()...), "\n") + "\n"
	if err := os.WriteFile(d.conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start(bin)
	t.Cleanup(d.stop)
	return d
}

// paths are the file locations, all inside the test's directory.
func (d *isnsd) paths() []string {
	return []string{
		"Database = " + filepath.Join(d.dir, "db"),
		"ControlSocket = " + filepath.Join(d.dir, "isnsctl"),
		"PIDFile = " + filepath.Join(d.dir, "isnsd.pid"),
	}
}

func (d *isnsd) start(bin string) {
	t := d.t
	t.Helper()
	if err := os.MkdirAll(filepath.Join(d.dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(d.dir, "isnsd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d.log = f
	d.cmd = exec.Command(bin, "-f", "-c", d.conf)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Ready when it accepts connections (it binds before serving).
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", d.addr)
		if err == nil {
			c.Close()
			return
		}
		if i == 500 {
			b, _ := os.ReadFile(f.Name())
			t.Fatalf("isnsd does not listen on %s: %v\n%s", d.addr, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *isnsd) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d.log.Close()
	d.cmd = nil
}

// restart replaces the server by a new one on the same address with an
// empty database (a server that lost its state).
func (d *isnsd) restart() {
	d.t.Helper()
	d.stop()
	if err := os.RemoveAll(filepath.Join(d.dir, "db")); err != nil {
		d.t.Fatal(err)
	}
	d.start(peer(d.t, "isnsd"))
}

// query runs isnsadm --query as an unrelated client and returns its output.
func (d *isnsd) query(args ...string) string {
	t := d.t
	t.Helper()
	conf := filepath.Join(d.dir, "isnsadm.conf")
	body := fmt.Sprintf("ServerAddress = %s\nSecurity = 0\nSourceName = iqn.2026-11.io.sanbridge:checker\nControlSocket = %s\n",
		d.addr, filepath.Join(d.dir, "isnsctl"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, peer(t, "isnsadm"), append([]string{"-c", conf, "--query"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("isnsadm --query %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// events collects a client's events for the test to wait on.
type events chan Event

func (e events) on(ev Event) { e <- ev }

// wait returns the next event of kind k, failing the test if none comes
// within a generous bound or if the client reports errors of kind
// fatalKinds meanwhile.
func (e events) wait(t *testing.T, k EventKind) Event {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case ev := <-e:
			if ev.Kind == k {
				return ev
			}
			if ev.Kind == EventError {
				t.Logf("client error (retried): %v", ev.Err)
			}
		case <-deadline:
			t.Fatalf("no %s event", k)
		}
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

const (
	node1 = "iqn.2026-11.io.sanbridge:disk1"
	node2 = "iqn.2026-11.io.sanbridge:disk2"
	node3 = "iqn.2026-11.io.sanbridge:tape1"
)

func testRegistration(eid string) Registration {
	return Registration{
		EntityID: eid,
		Portals:  []Portal{{Addr: ap("127.0.0.1:3260"), Group: 1}, {Addr: ap("127.0.0.2:3261"), Group: 7}},
		Nodes: []Node{
			{Name: node1, Alias: "disk one"},
			{Name: node2, Portals: []netip.AddrPort{ap("127.0.0.1:3260")}},
		},
	}
}

// newClient returns a client of srv for testRegistration(eid) with the
// test's logger, fast retries and an event channel.
func newClient(t *testing.T, srv *isnsd, eid string, opts Options) (*Client, events) {
	t.Helper()
	ev := make(events, 100)
	opts.Server = srv.addr
	opts.RetryMin = 100 * time.Millisecond
	opts.Log = zerolog.New(zerolog.NewTestWriter(t))
	opts.OnEvent = ev.on
	c, err := New(opts, testRegistration(eid))
	if err != nil {
		t.Fatal(err)
	}
	return c, ev
}

// runClient starts c.Run and returns a function that stops it and waits.
func runClient(t *testing.T, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestISNSDRegistration: DevAttrReg of an entity with two portals (TPGT 1
// and 7), two targets (one reachable through one portal only) seen by
// isnsadm; a replacing registration after a change; DevDereg at stop.
// Messages are split into small PDUs to exercise reassembly in isnsd.
func TestISNSDRegistration(t *testing.T) {
	srv := startISNSD(t)
	eid := "sanbridge-test-reg"
	c, ev := newClient(t, srv, eid, Options{MaxPDUPayload: 400})
	stop := runClient(t, c)
	ev.wait(t, EventRegistered)

	out := srv.query("iscsi-name=" + node1)
	for _, want := range []string{
		`Entity identifier = "` + eid + `"`,
		`iSCSI name = "` + node1 + `"`,
		`iSCSI node type = Target`,
		`iSCSI alias = "disk one"`,
		`Portal IP address = 127.0.0.1`,
		`Portal TCP/UDP port = 3260/tcp`,
		`Portal IP address = 127.0.0.2`,
		`Portal TCP/UDP port = 3261/tcp`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("isnsadm --query iscsi-name=%s lacks %q:\n%s", node1, want, out)
		}
	}
	if out := srv.query("iscsi-name=" + node2); !strings.Contains(out, `iSCSI name = "`+node2+`"`) || !strings.Contains(out, `Entity identifier = "`+eid+`"`) {
		t.Errorf("%s not registered:\n%s", node2, out)
	}
	// Portal groups: disk1 through both portals with their tags, disk2
	// through 127.0.0.1:3260 only.
	pg1 := srv.query("pg-name=" + node1)
	pgs1 := portalGroups(pg1)
	if pgs1["127.0.0.1:3260"] != "1" || pgs1["127.0.0.2:3261"] != "7" {
		t.Errorf("portal groups of %s: %v\n%s", node1, pgs1, pg1)
	}
	pg2 := srv.query("pg-name=" + node2)
	pgs2 := portalGroups(pg2)
	if _, err := strconv.Atoi(pgs2["127.0.0.2:3261"]); pgs2["127.0.0.1:3260"] != "1" || err == nil {
		t.Errorf("portal groups of %s: %v\n%s", node2, pgs2, pg2)
	}

	// A change: disk2 goes, tape1 comes; the entity is replaced.
	reg := testRegistration(eid)
	reg.Nodes = []Node{reg.Nodes[0], {Name: node3, Alias: "tape"}}
	if err := c.Update(reg); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, EventRegistered)
	if out := srv.query("iscsi-name=" + node2); strings.Contains(out, node2) {
		t.Errorf("%s still registered after the update:\n%s", node2, out)
	}
	if out := srv.query("iscsi-name=" + node3); !strings.Contains(out, `iSCSI name = "`+node3+`"`) || !strings.Contains(out, `Entity identifier = "`+eid+`"`) {
		t.Errorf("%s not registered after the update:\n%s", node3, out)
	}

	// An invalid update is refused and changes nothing.
	bad := reg
	bad.Portals = append([]Portal{{Addr: ap("0.0.0.0:3260")}}, bad.Portals...)
	if err := c.Update(bad); err == nil {
		t.Error("Update accepted a wildcard portal")
	}

	stop()
	ev.wait(t, EventDeregistered)
	for _, n := range []string{node1, node3} {
		if out := srv.query("iscsi-name=" + n); strings.Contains(out, n) || strings.Contains(out, eid) {
			t.Errorf("%s still registered after stop:\n%s", n, out)
		}
	}
}

// portalGroups maps "addr:port" to the PGT isnsadm prints for each portal
// group object of a pg-name query.
func portalGroups(out string) map[string]string {
	m := map[string]string{}
	var addr, port string
	for _, line := range strings.Split(out, "\n") {
		_, v, ok := strings.Cut(line, " = ")
		if !ok {
			if strings.Contains(line, "<iSCSI Portal Group>") {
				addr, port = "", ""
			}
			continue
		}
		switch {
		case strings.Contains(line, "Portal group address"):
			addr = v
		case strings.Contains(line, "Portal group port"):
			port = strings.TrimSuffix(v, "/tcp")
		case strings.Contains(line, "Portal group tag"):
			m[addr+":"+port] = v
		}
	}
	return m
}

// TestISNSDESI: portals registered with an ESI port; isnsd's Entity
// Status Inquiries are answered (and keep the entity alive).
func TestISNSDESI(t *testing.T) {
	srv := startISNSD(t, "ESIMinInterval = 1", "ESIMaxInterval = 30", "ESIRetries = 3", "RegistrationPeriod = 120")
	eid := "sanbridge-test-esi"
	c, ev := newClient(t, srv, eid, Options{ESIListen: "127.0.0.1:0", ESIInterval: time.Second})
	stop := runClient(t, c)
	ev.wait(t, EventRegistered)
	out := srv.query("iscsi-name=" + node1)
	if !strings.Contains(out, "ESI port") {
		t.Errorf("portals registered without an ESI port:\n%s", out)
	}
	// 127.0.0.2 reaches the same loopback listener: both portals answer.
	for range 3 {
		if e := ev.wait(t, EventESI); e.EntityID != eid {
			t.Errorf("ESI answered for %q", e.EntityID)
		}
	}
	if out := srv.query("iscsi-name=" + node1); !strings.Contains(out, `Entity identifier = "`+eid+`"`) {
		t.Errorf("entity gone while answering ESI:\n%s", out)
	}
	stop()
	ev.wait(t, EventDeregistered)
}

// TestISNSDServerRestart: the refresh queries within the registration
// period find the entity; when the server restarts without its database,
// the client reconnects, notices the entity is gone and registers again.
func TestISNSDServerRestart(t *testing.T) {
	srv := startISNSD(t, "RegistrationPeriod = 3")
	eid := "sanbridge-test-restart"
	c, ev := newClient(t, srv, eid, Options{RetryMax: 500 * time.Millisecond})
	runClient(t, c)
	if e := ev.wait(t, EventRegistered); e.Period != time.Second {
		t.Errorf("refresh interval %v for a 3 s registration period, want 1s", e.Period)
	}
	ev.wait(t, EventRefreshed)

	srv.restart()
	if out := srv.query("iscsi-name=" + node1); strings.Contains(out, node1) {
		t.Fatalf("fresh server already has the entity:\n%s", out)
	}
	ev.wait(t, EventRegistered)
	if out := srv.query("iscsi-name=" + node1); !strings.Contains(out, `Entity identifier = "`+eid+`"`) {
		t.Errorf("not registered again after the server restart:\n%s", out)
	}
}

// TestISNSDNoESI: a server with ESI disabled refuses portals with an ESI
// port; the client registers without and refreshes by queries.
func TestISNSDNoESI(t *testing.T) {
	srv := startISNSD(t, "ESIRetries = 0", "RegistrationPeriod = 3")
	eid := "sanbridge-test-noesi"
	c, ev := newClient(t, srv, eid, Options{ESIListen: "127.0.0.1:0", ESIInterval: time.Second})
	runClient(t, c)
	ev.wait(t, EventRegistered)
	out := srv.query("iscsi-name=" + node1)
	if !strings.Contains(out, `Entity identifier = "`+eid+`"`) || strings.Contains(out, "ESI port") {
		t.Errorf("registration without ESI:\n%s", out)
	}
	ev.wait(t, EventRefreshed)
}
