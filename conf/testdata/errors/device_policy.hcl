portal "lo" {
  listen = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:policy" {
  initiator "iqn.1994-05.com.redhat:h" {
  }

  lun "0" {
    device {
      wwn           = "naa.5000c50015ea7100"
      queue_depth   = 16
      allow_opcodes = ["0x04", "48h", 59]
      deny_opcodes  = ["0xc0"]
      timeout       = "90s"
      long_timeout  = "6h"
    }
  }

  lun "1" {
    device {
      wwn         = "naa.5000c50015ea7101"
      queue_depth = 0 # ERROR: Invalid queue_depth
    }
  }

  lun "2" {
    device {
      wwn           = "naa.5000c50015ea7102"
      allow_opcodes = ["0x100"] # ERROR: Invalid allow_opcodes
    }
  }

  lun "3" {
    device {
      wwn          = "naa.5000c50015ea7103"
      deny_opcodes = "0x04" # ERROR: Invalid deny_opcodes
    }
  }

  lun "4" {
    device {
      wwn           = "naa.5000c50015ea7104"
      allow_opcodes = ["0x3b", "0x3B"] # WARNING: Duplicate opcode
    }
  }

  lun "5" {
    device {
      wwn           = "naa.5000c50015ea7105"
      allow_opcodes = [
        "0x48", # ERROR: Opcode allowed and denied
      ]
      deny_opcodes = ["72"]
    }
  }

  lun "6" {
    device {
      wwn     = "naa.5000c50015ea7106"
      timeout = "ten" # ERROR: Invalid timeout
    }
  }

  lun "7" {
    device {
      wwn          = "naa.5000c50015ea7107"
      long_timeout = "48h" # ERROR: Invalid long_timeout
    }
  }

  lun "8" {
    device {
      wwn           = "naa.5000c50015ea7108"
      allow_opcodes = ["xx", "0x0g", ""] # ERROR: Invalid allow_opcodes
    }
  }
}
