"""The running build's version (X.Y.Z; processes of one major run side by side)."""

from importlib.metadata import PackageNotFoundError, version


def mmr_version() -> str:
    try:
        return version("mmr")
    except PackageNotFoundError:
        return "0.0.0"
