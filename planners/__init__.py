"""Planners that optimise actions toward an encoded goal. They know only the WorldModel protocol."""

from planners.base import WorldModel

__all__ = ["WorldModel"]
