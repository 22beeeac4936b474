portal "a" {
  listen = "127.0.0.1:3260"
}

portal "b1" {
  listen = "127.0.0.1:3261"
  group  = 2
}

portal "b2" {
  listen = "127.0.0.1:3262"
  group  = 2
}

target "iqn.2026-13.io.sanbridge:badmonth" { # ERROR: Invalid target name
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:dup" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "IQN.2026-11.IO.SANBRIDGE:DUP" { # ERROR: Duplicate target
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:initiators" {
  initiator "iqn.1994-05.com.redhat:h1" {
  }
  initiator "IQN.1994-05.COM.REDHAT:H1" { # ERROR: Duplicate initiator
  }
  initiator "host2" { # ERROR: Invalid initiator name
  }
  initiator "iqn.1994-05.com.redhat:h_3" { # ERROR: Invalid initiator name
  }
  initiator "iqn.1994-05.com.redhat:éclair" { # ERROR: Invalid initiator name
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:portals" {
  alias   = "tab\there" # ERROR: Invalid alias
  portals = ["a", "nope", "a"] # ERROR: Unknown portal # ERROR: Duplicate portal in list
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:emptyportals" {
  portals = [] # ERROR: Empty portals list
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:halfgroup" {
  portals = ["b1"] # ERROR: Incomplete portal group
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:wholegroup" {
  portals = ["b2", "b1"]
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "iqn.2026-11.io.sanbridge:portalsstring" {
  portals = "a" # ERROR: Invalid portals
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target "eui.0123456789ABCDEF" {
  alias = "EUI-named targets are fine"
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}

target { # ERROR: Missing name for target
}
