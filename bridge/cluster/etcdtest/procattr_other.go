//go:build !linux

package etcdtest

import "syscall"

// memberProcAttr: without Linux's parent-death signal, members are only
// stopped by the test's cleanup.
func memberProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
