"""The seam between the deterministic core and the hosts that run it.

Hosts import from here and from the public ``reactive`` package only.
"""

from reactive.app import Schema
from reactive.core.messages import Message, from_wire, to_wire
from reactive.core.partition import ActivityTask, Effects, Partition, apply_delta
from reactive.core.results import decode_error
from reactive.hosting.activities import execute_activity

__all__ = [
    "ActivityTask",
    "Effects",
    "Message",
    "Partition",
    "Schema",
    "apply_delta",
    "decode_error",
    "execute_activity",
    "from_wire",
    "to_wire",
]
