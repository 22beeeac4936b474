portal "lo" {
  listen = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:devices" {
  initiator "iqn.1994-05.com.redhat:h" {
  }

  lun "0" {
    device {
      wwn = "naa.5000c50015ea71a0"
    }
  }

  lun "1" {
    device { # ERROR: Missing device selector
      allow_in_use = true
    }
  }

  lun "2" {
    device {
      path = "disk/by-path/x" # ERROR: Invalid path
    }
  }

  lun "3" {
    device {
      path = "/dev/sg3" # WARNING: Unstable device path
    }
  }

  lun "4" {
    device {
      serial = "  " # ERROR: Invalid serial
    }
  }

  lun "5" {
    device {
      serial = "Z1Z3R2K8"
    }
    emulated { # ERROR: Multiple LUN backends
      size = "1MiB"
    }
  }
}
