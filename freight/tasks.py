"""Thin Celery entry points for Warehouses. They take IDs; the database is the truth."""

from celery import shared_task

from .actions import do_discover


@shared_task
def discover_warehouse(warehouse_id: int) -> None:
    do_discover(warehouse_id)
