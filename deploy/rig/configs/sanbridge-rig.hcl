# sanbridge configuration of the rig's guest tests (deploy/rig/guest/lib.sh,
# rig_target_start): three 64 MiB memory disks on 127.0.0.1:3260, one open,
# one behind one-way CHAP, one behind mutual CHAP. tgtd is configured to match
# (rig_tgtd_start) so the same tests run against both.

log_level = "debug"

portal "lo" {
  listen    = "127.0.0.1:3260"
  advertise = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:rig-open" {
  alias = "rig open disk"

  lun "0" {
    emulated {
      size   = "64MiB"
      serial = "rig-open0"
    }
  }
}

target "iqn.2026-11.io.sanbridge:rig-chap" {
  alias = "rig one-way CHAP disk"

  chap {
    username = "rig-initiator"
    secret   = "rig-initiator-secret"
  }

  lun "0" {
    emulated {
      size   = "64MiB"
      serial = "rig-chap0"
    }
  }
}

target "iqn.2026-11.io.sanbridge:rig-mutual" {
  alias = "rig mutual CHAP disk"

  chap {
    username        = "rig-initiator"
    secret          = "rig-initiator-secret"
    mutual_username = "rig-target"
    mutual_secret   = "rig-target-secret-42"
  }

  lun "0" {
    emulated {
      size   = "64MiB"
      serial = "rig-mutual0"
    }
  }
}
