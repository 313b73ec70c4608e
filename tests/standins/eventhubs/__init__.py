"""An Event Hubs stand-in that the unmodified ``azure-eventhub`` SDK talks to over AMQP 1.0.

In memory, on 127.0.0.1 only, no TLS and no authorization. See README.md in this folder.
"""

from .server import Server, StandIn, connection_string, start_standin

__all__ = ["Server", "StandIn", "connection_string", "start_standin"]
