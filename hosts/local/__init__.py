"""The durable local host: partition workers over local logs, in memory or in a folder."""

from hosts.local.folder import FolderError, FolderState
from hosts.local.host import LocalHost, VirtualClock

__all__ = ["FolderError", "FolderState", "LocalHost", "VirtualClock"]
