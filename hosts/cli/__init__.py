"""The ``reactive`` command line, one module per purpose:

- :mod:`~hosts.cli.parser` every command's arguments; :mod:`~hosts.cli.main` the entry point
- :mod:`~hosts.cli.apps` finding the application and building an orchestration's input
- :mod:`~hosts.cli.run` ``run`` and ``start``, with :mod:`~hosts.cli.progress` and
  :mod:`~hosts.cli.summary`
- :mod:`~hosts.cli.listing` ``list`` of an application's operations
- :mod:`~hosts.cli.instances` the instance commands, :mod:`~hosts.cli.serve` ``serve``
- :mod:`~hosts.cli.bench` ``bench``

The parser imports none of the others: a command's module (and the hosts, the benchmark or
the cloud SDKs it needs) is imported when that command runs, so ``reactive --help`` and a
mistyped option answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hosts.cli.errors import CliError
from hosts.cli.main import main

if TYPE_CHECKING:
    from hosts.cli.apps import load_app

_LAZY = {"load_app": "hosts.cli.apps"}  # kept for callers of hosts.cli.load_app


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CliError", "load_app", "main"]
