"""Pseudonymous identifiers: results and logs carry these instead of patient or study identity.

A pseudonym is HMAC-SHA256(key, kind ":" value), hex, truncated to 16 characters (64 bits) —
stable across runs with the same key, so a re-run maps the same study to the same row, but not
reversible without the key. The key comes from $DICOM_DX_PSEUDONYM_KEY, else from a random key
created once in ~/.config/dicom_dx/pseudonym.key (mode 0600). This is pseudonymisation, not
anonymisation (GDPR Art. 4(5)): whoever holds the key can re-link.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["pseudonym", "pseudonym_key", "safe_path_label"]

_KEY: bytes | None = None


def pseudonym_key() -> bytes:
    global _KEY
    if _KEY is not None:
        return _KEY
    env = os.environ.get("DICOM_DX_PSEUDONYM_KEY")
    if env:
        _KEY = env.encode()
        return _KEY
    path = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "dicom_dx" / "pseudonym.key"
    try:
        if path.is_file():
            _KEY = path.read_bytes().strip()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_hex(32).encode()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
            _KEY = key
    except OSError:
        # Read-only home: a per-process key still hides identity, only stability across runs is lost.
        _KEY = secrets.token_hex(32).encode()
    return _KEY


def pseudonym(value: str, kind: str = "uid", key: bytes | None = None) -> str:
    """16 hex characters standing for `value` (empty string for an empty value)."""
    if not value:
        return ""
    mac = hmac.new(key or pseudonym_key(), f"{kind}:{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


# Extensions kept in labels. Any other "suffix" is part of a name: "Smith.John", or the last
# component of a UID-named file ("1.2.840.113619.2.55.3.12345").
_LABEL_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npz"}


def safe_path_label(path: str | os.PathLike) -> str:
    """A label for a file in logs: the pseudonym of its full path plus its extension when it is a
    known file type. File and folder names in PACS exports often contain patient names or MRNs,
    so they are not printed by default."""
    p = Path(path)
    suffix = p.suffix if p.suffix.lower() in _LABEL_SUFFIXES else ""
    return f"file-{pseudonym(str(p.resolve()), 'path')}{suffix}"
