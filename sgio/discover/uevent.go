package discover

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A kernel uevent (the NETLINK_KOBJECT_UEVENT multicast group 1, see
// lib/kobject_uevent.c) is one datagram:
//
//	ACTION@DEVPATH \0 ACTION=add \0 DEVPATH=/devices/... \0 SUBSYSTEM=scsi_generic \0 ... SEQNUM=1234 \0
//
// a header, then KEY=VALUE pairs, each NUL-terminated. udev's re-broadcasts
// (group 2) start with "libudev\0" instead and are not parsed here.

// Action is a uevent's ACTION (kobject_action in the kernel).
type Action string

// Uevent actions.
const (
	ActionAdd     Action = "add"
	ActionRemove  Action = "remove"
	ActionChange  Action = "change"
	ActionMove    Action = "move"
	ActionOnline  Action = "online"
	ActionOffline Action = "offline"
	ActionBind    Action = "bind"
	ActionUnbind  Action = "unbind"
)

// String returns the action as the kernel spells it.
func (a Action) String() string { return string(a) }

// Uevent is one kernel device event.
type Uevent struct {
	Action Action
	// DevPath is the device's sysfs path below /sys ("/devices/...").
	DevPath string
	// Subsystem is SUBSYSTEM ("scsi_generic", "scsi_device", "block", "usb").
	Subsystem string
	// DevType is DEVTYPE ("disk", "partition", "scsi_device", "usb_device",
	// "usb_interface"); may be empty.
	DevType string
	// DevName is DEVNAME, the node below /dev ("sg3", "sdb",
	// "bus/usb/001/004"); empty for devices without a node.
	DevName string
	// Seq is SEQNUM, the kernel's event sequence number.
	Seq uint64
	// Env holds every KEY=VALUE of the event, the above included.
	Env map[string]string
}

// ErrUeventFormat marks bytes that are not a kernel uevent.
var ErrUeventFormat = errors.New("discover: malformed uevent")

// maxUevent bounds a uevent datagram (the kernel's own limit is
// UEVENT_BUFFER_SIZE, 2048 bytes, plus the header).
const maxUevent = 8192

// maxUeventVars bounds the KEY=VALUE pairs (UEVENT_NUM_ENVP is 64).
const maxUeventVars = 128

// ParseUevent decodes a kernel uevent datagram. It never panics; bytes
// that are not a kernel uevent (including udev's "libudev" messages)
// return an error wrapping ErrUeventFormat.
func ParseUevent(b []byte) (Uevent, error) {
	var u Uevent
	if len(b) > maxUevent {
		return u, fmt.Errorf("%w: %d bytes", ErrUeventFormat, len(b))
	}
	if bytes.HasPrefix(b, []byte("libudev\x00")) {
		return u, fmt.Errorf("%w: a udev message, not a kernel uevent", ErrUeventFormat)
	}
	head, rest, _ := bytes.Cut(b, []byte{0})
	action, devpath, ok := strings.Cut(string(head), "@")
	if !ok || action == "" || !strings.HasPrefix(devpath, "/") {
		return u, fmt.Errorf("%w: header %q is not ACTION@DEVPATH", ErrUeventFormat, truncate(head))
	}
	u.Action, u.DevPath = Action(action), devpath
	u.Env = make(map[string]string, 12)
	for vars := 0; len(rest) > 0; {
		var kv []byte
		kv, rest, _ = bytes.Cut(rest, []byte{0})
		if len(kv) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok || k == "" {
			return u, fmt.Errorf("%w: %q is not KEY=VALUE", ErrUeventFormat, truncate(kv))
		}
		if vars++; vars > maxUeventVars {
			return u, fmt.Errorf("%w: more than %d variables", ErrUeventFormat, maxUeventVars)
		}
		u.Env[k] = v
	}
	// The header and the variables name the same event.
	if a, ok := u.Env["ACTION"]; ok && a != action {
		return u, fmt.Errorf("%w: header action %q, ACTION=%q", ErrUeventFormat, action, a)
	}
	if p, ok := u.Env["DEVPATH"]; ok && p != devpath {
		return u, fmt.Errorf("%w: header path %q, DEVPATH=%q", ErrUeventFormat, devpath, p)
	}
	u.Subsystem = u.Env["SUBSYSTEM"]
	u.DevType = u.Env["DEVTYPE"]
	u.DevName = u.Env["DEVNAME"]
	if s, ok := u.Env["SEQNUM"]; ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return u, fmt.Errorf("%w: SEQNUM=%q", ErrUeventFormat, s)
		}
		u.Seq = n
	}
	return u, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// DefaultUeventSubsystems returns the subsystems whose events matter to
// the gateway: SCSI generic nodes, SCSI devices (the class, and the bus
// whose "change" events carry SDEV_UA, such as
// CAPACITY_DATA_HAS_CHANGED), block devices (in-use checks) and USB
// (mass-storage devices driven over the Bulk-Only Transport).
func DefaultUeventSubsystems() []string {
	return []string{"scsi_generic", "scsi_device", "scsi", "block", "usb"}
}

// ErrUeventOverflow is returned by [UeventMonitor.Next] when the kernel
// dropped events because the socket's buffer was full: the caller must
// rescan, as some arrivals or removals were lost. The monitor goes on.
var ErrUeventOverflow = errors.New("discover: uevents lost (receive buffer overflow): rescan")

// subsystemFilter reports whether an event of subsystem s is wanted.
type subsystemFilter []string

func (f subsystemFilter) match(s string) bool {
	for _, w := range f {
		if w == s {
			return true
		}
	}
	return false
}
