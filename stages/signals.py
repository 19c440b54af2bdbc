"""Keeps the Stage cards' render cache right when Freight they show changes from below.

A Stage card shows its current Freight's alias, and is cached by the Stage's updated_at
(stages.fragments). An alias changes in the freight app, which may not reach up to Stages (the
layers point one way), so this app listens for it and moves the holders' updated_at.
"""

from django.db.models.signals import post_save
from django.utils import timezone

from freight.models import Freight

from .models import Stage


def touch_holders(sender, instance: Freight, update_fields=None, created=False, **kwargs) -> None:
    if created or not update_fields or "alias" not in update_fields:
        return
    # The row's status, not the instance's: an alias may be saved on an instance loaded before
    # the Freight moved.
    status = Freight.objects.filter(id=instance.id).values_list("status", flat=True).first() or {}
    holders = list(status.get("currentlyIn", {}))
    if holders:
        Stage.objects.filter(project_id=instance.project_id, name__in=holders).update(
            updated_at=timezone.now()
        )


def connect() -> None:
    post_save.connect(touch_holders, sender=Freight, dispatch_uid="stages.touch_holders")
