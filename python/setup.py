"""The shardcast Python package: a ctypes binding over libshardcast_client.so (see client/c_api.h).
Build and install it with tools/install_python.sh (which puts the library into shardcast/_lib/)."""
from setuptools import setup

setup(
    name="shardcast",
    version="0.1.0",
    description="Receive tensor-parallel checkpoint shards from a shardcastd sidecar",
    packages=["shardcast"],
    package_data={"shardcast": ["_lib/*.so*"]},
    python_requires=">=3.8",
    install_requires=["numpy"],
)
