"""Verification in the browser (issue 8): a Stage whose verification asks the dashboard's own
/healthz with a web metric. Promote into it and watch, on a second window that is never
reloaded, the Stage go Verifying -> Ready and its AnalysisRun's measurements arrive; Reverify,
then Abort, from the drawer; turn auto-promotion on from the drawer; a viewer sees none of the
buttons and is refused the POSTs."""

import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect

from .servers import add_member_code

PROJECT = "kargo-demo"

MANIFESTS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: healthz
  namespace: kargo-demo
spec:
  args:
  - name: url
  metrics:
  - name: healthz
    interval: 2s
    count: 5
    successCondition: result == "ok"
    provider:
      web:
        url: "{{args.url}}"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: qa
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin: {kind: Warehouse, name: guestbook}
    sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
      - uses: compose-output
        config: {checked: true}
  verification:
    analysisTemplates:
    - name: healthz
    args:
    - name: url
      value: "BASE/healthz"
"""


def stage_node(page: Page, stage: str):
    return page.locator(f".node-stage[data-stage='{stage}']")


def apply(manage_embedded, data_dir: Path, base_url: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(MANIFESTS.replace("BASE", base_url))
    manage_embedded(data_dir, "kargo", "apply", "-f", f.name)


def open_stage_drawer(page: Page, stage: str):
    stage_node(page, stage).locator("a.node-name").click()
    drawer = page.locator("#drawer .drawer-body[id^=stage-drawer-]")
    expect(drawer.locator("h2")).to_have_text(stage)
    return drawer


def test_verification_runs_live_and_can_be_reverified_and_aborted(
    live_server_embedded, manage_embedded, context, page: Page, ui
):
    base_url, data_dir = live_server_embedded
    apply(manage_embedded, data_dir, base_url)
    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    ui.wait_live(page)
    watcher = context.new_page()
    ui.open_project(watcher, base_url)
    ui.wait_live(watcher)
    ui.mark(watcher)

    drawer = open_stage_drawer(page, "qa")
    promote = drawer.locator("[data-testid^=promote-]").first
    expect(promote).to_be_visible(timeout=30_000)
    promote.click()
    promotion = page.locator("#drawer .drawer-body[id^=promotion-drawer-]")
    expect(promotion.get_by_test_id("promotion-phase")).to_have_text("Succeeded", timeout=60_000)

    # The other window: the Stage verifies (its first measurement is taken at once, four more
    # follow two seconds apart), then is Ready.
    phase = stage_node(watcher, "qa").get_by_test_id("stage-phase")
    expect(phase).to_have_text("Verifying", timeout=30_000)
    ui.screenshot(watcher, "verification-verifying.png")

    drawer = open_stage_drawer(page, "qa")
    expect(drawer.get_by_test_id("verification-phase").first).to_have_text("Running")
    drawer.get_by_test_id("verification-run").first.click()
    run = page.locator("#drawer .drawer-body[id^=analysisrun-drawer-]")
    expect(run.get_by_test_id("run-phase")).to_have_text("Running")
    # Measurements arrive in the open run drawer without a reload.
    expect(run.get_by_test_id("measurement")).to_have_count(3, timeout=30_000)
    ui.screenshot(page, "verification-run.png")
    expect(run.get_by_test_id("run-phase")).to_have_text("Successful", timeout=30_000)
    expect(run.get_by_test_id("measurement")).to_have_count(5)
    expect(phase).to_have_text("Ready", timeout=30_000)
    ui.assert_same_document(watcher)

    # Reverify from the Stage's drawer starts a new run; Abort ends it Failed.
    drawer = open_stage_drawer(page, "qa")
    drawer.get_by_test_id("reverify").click()
    expect(drawer.get_by_test_id("verification")).to_have_count(2, timeout=10_000)
    expect(drawer.get_by_test_id("verification-phase").first).to_have_text("Running")
    expect(phase).to_have_text("Verifying", timeout=30_000)
    page.once("dialog", lambda dialog: dialog.accept())
    drawer.get_by_test_id("abort-verification").click()
    first = drawer.get_by_test_id("verification").first
    expect(first.get_by_test_id("verification-phase")).to_have_text("Failed", timeout=10_000)
    expect(first).to_contain_text("Verification aborted by user")
    expect(first).to_contain_text("user:demo")
    expect(phase).to_have_text("Failed", timeout=30_000)
    expect(drawer.get_by_test_id("abort-verification")).to_have_count(0)
    ui.screenshot(page, "verification-aborted.png")

    # An admin turns auto-promotion on from the drawer; the other window's card shows the mark.
    expect(stage_node(watcher, "qa").get_by_test_id("auto-mark")).to_have_count(0)
    drawer.get_by_test_id("auto-promotion-toggle").click()
    expect(drawer.get_by_test_id("auto-promotion")).to_contain_text("on")
    expect(stage_node(watcher, "qa").get_by_test_id("auto-mark")).to_be_visible(timeout=30_000)
    ui.screenshot(watcher, "auto-promotion-on.png")
    for window in (page, watcher):
        ui.assert_live_and_clean(window)


def test_a_viewer_sees_no_verification_buttons_and_is_refused(
    live_server_embedded, manage_embedded, page: Page, ui
):
    base_url, data_dir = live_server_embedded
    apply(manage_embedded, data_dir, base_url)
    manage_embedded(
        data_dir, "shell", "-c", add_member_code(PROJECT, "vic", "vic-pass-123", "viewer")
    )
    ui.login(page, base_url, "vic", "vic-pass-123")
    ui.open_project(page, base_url)
    drawer = open_stage_drawer(page, "qa")
    expect(drawer.locator("h3", has_text="Verification")).to_be_visible()
    expect(drawer.get_by_test_id("reverify")).to_have_count(0)
    expect(drawer.get_by_test_id("abort-verification")).to_have_count(0)
    expect(drawer.get_by_test_id("auto-promotion-toggle")).to_have_count(0)
    for action in ("reverify", "abort-verification", "auto-promotion"):
        response = ui.post_form(page, f"/project/{PROJECT}/stage/qa/{action}", {})
        assert response["status"] == 403, response
