"""Logging set-up: the journal with structured fields under systemd, else stderr.

Call sites attach LwM2M context with ``extra=fields(ssid=..., path=...,
operation=..., peer=...)``; the journal stores them as ``LWM2M_SSID``,
``LWM2M_PATH``, ``LWM2M_OPERATION`` and ``LWM2M_PEER`` (filter with e.g.
``journalctl -u lwm2md LWM2M_SSID=1``); on stderr they are not printed.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def fields(
    *,
    ssid: int | None = None,
    path: object = None,
    operation: str | None = None,
    peer: object = None,
) -> dict[str, str]:
    """Structured journal fields for a log call's ``extra=``; unset ones are left out."""
    out: dict[str, str] = {}
    if ssid is not None:
        out["LWM2M_SSID"] = str(ssid)
    if path is not None:
        out["LWM2M_PATH"] = str(path)
    if operation is not None:
        out["LWM2M_OPERATION"] = operation
    if peer is not None:
        out["LWM2M_PEER"] = str(peer)
    return out


def stderr_is_journal() -> bool:
    """True when stderr is connected to the journal ($JOURNAL_STREAM names it)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not device or not inode:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{stat.st_dev}:{stat.st_ino}" == stream


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="lwm2md")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def setup_logging(level: str = "info", *, journal: bool | None = None) -> str:
    """Route logging to the journal (when ``journal``, default: stderr is the journal) or stderr.

    Returns "journal" or "stderr". aiocoap's own chatter is kept at warning
    unless ``level`` is debug.
    """
    use_journal = stderr_is_journal() if journal is None else journal
    handler = _journal_handler() if use_journal else None
    where = "journal"
    if handler is None:
        where = "stderr"
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    return where


def set_level(level: str) -> None:
    """Change the log level at run time (config reload)."""
    logging.getLogger().setLevel(LEVELS.get(level, logging.INFO))
    coap_level = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("coap").setLevel(coap_level)
    logging.getLogger("lwm2md.coap").setLevel(coap_level)
