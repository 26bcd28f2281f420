"""Facts about the host the daemon runs on."""
