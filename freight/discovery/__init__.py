"""Artifact discovery for Warehouses, by subscription kind (`git`, `image`, `chart`) and
selection strategy."""

from .base import DiscoveryError
from .chart import DiscoveredChart, discover_chart
from .git import discover_git
from .image import DiscoveredImage, discover_image
from .strategies import DiscoveredCommit

__all__ = [
    "DiscoveredChart",
    "DiscoveredCommit",
    "DiscoveredImage",
    "DiscoveryError",
    "discover_chart",
    "discover_git",
    "discover_image",
]
