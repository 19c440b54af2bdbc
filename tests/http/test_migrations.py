"""Guard rail: every model change comes with its migration."""

import io

import pytest
from django.core.management import call_command


def test_every_model_change_has_its_migration(db):
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail(
            f"models changed without a migration; run manage.py makemigrations\n{out.getvalue()}"
        )
    assert "No changes detected" in out.getvalue()
