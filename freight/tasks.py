from celery import shared_task


@shared_task
def discover_warehouse(warehouse_id: int) -> None:
    from .actions import do_discover

    do_discover(warehouse_id)
