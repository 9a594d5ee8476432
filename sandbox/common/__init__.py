"""What every emulator shares: TLS from a local CA, the admin API, fault injection, the runner."""
