"""Clipper: a rapid-response clip desk for volunteer news monitors."""

__version__ = "0.1.0"
