"""The one exception every model-file reader raises for a file it cannot or will not load."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HINT = "the file is damaged or is not a model file oscgan can read"


class ModelLoadError(Exception):
    """A model file was refused: ``"<file name>: <what is wrong> (<hint>)"``.

    Attributes:
        path: the file that was being read.
        problem: what is wrong with it, in words.
        hint: what the user can do about it.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint or DEFAULT_HINT
        super().__init__(f"{self.path.name}: {problem} ({self.hint})")


class FormatError(Exception):
    """Raised deep inside a reader, where the file name is not known.

    The reader's entry point turns it into a ``ModelLoadError`` with ``at(path)``.
    """

    def __init__(self, problem: str, hint: str | None = None) -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(problem)

    def at(self, path: str | os.PathLike[str]) -> ModelLoadError:
        return ModelLoadError(path, self.problem, self.hint)


def describe_name(text: object, limit: int = 80) -> str:
    """A short printable rendering of a name taken from a file, safe to put in a message."""
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return clean if len(clean) <= limit else clean[:limit] + "..."
