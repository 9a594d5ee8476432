"""One module per vendor emulator."""
