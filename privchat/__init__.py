"""privchat: a private AI chat backend on Trio in front of the NEAR AI Cloud API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("privchat")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
