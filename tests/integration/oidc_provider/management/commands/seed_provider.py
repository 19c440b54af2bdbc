"""`manage.py seed_provider`: the dashboard's client registration and the test's people.

alice is in the `devops` group, carol in `platform`, bob in none; each one's password is
`pw-<name>` and email `<name>@example.com`."""

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from oauth2_provider.models import Application

PEOPLE = {"alice": ["devops"], "bob": [], "carol": ["platform"]}


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--redirect-uri", required=True)

    def handle(self, *args, **opts):
        Application.objects.create(
            name="kargo_ui",
            client_id=opts["client_id"],
            client_secret=opts["client_secret"],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=opts["redirect_uri"],
            algorithm=Application.RS256_ALGORITHM,
            skip_authorization=True,
        )
        for name, groups in PEOPLE.items():
            user = User.objects.create_user(name, f"{name}@example.com", f"pw-{name}")
            for group in groups:
                user.groups.add(Group.objects.get_or_create(name=group)[0])
