"""The seam between the deterministic core and the hosts that run it.

Hosts import from here (and this package's modules) and from the public ``reactive``
package only: what a host needs of the core is re-exported here.
"""

from reactive.core.builtin_ops import BUILTINS, ClientPerform
from reactive.core.history import Answer, Call, EventArrival
from reactive.core.messages import Message, Tick, from_wire, to_wire
from reactive.core.partition import ActivityTask, Effects, Partition, apply_delta
from reactive.core.results import decode_error
from reactive.core.waits import describe_waits
from reactive.errors import CorruptSnapshotError
from reactive.hosting.activities import execute_activity
from reactive.hosting.host import Host, statistics
from reactive.schema import Kind, OperationInfo, PKey, Schema

__all__ = [
    "BUILTINS",
    "ActivityTask",
    "Answer",
    "Call",
    "ClientPerform",
    "CorruptSnapshotError",
    "Effects",
    "EventArrival",
    "Host",
    "Kind",
    "Message",
    "OperationInfo",
    "PKey",
    "Partition",
    "Schema",
    "Tick",
    "apply_delta",
    "decode_error",
    "describe_waits",
    "execute_activity",
    "from_wire",
    "statistics",
    "to_wire",
]
