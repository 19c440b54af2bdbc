"""The audit page as the demo admin sees it after a promotion: what was done, by whom, from which
surface and address, filtered with an htmx swap of the table, and on a narrow screen."""

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PROJECT = "kargo-demo"
TAG = "v1.2.0"
AUDIT = f"/project/{PROJECT}/audit/"


def test_the_audit_page_after_a_promotion(live_server_embedded, manage_embedded, page: Page, ui):
    base_url, data_dir = live_server_embedded
    # A change from the CLI with a before/after, and a message far longer than a table cell.
    manifest = data_dir / "warehouse.yaml"
    exported = manage_embedded(
        data_dir, "kargo", "get", "warehouse", "guestbook", "--project", PROJECT, "-o", "yaml"
    )
    spec = exported.split("\nstatus:", 1)[0]
    manifest.write_text(re.sub(r"interval: \S+", "interval: 7m0s", spec, count=1))
    manage_embedded(data_dir, "kargo", "--actor", "cli:ops", "apply", "-f", str(manifest))
    manage_embedded(
        data_dir,
        "shell",
        "-c",
        "from projects.actions import record_event\n"
        "from projects.models import Project\n"
        f"record_event(Project.objects.get(name='{PROJECT}'), 'PromotionFailed', "
        "'controller:test', 'step git-push failed: ' + 'remote rejected the update; ' * 30)\n",
    )

    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    ui.wait_for_freight(page, TAG, timeout=30)
    button = page.get_by_test_id("promote-to-test")
    ui.open_freight_drawer(page, TAG, wait_for=button, timeout=30)
    button.click()
    expect(page.locator("#drawer .drawer-body[id^=promotion-drawer-]")).to_be_visible()

    # The admin's way in: the link in the project header.
    ui.screenshot(page, "audit-link.png")
    page.locator(".topbar a.crumb-link", has_text="Audit").click()
    expect(page).to_have_url(f"{base_url}{AUDIT}")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    page.wait_for_function("window.htmx !== undefined")
    table = page.locator("#audit-table table.audit")
    promoted = table.locator("tbody tr", has_text="PromotionCreated").first
    expect(promoted).to_contain_text("browser")
    expect(promoted).to_contain_text("127.0.0.1")
    updated = table.locator("tbody tr", has_text="WarehouseUpdated").first
    expect(updated).to_contain_text("cli:ops")
    updated.locator("summary", has_text="before / after").click()
    expect(updated.locator(".audit-diff")).to_contain_text("7m0s")
    ui.screenshot(page, "audit.png")

    # A filter swaps the table in place and keeps the URL in step.
    ui.mark(page)
    page.locator("select[name=surface]").select_option("cli")
    expect(page).to_have_url(f"{base_url}{AUDIT}?reason=&actor=&surface=cli&since=&until=&q=")
    rows = table.locator("tbody tr")
    expect(rows.first).to_contain_text("cli")
    for surface in page.locator("#audit-table .surface").all_inner_texts():
        assert surface == "cli"
    ui.assert_same_document(page)

    page.locator("#audit-q").fill("no event says this")
    expect(page.locator("#audit-table")).to_contain_text("No events match these filters")
    ui.screenshot(page, "audit-empty.png")

    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(f"{base_url}{AUDIT}")
    expect(table).to_be_visible()
    ui.screenshot(page, "audit-narrow.png")
