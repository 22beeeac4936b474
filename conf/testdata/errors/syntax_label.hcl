# LUN ids are quoted labels: lun "4", not lun 4.
portal "lo" {
  listen = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:t" {
  lun 4 { # ERROR: Argument or block definition required
  }
}
