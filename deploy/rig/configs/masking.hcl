# LUN masking test of the rig (deploy/rig/tests/44-masking.sh): two
# initiator groups, one host each (the open-iscsi ifaces ifA and ifB of the
# test), and four targets on 127.0.0.1:3260:
#
#                  rig-host-a (hosts-a)     rig-host-b (hosts-b)    any other
#   mask-shared    LUN 0 x, LUN 1 y         LUN 0 z, LUN 2 y        -
#   mask-a         LUN 3 w                  -                       -
#   mask-b         -                        LUN 0 v                 -
#   mask-default   LUN 0 d (read-only)      - (empty view)          LUN 0 d (read-only)
#
# y is one logical unit at LUN 1 for A and LUN 2 for B; LUN 0 of mask-shared
# is a different disk for each. The test then edits two views (see
# masking_edit in the test) and restarts sanbridge.

portal "lo" {
  listen    = "127.0.0.1:3260"
  advertise = "127.0.0.1:3260"
}

initiator_group "hosts-a" {
  initiators = ["iqn.2026-11.io.sanbridge:rig-host-a"]
}

initiator_group "hosts-b" {
  initiators = ["iqn.2026-11.io.sanbridge:rig-host-b"]
}

backend "x" {
  emulated {
    size   = "8MiB"
    serial = "mask-x"
  }
}

backend "y" {
  emulated {
    size   = "8MiB"
    serial = "mask-y"
  }
}

backend "z" {
  emulated {
    size   = "8MiB"
    serial = "mask-z"
  }
}

backend "w" {
  emulated {
    size   = "8MiB"
    serial = "mask-w"
  }
}

target "iqn.2026-11.io.sanbridge:mask-shared" {
  view "hosts-a" {
    lun "0" {
      backend = "x"
    }
    lun "1" {
      backend = "y"
    }
  }
  view "hosts-b" {
    lun "0" {
      backend = "z"
    }
    lun "2" {
      backend = "y"
    }
  }
}

target "iqn.2026-11.io.sanbridge:mask-a" {
  view "hosts-a" {
    lun "3" {
      backend = "w"
    }
  }
}

target "iqn.2026-11.io.sanbridge:mask-b" {
  view "hosts-b" {
    lun "0" {
      emulated {
        size   = "8MiB"
        serial = "mask-v"
      }
    }
  }
}

target "iqn.2026-11.io.sanbridge:mask-default" {
  lun "0" {
    emulated {
      size   = "8MiB"
      serial = "mask-d"
    }
    read_only = true
  }
  view "hosts-b" {
  }
}
