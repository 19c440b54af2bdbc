"""Freight: an immutable bundle of artifact versions, and where it is approved, current and
verified.
"""

from typing import Any, Literal

from kargo.specs.base import (
    ArtifactReference,
    Chart,
    DateTime,
    FreightOrigin,
    GitCommit,
    Image,
    KargoModel,
    Map,
    ObjectMeta,
    StatusModel,
)


class ApprovedStage(StatusModel):
    approvedAt: DateTime | None = None


class CurrentStage(StatusModel):
    since: DateTime | None = None


class VerifiedStage(StatusModel):
    longestSoak: str | None = None
    verifiedAt: DateTime | None = None


class FreightStatus(StatusModel):
    approvedFor: Map[ApprovedStage] | None = None
    currentlyIn: Map[CurrentStage] | None = None
    verifiedIn: Map[VerifiedStage] | None = None
    metadata: dict[str, Any] | None = None


class Freight(KargoModel):
    """Freight has no spec: its artifact fields are top-level."""

    apiVersion: Literal["kargo.akuity.io/v1alpha1"]
    kind: Literal["Freight"]
    metadata: ObjectMeta
    alias: str | None = None
    origin: FreightOrigin
    commits: list[GitCommit] | None = None
    images: list[Image] | None = None
    charts: list[Chart] | None = None
    artifacts: list[ArtifactReference] | None = None
    discoveredAt: DateTime | None = None
    status: FreightStatus | None = None
