package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSanbridge builds the command into a temporary directory.
func buildSanbridge(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go toolchain on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sanbridge")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const notifyConfig = `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:notify" {
  lun "0" {
    emulated {
      size = "8MiB"
    }
  }
}
`

// startServe starts cmd, a sanbridge serve, and returns what its Wait
// returns; at the end of the test it is killed if still running, and
// out is logged if the test failed.
func startServe(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer) <-chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("sanbridge output:\n%s", out.String())
		}
	})
	return exited
}

// notifications receives what the child sends to NOTIFY_SOCKET.
type notifications struct {
	t    *testing.T
	msgs chan string
	seen []string
}

// expect returns the next notification that contains the line want,
// failing the test if none comes within a generous bound.
func (n *notifications) expect(want string) string {
	n.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				n.t.Fatalf("notify socket closed before %q; got %q", want, n.seen)
			}
			n.seen = append(n.seen, m)
			for _, l := range strings.Split(m, "\n") {
				if l == want {
					return m
				}
			}
		case <-deadline:
			n.t.Fatalf("no %q on NOTIFY_SOCKET; got %q", want, n.seen)
		}
	}
}

// TestSystemdNotify runs the real `sanbridge serve` with NOTIFY_SOCKET
// and WATCHDOG_USEC set as systemd sets them: READY=1 once it serves,
// WATCHDOG=1 pings, RELOADING=1 then READY=1 around a SIGHUP reload,
// STOPPING=1 on SIGTERM, and a clean exit.
func TestSystemdNotify(t *testing.T) {
	bin := buildSanbridge(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sanbridge.hcl")
	if err := os.WriteFile(cfg, []byte(notifyConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("unix datagram sockets unavailable: %v", err)
	}
	defer conn.Close()
	n := &notifications{t: t, msgs: make(chan string, 100)}
	go func() {
		defer close(n.msgs)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()

	// Its own state directory and no admin socket: nothing shared with a
	// gateway (or another test) on this machine.
	cmd := exec.Command(bin, "serve", "--config", cfg, "--log-format", "json", "--state-dir", filepath.Join(dir, "state"), "--admin-socket", "none")
	env := []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NOTIFY_SOCKET=") && !strings.HasPrefix(e, "WATCHDOG_") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	exited := startServe(t, cmd, &stderr)

	if m := n.expect("READY=1"); !strings.Contains(m, "STATUS=serving 1 target(s)") {
		t.Errorf("READY without the serving status: %q", m)
	}
	// systemctl reload may come right after READY=1: the SIGHUP must not
	// kill the process before it watches for reloads.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := n.expect("RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", m)
	}
	if m := n.expect("READY=1"); !strings.Contains(m, "STATUS=serving (reloaded)") {
		t.Errorf("READY after reload: %q", m)
	}
	n.expect("WATCHDOG=1") // still alive after the reload
	n.expect("WATCHDOG=1")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.expect("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sanbridge serve exited: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sanbridge serve did not exit after SIGTERM")
	}
}

// TestNotifyWithoutSystemd: outside systemd the notifier is silent and
// the watchdog does not start.
func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	n := newNotifier(newLogger(os.Stderr, 0, "json"))
	n.Ready("x")
	stop := n.StartWatchdog(t.Context(), nil)
	stop()
	called := false
	if err := n.Reload(func() error { called = true; return nil }); err != nil || !called {
		t.Fatalf("Reload: %v called %v", err, called)
	}
}

// verifyUnit runs systemd-analyze verify on unit text (ExecStart pointed
// at an executable that exists here) and returns its complaints about
// the unit: none means the unit is valid.
func verifyUnit(t *testing.T, analyze, unit string) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sanbridge.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/sbin/sanbridge", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var complaints []string
	for _, l := range strings.Split(string(out), "\n") {
		// Only what concerns this unit: a test machine's own units may
		// have problems of their own.
		if strings.Contains(l, "sanbridge.service") {
			complaints = append(complaints, l)
		}
	}
	if err != nil && len(complaints) == 0 {
		complaints = append(complaints, err.Error()+": "+string(out))
	}
	return complaints
}

// TestSystemdUnit: deploy/systemd/sanbridge.service passes
// `systemd-analyze verify` without a warning and declares what serve
// implements (notify, watchdog, reload by SIGHUP, state directory).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("SANBRIDGE_REQUIRE_PEERS") != "" {
			t.Fatal("systemd-analyze not installed (apt-get install systemd)")
		}
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	b, err := os.ReadFile("../../deploy/systemd/sanbridge.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	if c := verifyUnit(t, analyze, unit); len(c) > 0 {
		t.Errorf("systemd-analyze verify:\n%s", strings.Join(c, "\n"))
	}
	for _, want := range []string{
		"Type=notify\n", "NotifyAccess=main\n", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID\n",
		"StateDirectory=sanbridge\n", "CAP_SYS_RAWIO", "CAP_NET_BIND_SERVICE", "ProtectSystem=strict\n",
		"DeviceAllow=char-sg rw\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	// The check can fail: a misspelt key is reported.
	if c := verifyUnit(t, analyze, strings.Replace(unit, "WatchdogSec=", "WatchdogSecs=", 1)); len(c) == 0 {
		t.Error("systemd-analyze verify did not report a misspelt key")
	}
}
