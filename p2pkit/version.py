"""The running p2pkit version (from the installed distribution's metadata)."""

from importlib import metadata

try:
    __version__ = metadata.version("p2pkit")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
