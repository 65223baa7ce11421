"""Runs the authority's HTTP API under uvicorn (placeholder until the API lands)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volact.errors import ConfigurationError


@dataclass(frozen=True)
class ServeOptions:
    """How to run the service."""

    home: Path  #: the authority home

    @classmethod
    def from_cli(cls, **kwargs: object) -> ServeOptions:
        return cls(Path(str(kwargs["home"])))


def serve(opts: ServeOptions) -> int:
    raise ConfigurationError("`volact authority serve` is not built yet")
