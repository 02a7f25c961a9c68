"""emdenoise: restore shot-noise-limited electron micrographs.

Networks and classical filters from the seed papers, exported to ONNX, run by an engine
that tiles and batches frames, served over gRPC and reached from Fiji/ImageJ, pyimagej
scripts and the ``emdenoise`` command line.
"""

from emdenoise._version import __version__

__all__ = ["__version__"]
