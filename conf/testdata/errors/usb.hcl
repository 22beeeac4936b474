portal "lo" {
  listen = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:usb" {
  initiator "iqn.1994-05.com.redhat:h" {
  }

  lun "0" {
    device {
      usb {
        vid    = "46f4"
        pid    = "0001"
        serial = "USB0123456789"
      }
    }
  }

  lun "1" {
    device {
      usb { # ERROR: Missing usb selector
        lun = 1
      }
    }
  }

  lun "2" {
    device {
      usb {
        vid = "46f4x" # ERROR: Invalid vid
        pid = "1ffff" # ERROR: Invalid pid
      }
    }
  }

  lun "3" {
    device {
      usb {
        path = "usb2-1" # ERROR: Invalid path
        lun  = 16 # ERROR: Invalid lun
      }
    }
  }

  lun "4" {
    device {
      wwn = "naa.5000c50015ea71a0"
      usb { # ERROR: Mixed device selectors
        path = "2-1"
      }
    }
  }

  lun "5" {
    device {
      usb {
        path = "2-2:1.0"
      }
      usb { # ERROR: Duplicate usb block
        path = "2-3"
      }
    }
  }

  lun "6" {
    device {
      usb { # ERROR: Device used twice
        vid    = "0x46F4"
        pid    = "1"
        serial = "USB0123456789"
      }
    }
  }

  lun "7" {
    device {
      usb {
        serial = " " # ERROR: Invalid serial
      }
    }
  }
}
