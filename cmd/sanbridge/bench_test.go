package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/bot"
)

// TestBenchRefuses: bench answers bad arguments with a usage error and
// a device that is not SCSI with the backend's error, before any I/O.
// (It reads real devices in the rig's 30-sgio.)
func TestBenchRefuses(t *testing.T) {
	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{nil, true, "one device expected"},
		{[]string{"--qd", "0", "/dev/sg0"}, true, "--qd 1.."},
		{[]string{"--count", "-1", "/dev/sg0"}, true, "--count"},
		{[]string{"--bogus", "/dev/sg0"}, true, "bogus"},
		{[]string{"/dev/null"}, false, "not a SCSI generic"},
		{[]string{t.TempDir() + "/none"}, false, "no such file"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"bench"}, c.args...), &out, &errOut)
		if err == nil || errors.Is(err, errUsage) != c.usage || !strings.Contains(err.Error()+errOut.String(), c.want) {
			t.Errorf("bench %q: %v (usage %v), stderr %q; want an error mentioning %q", c.args, err, errors.Is(err, errUsage), errOut.String(), c.want)
		}
		if out.Len() != 0 {
			t.Errorf("bench %q printed %q", c.args, out.String())
		}
	}
}

// TestBenchUSB: usb:INTERFACE goes to the Bulk-Only backend, one command
// at a time.
func TestBenchUSB(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"bench", "--qd", "2", "usb:1-1"}, &out, &errOut)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "one command at a time") {
		t.Errorf("--qd 2 over BOT: %v", err)
	}
	err = run(context.Background(), []string{"bench", "usb:9-9.9"}, &out, &errOut)
	want := bot.ErrNotFound
	if !bot.BuiltIn {
		want = bot.ErrNotBuiltIn
	}
	if !errors.Is(err, want) {
		t.Errorf("bench usb:9-9.9: %v, want %v", err, want)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q", out.String())
	}
}
