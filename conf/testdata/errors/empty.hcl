# ERROR: Missing portal block # WARNING: No targets
