# ERROR: Missing portal block
# No portal at all, an unknown log level and unknown attributes and blocks.
log_level = "verbose" # ERROR: Unknown log level
loglevel  = "info"    # ERROR: Unsupported argument

listener "x" { # ERROR: Unsupported block type
}

discovery {
  chap {
    username = "d"
    secret   = "discovery-Secret"
  }
}

discovery { # ERROR: Duplicate discovery block
}

target "iqn.2026-11.io.sanbridge:t" { # WARNING: Open target
  lun "0" {
    emulated {
      size = 4096
    }
  }
}

limits {
  memory_budget = "1GiB" # ERROR: Unsupported argument
}
