package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
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
