"""Package layout; the metadata is in pyproject.toml.

The folders at the root of the checkout install under one namespace, so nothing generic (``sim``,
``mock_api``) lands at the top level of site-packages: ``sim/`` is ``cnilab.sim``, ``mock_api/`` is
``cnilab.mock_api``, and the data folders ``topologies/`` and ``containerlab/`` are
``cnilab.topologies`` and ``cnilab.containerlab``. Subpackages are found here, so a new folder with
or without an ``__init__.py`` (data: templates, static files, scenarios) ships without editing a list.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = {
    "cnilab.sim": "sim",
    "cnilab.mock_api": "mock_api",
    "cnilab.topologies": "topologies",
    "cnilab.containerlab": "containerlab",
}


def packages() -> list[str]:
    out = ["cnilab"]
    for name, folder in FOLDERS.items():
        out += [name, *(f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"]))]
    return out


setup(packages=packages(), package_dir={"cnilab": "cnilab", **FOLDERS})
