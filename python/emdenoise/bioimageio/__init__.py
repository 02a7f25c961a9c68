"""bioimage.io model packages in and out (issue 21, item 5).

:func:`export_package` writes an installed onnx denoiser as a bioimage.io model package
(format 0.5) and :func:`check_package` runs bioimageio.core's test on it offline;
:func:`import_package` installs a bioimage.io ONNX model into the user model folder with a
card the engine accepts. They need the optional ``[bioimageio]`` extra (bioimageio.spec,
bioimageio.core), imported only when called; inference itself never needs them.
"""

from emdenoise.bioimageio._export import check_package, export_package
from emdenoise.bioimageio._import import import_package
from emdenoise.bioimageio._spec import INSTALL_HINT

__all__ = ["INSTALL_HINT", "check_package", "export_package", "import_package"]
