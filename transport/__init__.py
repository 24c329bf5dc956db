"""The transport both doors share: accept, frame, answer in order, bound, time out, TLS.

A listener (`Listener`) accepts connections for one protocol door and enforces its `Limits`;
each connection (`Connection`) cuts frames with a `FrameAssembler` and hands them, in order, to
a `Door` — the small per-connection adapter a protocol plugs in. Nothing here knows a protocol
or the log engine, so a replica bus or an HTTP door can use it too.
"""

from pyggy.transport.connection import Connection
from pyggy.transport.door import Door, Reply, Stream
from pyggy.transport.framing import FrameAssembler
from pyggy.transport.limits import Limits
from pyggy.transport.listener import Listener

__all__ = ["Connection", "Door", "FrameAssembler", "Limits", "Listener", "Reply", "Stream"]
