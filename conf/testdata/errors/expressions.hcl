# Attribute values are constants: no interpolation, operators or calls.
log_level = "${"info"}" # ERROR: Template not allowed

portal "a" {
  listen = "127.0.0.1:${3260}" # ERROR: Template not allowed
  group  = 1 + 1 # ERROR: Unsupported expression
}

portal "b" {
  listen = true ? "127.0.0.1:3261" : "x" # ERROR: Unsupported expression
  group  = (3)
}

portal "c" {
  listen = format("%s:%d", "127.0.0.1", 3262) # ERROR: Function calls not allowed
  group  = 1e99999999 # ERROR: Number out of range
}

portal "d" {
  listen = "127.0.0.1:3263"
  advertise = "$${literal}:1" # ERROR: Invalid advertise address
}

portal "e" {
  listen = "%{ if true }127.0.0.1:3264%{ endif }" # ERROR: Template not allowed
  group  = local.group # ERROR: Variables not allowed
}

target "iqn.2026-11.io.sanbridge:t" {
  portals = ["a", "b", upper("c")] # ERROR: Function calls not allowed
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = -(512) # ERROR: Invalid size
      serial = 1e-99999999 # ERROR: Number out of range
    }
  }
}
