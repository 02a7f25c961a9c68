"""A running denoising job, the same object for the embedded engine and a server."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np


class DenoiseJob:
    """Iterate for the denoised frames (float32) as they finish.

    ``info`` (model id, graph sha256, versions, device) is filled before the first frame
    is yielded; :meth:`cancel` stops the job (the server frees its work).
    """

    def __init__(self, stream: Iterator, *, cancel: Callable[[], None] | None = None):
        self._stream = stream
        self._cancel = cancel
        self.info: dict = {}

    def start(self) -> dict:
        """Wait for the job to start and return its info (raises the server's error early)."""
        if not self.info:
            first = next(self._stream)
            if not isinstance(first, dict):
                raise RuntimeError("job stream must begin with its info")
            self.info = first
        return self.info

    def __iter__(self) -> Iterator[np.ndarray]:
        self.start()
        for item in self._stream:
            yield item

    def cancel(self) -> None:
        """Stop the job; safe from another thread while one iterates it (that one then ends)."""
        if self._cancel is not None:
            self._cancel()
        close = getattr(self._stream, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # "generator already executing": the iterating thread sees the cancellation
                pass
