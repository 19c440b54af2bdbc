"""A tiny OpenID Connect provider for the single sign-on tests (tests/integration/test_oidc.py):
a Django project of its own, with django-oauth-toolkit's OIDC provider, run as a separate
process on its own SQLite database. Not part of the dashboard."""
