"""The demo account: only in demo mode, only from loopback, never through a proxy."""

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory


@pytest.fixture
def demo_user(django_user_model):
    user = django_user_model.objects.create_user("demo", password="demo")
    return user


def login_as_demo(remote_addr="127.0.0.1", **headers):
    request = RequestFactory().post("/login/", REMOTE_ADDR=remote_addr, **headers)
    return authenticate(request, username="demo", password="demo")


def test_demo_login_works_in_demo_mode_from_loopback(db, settings, demo_user):
    settings.DEMO_MODE = True
    assert login_as_demo("127.0.0.1") == demo_user
    assert login_as_demo("::1") == demo_user


def test_demo_login_is_refused_outside_demo_mode_remotely_or_via_a_proxy(db, settings, demo_user):
    settings.DEMO_MODE = False
    assert login_as_demo() is None
    settings.DEMO_MODE = True
    assert login_as_demo("10.1.2.3") is None
    assert login_as_demo("127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9") is None
    assert login_as_demo("127.0.0.1", HTTP_FORWARDED="for=203.0.113.9") is None


def test_other_users_log_in_anywhere(db, settings, django_user_model):
    django_user_model.objects.create_user("alice", password="pw-alice-123")
    request = RequestFactory().post("/login/", REMOTE_ADDR="10.1.2.3")
    assert authenticate(request, username="alice", password="pw-alice-123") is not None


def test_serve_refuses_demo_mode_off_loopback(settings):
    from django.core.management import CommandError, call_command

    settings.DEMO_MODE = True
    with pytest.raises(CommandError, match="only on loopback"):
        call_command("serve", "--host", "0.0.0.0", "--no-worker")


def test_the_login_page_shows_the_demo_account_only_where_it_works(client, settings, db):
    settings.DEMO_MODE = True
    assert (
        "Demo mode: sign in as" in client.get("/login/", REMOTE_ADDR="127.0.0.1").content.decode()
    )
    assert "Demo mode" not in client.get("/login/", REMOTE_ADDR="10.0.0.5").content.decode()
    settings.DEMO_MODE = False
    assert "Demo mode" not in client.get("/login/", REMOTE_ADDR="127.0.0.1").content.decode()


def test_a_failed_login_keeps_the_username(client, db):
    response = client.post("/login/", {"username": "someone", "password": "wrong"})
    body = response.content.decode()
    assert "did not match" in body
    assert 'value="someone"' in body
