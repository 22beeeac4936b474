# Single-line blocks hold one attribute only.
portal "lo" { listen = "127.0.0.1:3260" group = 1 } # ERROR: Invalid single-argument block definition
