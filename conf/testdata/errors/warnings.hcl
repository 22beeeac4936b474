# Warnings only: the configuration is usable.
portal "lo" {
  listen = "127.0.0.1:3260"
}

portal "any" {
  listen = "0.0.0.0:3261"
  group  = 2
}

target "iqn.2026-11.io.sanbridge:openlo" { # WARNING: Open target
  portals = ["lo"]
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:openany" { # WARNING: Open target # WARNING: No CHAP on a non-loopback portal
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:openchap" { # WARNING: Open target
  chap {
    username = "u"
    secret   = "123456789012"
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:aclpartialchap" { # WARNING: No CHAP on a non-loopback portal
  portals = ["any"]
  initiator "iqn.1994-05.com.redhat:withchap" {
    chap {
      username = "h1"
      secret   = "h1-secret-xyz"
    }
  }
  initiator "iqn.1994-05.com.redhat:nochap" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:aclallchap" {
  portals = ["any"]
  initiator "iqn.1994-05.com.redhat:withchap" {
    chap {
      username = "h1"
      secret   = "h1-secret-abc"
    }
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:noluns" { # WARNING: Target has no LUNs
  portals = ["lo"]
  initiator "iqn.1994-05.com.redhat:h" {
  }
}
