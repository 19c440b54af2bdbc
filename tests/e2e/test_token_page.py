"""The API tokens page in the browser: an admin creates a token, copies it once, revokes it."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PROJECT = "kargo-demo"


def test_an_admin_creates_and_revokes_a_token(live_server_embedded, page: Page, ui):
    base_url, _ = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    page.goto(f"{base_url}/project/{PROJECT}/")
    page.get_by_role("link", name="API tokens").click()
    expect(page.locator("h1")).to_have_text("API tokens")
    expect(page.locator(".empty-inline")).to_contain_text("No tokens yet")
    ui.screenshot(page, "tokens-empty.png")

    page.fill("input[name=name]", "ci-deploy")
    page.select_option("select[name=role]", "promoter")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-created").locator("code")
    expect(secret).to_contain_text("kui_")
    expect(page.locator("tr[data-token=ci-deploy]")).to_contain_text("promoter")
    ui.screenshot(page, "tokens-created.png")
    assert ui.live_stats(page)["cspViolations"] == []

    page.locator("tr[data-token=ci-deploy]").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr[data-token=ci-deploy]")).to_have_count(0)
    expect(page.get_by_test_id("token-created")).to_have_count(0)
