"""A project's Freight total is kept, not counted: every way Freight is created (the action that
discovery calls, a Freight manifest applied) or deleted (`kargo delete freight`, over the API or
the CLI) moves it in the same transaction, and the page reads it with one query by primary key."""

import importlib
import io

from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from freight.actions import do_create_freight
from freight.models import Freight, FreightCount
from freight.queries import freight_total
from projects.models import Project

MANIFESTS = "/api/v1/projects/kargo-demo/manifests"
FREIGHT = """apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: whatever
  namespace: kargo-demo
alias: {alias}
origin: {{kind: Warehouse, name: guestbook}}
commits:
- repoURL: https://git.example.com/guestbook.git
  id: 0123456789abcdef0123456789abcdef01234567
  tag: v9.0.0
"""


def commit(n: int) -> list[dict]:
    return [{"repoURL": "https://git.example.com/guestbook.git", "id": f"{n:040x}"}]


def apply(client, alias: str) -> list[str]:
    response = client.post(
        f"{MANIFESTS}?source=freight.yaml", FREIGHT.format(alias=alias), "application/yaml"
    )
    assert response.status_code == 200, response.content
    return response.json()["results"]


def counted(project: Project) -> int:
    """The total the page shows, checked against the rows it stands for."""
    total = freight_total(project)
    assert total == Freight.objects.filter(project=project).count()
    return total


def test_the_total_follows_every_create_and_delete(client, users, project):
    assert counted(project) == 3  # the fixture's, made by do_create_freight
    do_create_freight(project, "guestbook", commits=commit(1), actor="test")
    assert counted(project) == 4
    # The same content is the same Freight: nothing created, nothing counted.
    assert do_create_freight(project, "guestbook", commits=commit(1), actor="test")[1] is False
    assert counted(project) == 4

    client.force_login(users["alice"])
    [created] = apply(client, "first-one")
    assert created.endswith(" created")
    assert counted(project) == 5
    assert apply(client, "first-one")[0].endswith(" unchanged")
    assert apply(client, "second-name")[0].endswith(" configured")  # only the alias changed
    assert counted(project) == 5

    applied = Freight.objects.get(project=project, alias="second-name")
    response = client.delete(f"{MANIFESTS}/Freight/{applied.name}")
    assert response.json() == {"deleted": f"freight/{applied.name} deleted"}
    assert counted(project) == 4
    assert client.delete(f"{MANIFESTS}/Freight/{applied.name}").status_code == 404
    assert counted(project) == 4

    # Freight a Stage holds is not deleted, and stays counted.
    held = Freight.objects.filter(project=project).first()
    Freight.objects.filter(id=held.id).update(
        status={"currentlyIn": {"test": {"since": timezone.now().isoformat()}}}
    )
    assert client.delete(f"{MANIFESTS}/Freight/{held.name}").status_code == 400
    assert counted(project) == 4

    name = Freight.objects.filter(project=project).last().name
    call_command(
        "kargo", "delete", "freight", name, "--project", "kargo-demo", stdout=io.StringIO()
    )
    assert counted(project) == 3


def test_the_total_is_one_read_by_primary_key(project):
    with CaptureQueriesContext(connection) as ctx:
        assert freight_total(project) == 3
    [query] = ctx.captured_queries
    assert 'FROM "freight_freightcount"' in query["sql"]
    assert '"freight_freightcount"."project_id" = ' in query["sql"]
    assert "COUNT(" not in query["sql"].upper()


def test_a_project_without_a_count_gets_one_from_its_rows(project):
    # Freight inserted in bulk bypasses the count, as it bypasses save().
    FreightCount.objects.filter(project=project).delete()
    Freight.objects.bulk_create(
        Freight(
            project=project,
            name=f"{n:040x}",
            alias=f"bulk-{n}",
            origin_name="guestbook",
            discovered_at=timezone.now(),
        )
        for n in range(2)
    )
    assert counted(project) == 5  # counted, while there is no count
    do_create_freight(project, "guestbook", commits=commit(7), actor="test")
    assert FreightCount.objects.get(project=project).total == 6
    assert counted(project) == 6


def test_the_migration_counts_the_freight_already_there(project):
    FreightCount.objects.all().delete()
    migration = importlib.import_module("freight.migrations.0003_freight_count")
    migration.count_existing_freight(apps, None)
    assert FreightCount.objects.get(project=project).total == 3


def test_deleting_the_project_deletes_its_count(project):
    project_id = project.id
    project.delete()
    assert not FreightCount.objects.filter(project_id=project_id).exists()
