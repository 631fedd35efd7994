"""relay: a fast, wire-compatible drop-in replacement for Centrifugo v6."""

__all__ = ["__version__", "CENTRIFUGO_VERSION"]

__version__ = "0.1.0"
#: The Centrifugo release whose behaviour relay reproduces.
CENTRIFUGO_VERSION = "6.6.2"
