"""Artifact discovery for Warehouses, by subscription kind (`git`) and selection strategy."""

from .base import DiscoveryError
from .git import discover_git
from .strategies import DiscoveredCommit

__all__ = ["DiscoveredCommit", "DiscoveryError", "discover_git"]
