# LUN masking: two initiator groups see different LUNs of the same targets.
#
#   group "esx"   (every VMware host, and one Linux host by exact name)
#     target masking:      LUN 0 shared   LUN 1 esx-vmfs   LUN 2 golden (read-only)
#     target masking-esx:  LUN 9 shared
#   group "linux" (every other Red Hat-style initiator name)
#     target masking:      LUN 0 linux-data   LUN 5 shared (read-only)
#     target masking-esx:  nothing (no view there: the default map, which is empty)
#   any other initiator
#     target masking:      LUN 0 golden (read-only)
#     target masking-esx:  nothing
#
# "shared" is one disk at LUN 0 for esx, LUN 5 for linux and LUN 9 of the
# second target: one logical unit, so its data, reservations and unit
# attentions are the same whichever LUN number an initiator reaches it
# through. esx-vmfs and linux-data are each seen by one group only.
#
# The backends are memory-backed emulated disks so that this file runs on
# any machine; a pass-through device is written the same way:
#   backend "shelf1" { device { wwn = "naa.5000c50015ea71a0" } }
#
# Masking decides which LUNs an initiator sees; initiator blocks (access
# lists, exact names only) decide who may log in at all. These targets are
# open and on loopback, so `sanbridge check` warns about them.

portal "lo" {
  listen = "127.0.0.1:3260"
}

initiator_group "esx" {
  # A pattern for every VMware host, and one exact name: an exact name
  # beats the "linux" group's pattern.
  initiators = [
    "iqn.1998-01.com.vmware:*",
    "iqn.1994-05.com.redhat:vcenter",
  ]
}

initiator_group "linux" {
  initiators = ["iqn.1994-05.com.redhat:*"]
}

backend "shared" {
  emulated {
    size   = "64MiB"
    serial = "masking-shared"
  }
}

backend "esx-vmfs" {
  emulated {
    size   = "64MiB"
    serial = "masking-esx-vmfs"
  }
}

backend "golden" {
  emulated {
    size   = "16MiB"
    serial = "masking-golden"
  }
}

target "iqn.2026-11.io.sanbridge:masking" {
  alias = "masking demo"

  # The default map: what initiators in no group see. The golden image is
  # writable through no mapping of this file.
  lun "0" {
    backend   = "golden"
    read_only = true
  }

  view "esx" {
    lun "0" {
      backend = "shared"
    }
    lun "1" {
      backend = "esx-vmfs"
    }
    lun "2" {
      backend   = "golden"
      read_only = true
    }
  }

  view "linux" {
    # An inline backend: a disk only this view maps.
    lun "0" {
      emulated {
        size   = "32MiB"
        serial = "masking-linux-data"
      }
    }
    lun "5" {
      backend   = "shared"
      read_only = true
    }
  }
}

target "iqn.2026-11.io.sanbridge:masking-esx" {
  alias = "masking demo, esx only"

  # No default map: only the esx group sees a LUN here, so only esx hosts
  # find the target in discovery.
  view "esx" {
    lun "9" {
      backend = "shared"
    }
  }
}
