# Warnings only: the configuration is usable.
portal "lo" {
  listen = "127.0.0.1:3260"
}

initiator_group "esx" {
  initiators = ["iqn.1998-01.com.vmware:*"]
}

# An exact name beats a pattern of another group: no diagnostic.
initiator_group "esx-special" {
  initiators = ["iqn.1998-01.com.vmware:esx99"]
}

initiator_group "nobody" { # WARNING: Empty initiator group
  initiators = []
}

initiator_group "idle" { # WARNING: Unused initiator group
  initiators = ["iqn.1994-05.com.redhat:idle"]
}

backend "spare" { # WARNING: Unused backend
  emulated {
    size = "1MiB"
  }
}

backend "shared" {
  emulated {
    size = "1MiB"
  }
}

target "iqn.2026-11.io.sanbridge:viewsonly" {
  initiator "iqn.1998-01.com.vmware:esx01" {
  }
  initiator "iqn.1998-01.com.vmware:esx99" {
  }
  view "esx" {
    lun "3" {
      backend = "shared"
    }
    lun "4" {
      backend = "shared" # WARNING: Backend mapped twice
    }
  }
  view "esx-special" {
    lun "0" {
      backend = "shared"
    }
  }
  view "nobody" { # WARNING: View unreachable
    lun "0" {
      backend = "shared"
    }
  }
}

target "iqn.2026-11.io.sanbridge:emptyviews" { # WARNING: Target has no LUNs
  initiator "iqn.1998-01.com.vmware:esx01" {
  }
  view "esx" {
  }
}

target "iqn.2026-11.io.sanbridge:onlyesx" {
  initiator "iqn.1994-05.com.redhat:db1" {
  }
  lun "0" {
    backend = "shared"
  }
  view "esx" { # WARNING: View unreachable
  }
}
