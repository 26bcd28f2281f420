"""Logging set-up: one line per event on stderr."""

from __future__ import annotations

import logging
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def setup_logging(level: str = "info") -> None:
    """Send log records to stderr, one line each; aiocoap's chatter only from warning up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
    coap_level = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("coap").setLevel(coap_level)
    logging.getLogger("lwm2md.coap").setLevel(coap_level)
