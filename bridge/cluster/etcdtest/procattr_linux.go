package etcdtest

import "syscall"

// memberProcAttr makes the kernel kill an etcd member when the test
// process dies, so no member outlives a crashed test.
func memberProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
