# sanbridge demo configuration: one 64 MiB memory-backed emulated disk,
# exported on the loopback interface as an open target (no ACL, no CHAP).
#
#   sanbridge serve -config deploy/examples/demo.hcl
#   iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260
#   iscsiadm -m node -T iqn.2026-11.io.sanbridge:demo -p 127.0.0.1:3260 --login
#
# `sanbridge check` warns that the target is open: acceptable on loopback,
# not on a network. See chap.hcl for access lists and CHAP.

log_level = "info"

portal "lo" {
  listen = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:demo" {
  alias = "sanbridge demo disk"

  lun "0" {
    emulated {
      size       = "64MiB"
      block_size = 512
    }
  }
}
