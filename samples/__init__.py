"""Sample applications for Reactive Machine. Run them all on the emulator with
``python -m samples``; each ``samples/<name>/test_app.py`` exercises one of them."""

from __future__ import annotations

from typing import Any

from hosts.emulator import Emulator
from reactive import Orchestration


def startup_instance_id(em: Emulator, cls: type[Orchestration[Any]]) -> str:
    """The instance id the runtime gave the startup orchestration of type ``cls``."""
    for i, op in enumerate(em.schema.startup):
        if type(op) is cls:
            return f"startup-{i}-{cls.__name__}"
    raise LookupError(f"{cls.__name__} is not a startup orchestration of {em.schema.app_name}")


def startup_result(em: Emulator, cls: type[Orchestration[Any]]) -> Any:
    """Run the emulator until the startup orchestration ``cls`` is done; its result (or
    its error, raised)."""
    client, instance_id = em.client(), startup_instance_id(em, cls)

    def done() -> bool:
        status = client.status(instance_id)
        return status is not None and status.done

    em.run(until=done)
    return client.wait(instance_id)
