"""Artifact discovery for Warehouses: one module per subscription kind."""

from .git import DiscoveredCommit, DiscoveryError, discover_git

__all__ = ["DiscoveredCommit", "DiscoveryError", "discover_git"]
