"""Issue 6, item 12: the browser-facing safety settings, seen through HTTP."""

from django.urls import reverse


def test_pages_carry_a_content_security_policy(client, db):
    response = client.get(reverse("login"))
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("style-src-attr")[0]  # only style attributes
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_repeated_wrong_passwords_lock_the_sign_in(client, django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("erin", password="right-password-123")
    for _ in range(2):
        response = client.post(reverse("login"), {"username": "erin", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    # The third failure locks the sign-in; then even the right password is refused, with a
    # page that says why.
    response = client.post(reverse("login"), {"username": "erin", "password": "wrong"})
    assert response.status_code == 429
    response = client.post(reverse("login"), {"username": "erin", "password": "right-password-123"})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_a_right_password_resets_the_count(client, django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("erin", password="right-password-123")
    for _ in range(2):
        client.post(reverse("login"), {"username": "erin", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "erin", "password": "right-password-123"})
    assert response.status_code == 302
