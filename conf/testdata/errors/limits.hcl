portal "lo" {
  listen = "127.0.0.1:3260"
}

limits {
  memory                        = "1MiB" # ERROR: Invalid memory
  max_transfer                  = "1.5MiB" # ERROR: Invalid max_transfer
  max_sessions                  = 0 # ERROR: Invalid max_sessions
  max_sessions_per_initiator    = 2.5 # ERROR: Invalid max_sessions_per_initiator
  max_pending_logins            = "many" # ERROR: Invalid max_pending_logins
  max_pending_logins_per_source = 4
  login_timeout                 = "forever" # ERROR: Invalid login_timeout
  max_tasks_per_session         = 1000000 # ERROR: Invalid max_tasks_per_session
  max_outstanding_r2t           = 17 # ERROR: Invalid max_outstanding_r2t
  max_pending_task_management   = 4
  max_text_keys                 = 8 # ERROR: Invalid max_text_keys
  auth_free_failures            = 5
  auth_delay                    = "10s" # ERROR: auth_delay exceeds auth_max_delay
  auth_max_delay                = "8s" # ERROR: auth_max_delay too long for the login timeout
  auth_lockout_after            = 5 # WARNING: Lockout before any delay
  auth_lockout                  = "0s" # ERROR: Invalid auth_lockout
  auth_forget                   = 600 # ERROR: Invalid auth_forget
  auth_table_size               = 4 # ERROR: Invalid auth_table_size
}

target "iqn.2026-11.io.sanbridge:t" { # WARNING: Open target
  lun "0" {
    emulated {
      size = 4096
    }
  }
}
