"""Same-host fast path (issue 20, item 3): frames between a client and a server on one
machine travel through POSIX shared memory instead of gRPC messages.

:mod:`emdenoise.shm.segments` makes, opens and sweeps the segments (files under
``/dev/shm``, mode 0600, owned by the user); :mod:`emdenoise.shm.ring` is the client's
ring of frame slots in one segment, :mod:`emdenoise.shm.pool` keeps a client's rings
between its calls; :mod:`emdenoise.server.shared_frames` is the server's side of a call
and :mod:`emdenoise.server.segment_cache` keeps its mappings between a client's calls.
"""
