portal "lo" {
  listen = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:luns" {
  initiator "iqn.1994-05.com.redhat:h" {
  }

  lun "a" { # ERROR: Invalid LUN id
    emulated {
      size = "1MiB"
    }
  }

  lun "-1" { # ERROR: Invalid LUN id
    emulated {
      size = "1MiB"
    }
  }

  lun "16384" { # ERROR: LUN id out of range
    emulated {
      size = "1MiB"
    }
  }

  lun "99999999999999999999999" { # ERROR: LUN id out of range
    emulated {
      size = "1MiB"
    }
  }

  lun "16383" {
    emulated {
      size = "1MiB"
    }
  }

  lun "1" {
    emulated {
      size = "1MiB"
    }
  }

  lun "01" { # ERROR: Duplicate LUN
    emulated {
      size = "1MiB"
    }
  }

  lun "2" { # ERROR: Missing LUN backend
  }

  lun "3" {
    emulated {
      size = "1MiB"
    }
    emulated { # ERROR: Multiple LUN backends
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:emulated" {
  initiator "iqn.1994-05.com.redhat:h" {
  }

  lun "0" {
    emulated { # ERROR: Missing size
    }
  }

  lun "1" {
    emulated {
      size = 0 # ERROR: Zero size
    }
  }

  lun "2" {
    emulated {
      size = "1000" # ERROR: Size not a multiple of block size
    }
  }

  lun "3" {
    emulated {
      size       = "1MB" # ERROR: Size not a multiple of block size
      block_size = 4096
    }
  }

  lun "4" {
    emulated {
      size = "64M" # ERROR: Invalid size
    }
  }

  lun "5" {
    emulated {
      size = "1.5GiB" # ERROR: Invalid size
    }
  }

  lun "6" {
    emulated {
      size = -512 # ERROR: Invalid size
    }
  }

  lun "7" {
    emulated {
      size = "99999999999TiB" # ERROR: Invalid size
    }
  }

  lun "8" {
    emulated {
      size = true # ERROR: Invalid size
    }
  }

  lun "9" {
    emulated {
      size       = "1MiB"
      block_size = 1024 # ERROR: Invalid block_size
    }
  }

  lun "10" {
    emulated {
      size = "1MiB"
      file = "disk.img" # ERROR: Relative file path
    }
  }

  lun "11" {
    emulated {
      size = "1MiB"
      file = "" # ERROR: Invalid file
    }
  }

  lun "12" {
    emulated {
      size      = "1MiB"
      read_only = "maybe" # ERROR: Invalid read_only
    }
  }

  lun "13" {
    emulated {
      size     = "1MiB"
      vendor   = "SANBRIDGE" # ERROR: Invalid vendor
      product  = "A PRODUCT NAME TOO LONG" # ERROR: Invalid product
      revision = "12345" # ERROR: Invalid revision
    }
  }

  lun "14" {
    emulated {
      size   = "1MiB"
      serial = "has space" # ERROR: Invalid serial
    }
  }

  lun "15" {
    emulated {
      size   = "1MiB"
      serial = "s-15"
    }
  }

  lun "16" {
    emulated {
      size   = "1MiB"
      serial = "s-15" # ERROR: Duplicate serial
    }
  }

  lun "17" {
    emulated {
      size    = "1MiB"
      product = "caf\u00e9" # ERROR: Invalid product
    }
  }

  lun "18" {
    emulated {
      size       = "4KiB"
      block_size = 4096
      read_only  = true
      file       = "/var/lib/sanbridge/../sanbridge/ok.img"
    }
  }
}
