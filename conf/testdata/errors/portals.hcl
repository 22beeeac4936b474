portal "0bad" { # ERROR: Invalid portal name
  listen = "127.0.0.1:3001"
}

portal "a" {
  listen = "127.0.0.1:3002"
  group  = 7
}

portal "a" { # ERROR: Duplicate portal
  listen = "127.0.0.1:3003"
}

portal "nolisten" { # ERROR: Missing listen address
  group = 2
}

portal "hostname" {
  listen = "localhost:3260" # ERROR: Invalid listen address
}

portal "noport" {
  listen = "127.0.0.1" # ERROR: Invalid listen address
}

portal "v6nobrackets" {
  listen = "::1:3260" # ERROR: Invalid listen address
}

portal "notastring" {
  listen = ["127.0.0.1:3260"] # ERROR: Invalid listen
}

portal "dup" {
  listen = "127.0.0.1:3002" # ERROR: Duplicate listen address
}

portal "any4" {
  listen = "0.0.0.0:3100"
}

portal "over4" {
  listen = "192.0.2.1:3100" # ERROR: Overlapping listen address
}

portal "any6" {
  listen = "[::]:3200"
}

portal "over6" {
  listen = "[::1]:3200" # ERROR: Overlapping listen address
}

portal "over46" {
  listen = "10.0.0.1:3200" # ERROR: Overlapping listen address
}

portal "v6ok" {
  listen = "[::1]:3100"
}

portal "ephemeral1" {
  listen = "127.0.0.1:0"
}

portal "ephemeral2" {
  listen = "127.0.0.1:0"
}

portal "advany" {
  listen    = "0.0.0.0:3300"
  advertise = "0.0.0.0:3300" # ERROR: Invalid advertise address
}

portal "advnoport" {
  listen    = "127.0.0.1:3301"
  advertise = "san.example.com" # ERROR: Invalid advertise address
}

portal "advbadport" {
  listen    = "127.0.0.1:3302"
  advertise = "192.0.2.1:0" # ERROR: Invalid advertise address
}

portal "advbadhost" {
  listen    = "127.0.0.1:3303"
  advertise = "san_1.example.com:3260" # ERROR: Invalid advertise address
}

portal "advok" {
  listen    = "0.0.0.0:3304"
  advertise = "SAN-1.example.com:13260"
}

portal "group0" {
  listen = "127.0.0.1:3305"
  group  = 0 # ERROR: Invalid group
}

portal "groupbig" {
  listen = "127.0.0.1:3306"
  group  = 65536 # ERROR: Invalid group
}

portal "groupfrac" {
  listen = "127.0.0.1:3307"
  group  = 1.5 # ERROR: Invalid group
}

portal "groupvar" {
  listen = "127.0.0.1:3308"
  group  = var.group # ERROR: Variables not allowed
}

target "iqn.2026-11.io.sanbridge:t" {
  portals = ["a"]

  initiator "iqn.1994-05.com.redhat:h" {
  }

  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
