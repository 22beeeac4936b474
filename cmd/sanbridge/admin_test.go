package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sanbridge/sanbridge/bridge"
)

const statusConfig = `
portal "lo" {
  listen = "127.0.0.1:0"
}
target "iqn.2026-11.io.sanbridge:status" {
  lun "0" {
    emulated {
      size = "8MiB"
    }
  }
}
`

// TestStatusAndReloadCommands runs the real serve, status and reload:
// status --json shows the running targets; reload applies an edited
// file (the new LUN shows), and refuses a broken one with its file:line
// and exit status 1, leaving the gateway as it was.
func TestStatusAndReloadCommands(t *testing.T) {
	bin := buildSanbridge(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sanbridge.hcl")
	if err := os.WriteFile(cfgPath, []byte(statusConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	serve := exec.Command(bin, "serve", "--config", cfgPath, "--log-format", "json", "--state-dir", filepath.Join(dir, "state"),
		"--admin-socket", sock, "--watch-devices=false")
	var logs bytes.Buffer
	serve.Stderr = &logs
	out, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	exited := startServe(t, serve, &logs)
	if !bufio.NewScanner(out).Scan() { // "listening on ..."
		t.Fatal("serve printed nothing")
	}
	run := func(args ...string) (string, error) {
		var o, e bytes.Buffer
		c := exec.Command(bin, args...)
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		return o.String() + e.String(), err
	}
	var st bridge.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := run("status", "--json", "--admin", sock)
		if err == nil {
			if err := json.Unmarshal([]byte(o), &st); err != nil {
				t.Fatalf("status --json: %v\n%s", err, o)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: %v: %s", err, o)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(st.Targets) != 1 || len(st.Targets[0].LUNs) != 1 || !st.LastReload.OK {
		t.Fatalf("status: %+v", st)
	}
	if o, err := run("status", "--admin", sock); err != nil || !strings.Contains(o, "iqn.2026-11.io.sanbridge:status") || !strings.Contains(o, "last reload: ok") {
		t.Fatalf("status: %v\n%s", err, o)
	}

	edited := strings.Replace(statusConfig, "  lun \"0\" {", "  lun \"1\" {\n    emulated {\n      size = \"4MiB\"\n    }\n  }\n  lun \"0\" {", 1)
	if err := os.WriteFile(cfgPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := run("reload", "--admin", sock); err != nil || !strings.Contains(o, "reloaded: 1 portal(s), 1 target(s), 2 LUN(s)") {
		t.Fatalf("reload: %v\n%s", err, o)
	}
	if err := os.WriteFile(cfgPath, []byte(edited+"\nbogus {\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := run("reload", "--admin", sock)
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(o, "sanbridge.hcl:") {
		t.Fatalf("reload of a broken file: %v\n%s", err, o)
	}
	o, _ = run("status", "--json", "--admin", sock)
	if err := json.Unmarshal([]byte(o), &st); err != nil || st.LastReload.OK || len(st.Targets[0].LUNs) != 2 {
		t.Fatalf("status after the failed reload: %v %+v", err, st)
	}

	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := os.Stat(sock); err == nil {
		t.Error("the admin socket is left behind")
	}
}

// TestCheckAgainstDevices: check reports a device block that selects no
// device of this machine with its file:line; --no-devices checks the file
// only.
func TestCheckAgainstDevices(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dev.hcl")
	src := `portal "lo" {
  listen = "127.0.0.1:3260"
}
target "iqn.2026-11.io.sanbridge:dev" {
  lun "0" {
    device {
      wwn = "naa.5000c500deadbeef"
    }
  }
}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	err := run(t.Context(), []string{"check", "--config", path, "--state-dir", dir}, &o, &e)
	if err == nil || !strings.Contains(e.String(), "No device matches") || !strings.Contains(err.Error(), "dev.hcl:6,") {
		t.Fatalf("check: %v\n%s%s", err, o.String(), e.String())
	}
	o.Reset()
	e.Reset()
	if err := run(t.Context(), []string{"check", "--no-devices", "--config", path}, &o, &e); err != nil || !strings.Contains(o.String(), "OK") {
		t.Fatalf("check --no-devices: %v\n%s%s", err, o.String(), e.String())
	}
}
