"""Only here to add the model repository `export/` as the package emdenoise._bundled_models
(pyproject.toml maps its directory); everything else lives in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages("python") + ["emdenoise._bundled_models"])
