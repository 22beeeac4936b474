portal "lo" {
  listen = "127.0.0.1:3260"
}

initiator_group "esx" {
  initiators = ["iqn.1998-01.com.vmware:*"]
}

initiator_group "linux" {
  initiators = ["iqn.1994-05.com.redhat:*"]
}

backend "shelf1" {
  device {
    wwn = "naa.5000c50015ea71a0"
  }
}

backend "scratch" {
  emulated {
    size = "1MiB"
  }
}

target "iqn.2026-11.io.sanbridge:views" {
  initiator "iqn.1998-01.com.vmware:esx01" {
  }
  initiator "iqn.1994-05.com.redhat:db1" {
  }

  lun "0" {
    backend = "shelf1"
  }
  lun "1" {
    backend = "scratch"
  }

  view "esx" {
    lun "0" {
      backend   = "shelf1"
      read_only = true
    }
    lun "1" {
      backend = "scratch"
    }
    lun "01" { # ERROR: Duplicate LUN
      emulated {
        size = "1MiB"
      }
    }
    lun "16384" { # ERROR: LUN id out of range
      emulated {
        size = "1MiB"
      }
    }
    lun "x" { # ERROR: Invalid LUN id
      emulated {
        size = "1MiB"
      }
    }
    lun "3" {
      backend = "nope" # ERROR: Unknown backend
    }
    lun "4" {
      backend = "scratch" # WARNING: Backend mapped twice
    }
    lun "5" {
      backend = "shelf1" # WARNING: Backend mapped twice
      emulated { # ERROR: Multiple LUN backends
        size = "1MiB"
      }
    }
    lun "6" { # ERROR: Missing LUN backend
      read_only = true
    }
    lun "7" {
      backend = ["shelf1"] # ERROR: Invalid backend
    }
    lun "8" {
      backend   = "scratch" # WARNING: Backend mapped twice
      read_only = "yes" # ERROR: Invalid read_only
    }
    lun "9" {
      emulated {
        size = "1MiB"
      }
      backend = "shelf1" # ERROR: Multiple LUN backends
    }
    lun "10" {
      backend = "views:lun/0" # ERROR: Unknown backend
    }
  }

  view "esx" { # ERROR: Duplicate view
  }

  view "nobody" { # ERROR: Unknown initiator group
  }

  view "linux" {
    lun "0" {
      backend = "scratch"
    }
    lun "0" { # ERROR: Duplicate LUN
      backend = "shelf1"
    }
  }
}
