"""Scaled mode, end to end: daphne plus a separate Celery worker (and beat) on this machine's
Redis and PostgreSQL, where a promotion run by the worker changes an open browser page."""

import subprocess

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PROJECT = "kargo-demo"
TAG = "v1.2.0"


def test_worker_promotion_updates_open_page(live_server_scaled, page: Page, ui):
    base_url = live_server_scaled["base_url"]
    daphne, worker = live_server_scaled["daphne"], live_server_scaled["worker"]

    ui.login(page, base_url, "demo", "demo")
    # Plain daphne serves no /static/ of its own: whitenoise does, so htmx and its ws extension
    # load (open_project waits for window.htmx) and the stylesheet answers.
    ui.open_project(page, base_url)
    css = page.request.get(f"{base_url}/static/css/kargo.css")
    assert css.ok and "text/css" in css.headers.get("content-type", ""), css.status

    # Discovery runs in the worker (beat's periodic reconcile finds the Warehouse due).
    ui.wait_for_freight(page, TAG, timeout=60)
    ui.wait_live(page)  # the ws extension loaded and connected
    ui.mark(page)

    node = page.locator(".node-stage[data-stage=test]")
    expect(node.get_by_test_id("stage-freight")).to_have_count(0)

    button = page.get_by_test_id("promote-to-test")
    ui.open_freight_drawer(page, TAG, wait_for=button, timeout=30)
    button.click()
    drawer = page.locator("#drawer .drawer-body[id^=promotion-drawer-]")
    expect(drawer).to_be_visible(timeout=10_000)
    expect(drawer.get_by_test_id("promotion-phase")).to_have_text("Succeeded", timeout=60_000)
    steps = page.locator("#drawer li[data-testid=step]")
    expect(steps).to_have_count(6)
    for i in range(6):
        expect(steps.nth(i)).to_have_attribute("data-status", "Succeeded")
    expect(node.get_by_test_id("stage-freight")).to_contain_text(TAG, timeout=30_000)
    expect(node.get_by_test_id("stage-phase")).to_have_text("Ready", timeout=30_000)

    # Never reloaded, one websocket throughout: the worker's changes reached this page through
    # Redis (channels-redis) and daphne's consumer.
    ui.assert_same_document(page)
    stats = ui.live_stats(page)
    assert stats["wsOpen"] == 1 and stats["wsClose"] == 0 and stats["wsMessages"] > 0, stats
    ui.screenshot(page, "scaled-promotion-done.png")

    # The worker process ran it. The daphne process has no Celery worker at all (it was started
    # as plain `daphne kargo_ui.asgi:application`), so the promotion finishing is already proof;
    # the engine's claim log line names the process, which makes it explicit.
    promotion = drawer.locator("h2").inner_text().strip()
    claims = [line for line in worker.log().splitlines() if f"runs promotion {promotion}" in line]
    assert claims, f"the worker did not log running {promotion}:\n{worker.tail()}"
    assert f":{worker.pid}:" in claims[0], (worker.pid, claims)
    assert f"runs promotion {promotion}" not in daphne.log()

    manifests = subprocess.run(
        [
            "git",
            "--git-dir",
            str(live_server_scaled["data_dir"] / "demo" / "repos" / "guestbook-gitops.git"),
            "show",
            "stage/test:manifests.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"demo/guestbook:{TAG}" in manifests, manifests
