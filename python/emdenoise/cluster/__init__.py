"""The engine on a Dask cluster: chunk geometry, per-worker sessions, folder runs, outputs.

The public entry points live in :mod:`emdenoise.dask` (arrays, HyperSpy signals); the
modules here hold the pieces it is built from. None of them imports Dask at module level
except those whose whole job is Dask (:mod:`~emdenoise.cluster.scheduler`,
:mod:`~emdenoise.cluster.folder`), so the engine side stays importable without it.
"""
