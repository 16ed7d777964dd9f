"""What an informer reports about itself, for controllers, probes and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class InformerHealth:
    """A snapshot of one informer's state (immutable; take a new one to see changes).

    ``healthy`` is True while the informer runs, has synced, and is not in a run of
    failures. Times are Unix timestamps (seconds); ``last_error`` stays after recovery
    (``consecutive_failures`` goes back to 0). A run of failures ends only when a cycle
    completes (a list, an event or bookmark applied, a watch up for a second): a watch
    that opens and fails again at once does not end it, so ``failing_since`` keeps the
    time the informer stopped making progress, however often it reconnects.
    ``watch_restarts`` and ``relists`` count by reason (``closed``, ``expired``,
    ``error``, ``malformed``, ``decode_error``...); ``relists`` does not count the first
    list.
    """

    name: str
    running: bool
    synced: bool
    consecutive_failures: int
    last_error: str | None
    last_error_time: float | None
    last_event_time: float | None
    last_sync_resource_version: str | None
    objects: int
    events: int
    malformed_lines: int
    handler_errors: int
    transform_errors: int
    watch_restarts: dict[str, int] = field(default_factory=dict)
    relists: dict[str, int] = field(default_factory=dict)
    failing_since: float | None = None
    """When the current run of failures began (None while the last attempt succeeded)."""
    started_at: float | None = None
    """When the informer's list/watch loop started (None before)."""
    synced_at: float | None = None
    """When its first list was in the store and reported (None before)."""
    decode_errors: int = 0
    """Watch events and listed objects skipped because they could not be decoded (nested
    too deep, no metadata or name, an unknown event type)."""

    @property
    def healthy(self) -> bool:
        """Running, synced, and not in a run of failures."""
        return self.running and self.synced and self.consecutive_failures == 0
