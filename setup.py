"""Only here to add the model repository `export/` and the ImageJ macros `fiji-macros/` as the
packages emdenoise._bundled_models and emdenoise._fiji_macros (pyproject.toml maps their
folders); everything else lives in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages("python") + ["emdenoise._bundled_models", "emdenoise._fiji_macros"])
