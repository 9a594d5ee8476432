"""Local HTTPS emulators of the vendor APIs donor-sync talks to, and the sample-data generator."""
