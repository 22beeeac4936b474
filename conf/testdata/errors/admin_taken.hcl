portal "lo" {
  listen = "127.0.0.1:3260"
}

metrics {
  listen = "127.0.0.1:9163"
}

admin {
  listen = "127.0.0.1:3260" # ERROR: Admin listen address taken
}

auto_export "all" {
  target     = "iqn.2026-11.io.sanbridge:gw"
  per_device = true # (the prefix names no target of the file: no warning)
}
