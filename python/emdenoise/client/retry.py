"""Retrying a refused streaming call: when, how long to wait, and what to send again.

A server at its limit answers RESOURCE_EXHAUSTED ("the server is busy") and one that is
restarting answers UNAVAILABLE; both mean "try again shortly". A call is retried only
while it is idempotent from the client's side: no response has been read yet (Denoise
answers its first message only once the server took the call), so nothing was consumed
and sending the same request again gives the same result.

:class:`RetryPolicy` says how often and how long to wait (exponential backoff with
jitter, so many refused clients do not come back in step); :class:`Replay` keeps the
frames sent in an attempt until the call is accepted, so a generator of frames can be
sent again.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

import grpc

#: Status codes that mean "not now": the server is busy or out of reach for the moment.
RETRYABLE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
#: UNAVAILABLE details that mean a setting is wrong (TLS on one side only, untrusted
#: certificate): trying again cannot help (:func:`emdenoise.client.grpc_errors.user_error`).
_NOT_TRANSIENT = ("WRONG_VERSION_NUMBER", "CERTIFICATE_VERIFY_FAILED", "Socket closed")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    Parameters
    ----------
    attempts : int
        Tries in all, the first included (1: never retry).
    initial : float
        Seconds of the first backoff step.
    maximum : float
        Longest backoff step.
    multiplier : float
        Growth of the step from one retry to the next.

    Notes
    -----
    Retry ``n`` (0 for the first) waits a random time between half and all of
    ``min(maximum, initial * multiplier ** n)`` ("equal jitter"): it backs off for sure,
    and refused clients spread out instead of retrying together.
    """

    attempts: int = 5
    initial: float = 0.25
    maximum: float = 8.0
    multiplier: float = 2.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        step = min(self.maximum, self.initial * self.multiplier ** max(0, int(retry)))
        return (rng or random).uniform(step / 2, step)


#: No retries (one attempt).
NO_RETRY = RetryPolicy(attempts=1)


def retryable(error: grpc.RpcError) -> bool:
    """True when ``error`` means "try again shortly" (busy server, or one out of reach for now).

    Parameters
    ----------
    error : grpc.RpcError
        The failure of a call whose responses were not read yet.
    """
    code = error.code()
    if code not in RETRYABLE:
        return False
    details = error.details() or ""
    return not (code == grpc.StatusCode.UNAVAILABLE and any(marker in details for marker in _NOT_TRANSIENT))


_MISSING = object()


class Replay:
    """Items of an iterable, each taken once from it, that every new attempt sends again.

    Each :meth:`attempt` yields the items kept so far and then takes further ones from the
    source, keeping them too, until :meth:`commit` (the server accepted the call: no retry
    will follow) lets go of those already sent. Starting an attempt ends the previous one:
    it takes nothing more, and an item it was still waiting for when the next attempt
    started is kept for that one, so no item is lost or sent twice in one attempt. The
    source may block (a generator reading files): no lock is held while it does that
    :meth:`commit` or a new attempt would need.

    Parameters
    ----------
    items : iterable
        The source (a list, an array or a generator of frames).
    """

    def __init__(self, items: Iterable):
        self._source = iter(items)
        self._kept: dict[int, object] = {}  # item number -> item, while it may be sent again
        self._pulled = 0  # items taken from the source
        self._exhausted = False
        self._keeping = True
        self._generation = 0
        self._position = 0  # the item the newest attempt is at
        self._state = threading.Lock()
        self._pull = threading.Lock()  # one taker from the source at a time

    def attempt(self) -> Iterator:
        """The items for one attempt: those kept, then new ones from the source."""
        with self._state:
            self._generation += 1
            generation = self._generation
        index = 0
        while True:
            item = self._item(index, generation)
            if item is _MISSING:
                return
            yield item
            item = None
            with self._state:
                if not self._keeping:
                    self._kept.pop(index, None)
            index += 1

    def _item(self, index: int, generation: int):
        """Item ``index`` for attempt ``generation``: kept, or taken from the source (_MISSING: stop)."""
        with self._state:
            if generation != self._generation:
                return _MISSING
            self._position = index
            item = self._kept.get(index, _MISSING)
        if item is not _MISSING:
            return item
        with self._pull:
            with self._state:
                if generation != self._generation:
                    return _MISSING
                item = self._kept.get(index, _MISSING)  # an ended attempt took it while this one waited
            if item is not _MISSING:
                return item
            if self._exhausted or index != self._pulled:
                return _MISSING
            try:
                item = next(self._source)
            except StopIteration:
                self._exhausted = True
                return _MISSING
            with self._state:
                self._pulled += 1
                stale = generation != self._generation
                if self._keeping or stale:  # an attempt that ended meanwhile leaves its item to the next
                    self._kept[index] = item
            return _MISSING if stale else item

    def commit(self) -> None:
        """The call was accepted: keep nothing already sent, and nothing new."""
        with self._state:
            self._keeping = False
            for index in [i for i in self._kept if i < self._position]:
                del self._kept[index]


__all__ = ["NO_RETRY", "RETRYABLE", "Replay", "RetryPolicy", "retryable"]
