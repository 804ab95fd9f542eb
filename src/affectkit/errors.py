"""Errors the kit raises on bad input. Each names the file (or field) and what was wrong."""
from __future__ import annotations

import os


class AffectkitError(Exception):
    """Base class of every error the kit raises on purpose."""


class MediaError(AffectkitError):
    """A media file (video, audio, frame folder) could not be used.

    ``str(err)`` reads ``"<path>: <problem>"`` so a batch job can log it as it is.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(AffectkitError):
    """An annotation file or dataset folder is malformed or refers to something missing."""


class ConfigError(AffectkitError):
    """A config file or override is invalid."""


class CheckpointError(AffectkitError):
    """A checkpoint folder or foreign weight file cannot be loaded."""
