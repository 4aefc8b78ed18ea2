"""Keep the RunPod API key out of logs, error messages and files.

The key is registered as a secret the moment it is read (:func:`resolve_api_key`); from
then on :func:`redact` masks it in any text, and :func:`install_log_redaction` masks it
in every log record of the process, whatever logger or handler emits it. Error messages
built from remote responses go through :func:`redact` too, so a key echoed back by a
proxy or a misconfigured stand-in never reaches the manifest."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import tomllib

MASK = "[REDACTED]"
ENV_KEY = "RUNPOD_API_KEY"
SDK_CONFIG = Path("~/.runpod/config.toml")

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def add_secret(value: str | None) -> None:
    """Mask ``value`` from now on (values shorter than 6 characters are ignored: they
    would mask ordinary words)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text) -> str:
    text = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def resolve_api_key(*, env: dict | None = None, config_path: Path | None = None,
                    profile: str = "default") -> str | None:
    """The RunPod API key: ``RUNPOD_API_KEY``, else the runpod SDK's config file
    (``~/.runpod/config.toml``, profile ``default``, key ``api_key``), else None. The
    key is registered as a secret before it is returned."""
    source: Mapping[str, str] = os.environ if env is None else env
    key = (source.get(ENV_KEY) or "").strip() or None
    if key is None:
        path = (config_path or SDK_CONFIG).expanduser()
        try:
            key = (tomllib.loads(path.read_text(encoding="utf-8")).get(profile) or {}).get("api_key") or None
        except (OSError, tomllib.TOMLDecodeError, AttributeError):
            key = None
    add_secret(key)
    return key


def install_log_redaction() -> None:
    """Mask secrets in every log record created from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if _secrets:
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None and redact(exc) != str(exc):
                record.exc_info = None  # an exception carrying a secret is logged without its traceback
                record.msg = f"{record.msg} [traceback withheld: it contained a secret]"
        return record

    logging.setLogRecordFactory(factory)


def _reset_for_tests() -> None:
    with _lock:
        _secrets.clear()
