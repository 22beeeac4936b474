portal "lo" {
  listen = "127.0.0.1:3260"
}

backend "shelf1" {
  device {
    wwn = "naa.5000c50015ea71a0"
  }
}

backend "shelf1" { # ERROR: Duplicate backend
  device {
    wwn = "naa.5000c50015ea71a1"
  }
}

backend "1x" { # ERROR: Invalid backend name
  emulated {
    size = "1MiB"
  }
}

backend "empty" { # ERROR: Missing backend definition
}

backend "two" {
  emulated {
    size = "1MiB"
  }
  device { # ERROR: Multiple backend definitions
    wwn = "naa.5000c50015ea71a2"
  }
}

backend "unused" { # WARNING: Unused backend
  emulated {
    size = "1MiB"
  }
}

backend "bad" {
  emulated {
    size = "1000" # ERROR: Size not a multiple of block size
  }
}

backend "byserial" {
  device {
    serial    = "Z1Z3R2K8"
    read_only = true
  }
}

target "iqn.2026-11.io.sanbridge:backends" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    device { # ERROR: Device used twice
      wwn = "NAA.5000C50015EA71A0"
    }
  }
  lun "1" {
    device { # ERROR: Device used twice
      wwn    = "naa.5000c50015ea71a9"
      serial = "Z1Z3R2K8"
    }
  }
  lun "2" {
    emulated {
      size = "1MiB"
      file = "/srv/a.img"
    }
  }
  lun "3" {
    emulated {
      size = "1MiB"
      file = "/srv//a.img" # ERROR: Backing file used twice
    }
  }
  lun "4" {
    device {
      path      = "/dev/disk/by-id/wwn-0x5000c50015ea71a3"
      read_only = "no" # ERROR: Invalid read_only
    }
  }
  lun "5" {
    backend = "two"
  }
  lun "6" {
    backend = "byserial"
  }
  lun "7" {
    backend = "bad"
  }
  lun "8" {
    backend = "empty"
  }
  lun "9" {
    backend = "shelf1"
  }
}

target "iqn.2026-11.io.sanbridge:again" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    device { # ERROR: Device used twice
      path = "/dev/disk/by-id/wwn-0x5000c50015ea71a3"
    }
  }
}
