portal "lo" {
  listen = "127.0.0.1:3260"
}

initiator_group "esx" {
  initiators = [
    "iqn.1998-01.com.vmware:*",
    "iqn.2026-01.io.example:host1",
    "IQN.2026-01.IO.EXAMPLE:HOST1", # ERROR: Duplicate initiator
    "host7", # ERROR: Invalid initiator name
    "esx-*", # ERROR: Invalid initiator pattern
    "iqn.1998-01.com.vmware:esx?*", # ERROR: Invalid initiator pattern
    null, # ERROR: Invalid initiator name
    "IQN.1998-01.COM.VMWARE:*", # ERROR: Duplicate initiator
  ]
}

initiator_group "linux" {
  initiators = [
    "iqn.1994-05.com.redhat:*",
    "iqn.1994-05.com.redhat:db*",
    "iqn.2026-01.io.example:host1", # ERROR: Initiator in two groups
    "iqn.1998-01.com.vmware:esx01",
    "iqn.1998-01.com.vmware:esx*", # ERROR: Overlapping initiator patterns
    "*:db*", # ERROR: Overlapping initiator patterns
    "eui.*",
    "naa.60*",
  ]
}

initiator_group "esx" { # ERROR: Duplicate initiator group
  initiators = ["iqn.2026-01.io.example:host9"]
}

initiator_group "9bad" { # ERROR: Invalid initiator group name
  initiators = ["iqn.2026-01.io.example:host8"]
}

# A list with errors gets no warnings about what it would match.
initiator_group "strings" {
  initiators = "iqn.2026-01.io.example:host3" # ERROR: Invalid initiators
}

# Patterns conflict when any string matches both, even one that is not a
# valid iSCSI name: "naa.*" and "*:db*" both match "naa.:db".
initiator_group "windows" {
  initiators = ["iqn.1991-05.com.microsoft:*", "naa.*"] # ERROR: Overlapping initiator patterns
}

target "iqn.2026-11.io.sanbridge:groups" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
  view "esx" {
  }
  view "linux" {
  }
  view "strings" {
  }
  view "windows" { # WARNING: View unreachable
  }
}
