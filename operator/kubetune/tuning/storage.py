"""Where a study lives: an Optuna storage from a URL, and the URL as status may show it.

Decides the URL forms: ``sqlite:///``, ``postgresql://``, ``mysql://`` (Optuna's RDB storage) and
``journal:///PATH`` or ``journal:PATH`` (a journal file, safe for several processes on one file system, e.g. a PVC);
and that credentials never reach status or logs. Imports optuna; never kopf or kubernetes.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def journal_url(path: Path) -> str:
    return f"journal://{path.resolve()}" if path.is_absolute() else f"journal:{path}"


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage of ``url``; ValueError names ``spec.tuning.storage.url`` for an unknown form."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "journal":
        path = url.removeprefix("journal:").removeprefix("//")
        if not path:
            raise ValueError("spec.tuning.storage.url: journal: needs a file path (journal:///data/study.journal)")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    if scheme in RDB_SCHEMES:
        return optuna.storages.RDBStorage(url, heartbeat_interval=None)
    raise ValueError(
        f"spec.tuning.storage.url: unsupported storage {redact(url)!r} "
        "(use sqlite:///FILE, postgresql://..., mysql://... or journal:///FILE)"
    )


def redact(url: str) -> str:
    """``url`` without a password (``postgresql://user:***@host/db``)."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)
