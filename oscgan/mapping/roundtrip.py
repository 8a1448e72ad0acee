"""Comment-keeping YAML writes (ruamel.yaml round trip) for files oscgan edits: learn, presets. Reading stays safe."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def yaml_rt() -> Any:
    """A ruamel.yaml round-trip instance with oscgan's layout (long lines kept on one line)."""
    from ruamel.yaml import YAML  # imported here: only the (rare) writes need it

    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def write_atomic(path: Path, yaml: Any, doc: Any) -> None:
    """Dump ``doc`` to ``path`` through a temporary file and a rename, so a reader (the hot-reload
    watcher, an editor) never sees half a file; the file's permissions are kept."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.dump(doc, f)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
