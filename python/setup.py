"""The shardcast Python package: a ctypes binding over libshardcast_client.so (see client/c_api.h).
Build and install it with tools/install_python.sh (which puts the library into shardcast/_lib/).
The version comes from the one source, common/version.h (read here; the installed package's
metadata carries it, where shardcast.__version__ finds it)."""
import os
import re

from setuptools import setup

_HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    """kVersion from common/version.h (the one source of the version)."""
    with open(os.path.join(_HERE, "..", "common", "version.h")) as f:
        match = re.search(r'kVersion\[\] = "([^"]+)"', f.read())
    if not match:
        raise RuntimeError("common/version.h: no kVersion line")
    return match.group(1)


setup(
    name="shardcast",
    version=_version(),
    description="Receive tensor-parallel checkpoint shards from a shardcastd sidecar",
    packages=["shardcast"],
    package_data={"shardcast": ["_lib/*.so*"]},
    python_requires=">=3.8",
    install_requires=["numpy"],
)
