"""End-to-end tests: the Debian package on a real systemd (opt-in; see test_systemd.py)."""
