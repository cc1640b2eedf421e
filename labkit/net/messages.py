"""The runtime's own messages: introductions and status, beside each protocol's messages.

* :class:`Hello` is the first frame on every connection: who is speaking
  (a node id, or a client's name). A peer's connection carries that peer's
  messages to us; a client's connection carries requests one way and replies
  the other.
* :class:`StatusRequest` / :class:`StatusReply` let the controller (the
  notebook) ask a node what it is doing (role, term, log) without touching the
  protocol: the driver answers them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.net.codec import Registry

__all__ = ["Hello", "StatusRequest", "StatusReply", "register_runtime"]


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of a connection: ``sender`` names who speaks on it."""

    sender: str


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Ask a node for its status (answered by the driver, not the protocol).

    ``full`` also asks for the node's data (the state machine's contents).
    """

    seq: int
    full: bool = False


@dataclass(frozen=True, slots=True)
class StatusReply:
    """A node's status: ``state`` maps names (role, term, ...) to JSON values."""

    seq: int
    node_id: str
    pid: int
    state: dict[str, Any]


def register_runtime(reg: Registry) -> None:
    """Add the runtime's messages to a protocol's registry."""
    reg.register_all([Hello, StatusRequest, StatusReply])
