// Package etcdtest runs a real etcd cluster for tests: Debian's etcd
// server (/usr/bin/etcd, package etcd-server), several members on
// loopback ports with their data in the test's temporary directory.
// Tests are skipped when etcd is not installed, unless
// SANBRIDGE_REQUIRE_PEERS is set (make test sets it), when they fail.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Member is one etcd member process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	dataDir   string
	args      []string
	bin       string
	t         testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a running etcd cluster.
type Cluster struct {
	Members []*Member
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// binary returns the etcd server's path, or skips (fails when peers are
// required).
func binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("SANBRIDGE_REQUIRE_PEERS") != "" {
			t.Fatalf("etcd not installed (apt-get install etcd-server)")
		}
		t.Skipf("etcd not installed (apt-get install etcd-server); skipping")
	}
	return p
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// Start runs an etcd cluster of n members and waits until it is healthy;
// the members are killed at the end of the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := binary(t)
	ports := freePorts(t, 2*n)
	c := &Cluster{}
	var initial []string
	dir := t.TempDir()
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			bin:       bin,
			t:         t,
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "sanbridge-test", "--logger", "zap", "--log-level", "error",
			"--heartbeat-interval", "50", "--election-timeout", "500",
		}
		m.Start()
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
	})
	for _, m := range c.Members {
		m.WaitHealthy()
	}
	return c
}

// Start starts the member's process (again, after Kill: with its data).
func (m *Member) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin, m.args...)
	logf, err := os.OpenFile(m.dataDir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = memberProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		m.t.Fatalf("etcd member %s: %v", m.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed by the test: the exit status says nothing
		logf.Close()
		close(done)
	}()
	m.cmd, m.done = cmd, done
}

// Kill kills the member's process (SIGKILL) and waits for it to exit.
func (m *Member) Kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // it may have exited already
	<-done
}

// WaitHealthy waits until the member answers /health with health true.
func (m *Member) WaitHealthy() {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var b [256]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if strings.Contains(string(b[:n]), `"health":"true"`) {
				return
			}
			err = errors.New(string(b[:n]))
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(m.dataDir + ".log")
	m.t.Fatalf("etcd member %s not healthy: %v\n%s", m.Name, last, log)
}
