"""The dashboard as a person uses it, in Chromium, against `manage.py serve` (embedded mode).

The tests of this module share one server and run in order: discovery, then promotion through
test -> uat -> prod, then what a viewer and bad input get. Each still waits for what it needs.
"""

import os
import subprocess

import pytest
from playwright.sync_api import Page, expect

from .servers import add_member_code

pytestmark = pytest.mark.e2e

PROJECT = "kargo-demo"
TAG = "v1.2.0"
NEW_TAG = "v1.3.0"  # released by the last test, after the others are done with TAG
STEPS = 6  # the demo Stages' steps: git-clone, git-clear, update-image, build, commit, push


def stage_node(page: Page, stage: str):
    return page.locator(f".node-stage[data-stage={stage}]")


def test_login_and_discovered_freight(live_server_embedded, page: Page, ui):
    base_url, _ = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    # The projects page (and, below, the project page) run under the Content Security Policy
    # with nothing blocked.
    assert ui.live_stats(page)["cspViolations"] == []

    project_card = page.locator("a.project-card", has_text=PROJECT)
    expect(project_card).to_be_visible()
    project_card.click()
    expect(page).to_have_url(f"{base_url}/project/{PROJECT}/")
    expect(page.locator(".topbar .role-badge")).to_have_text("admin")

    # Discovery runs when the server starts; the card appears within seconds.
    card = ui.wait_for_freight(page, TAG, timeout=30)
    expect(card.locator(".freight-alias")).not_to_be_empty()
    # The pipeline the demo seeded: a Warehouse feeding test -> uat -> prod.
    expect(page.locator(".node-warehouse .node-name")).to_have_text("guestbook")
    for stage in ("test", "uat", "prod"):
        expect(stage_node(page, stage)).to_be_visible()
    ui.screenshot(page, "pipeline.png")
    assert ui.live_stats(page)["cspViolations"] == []


def test_promote_through_all_stages_with_live_updates(
    live_server_embedded, context, page: Page, ui
):
    base_url, data_dir = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    ui.wait_for_freight(page, TAG, timeout=30)
    ui.wait_live(page)
    ui.mark(page)

    # A second window on the same project: it is never reloaded, so everything it shows about
    # the promotions came over the websocket.
    watcher = context.new_page()
    ui.open_project(watcher, base_url)
    ui.wait_live(watcher)
    ui.mark(watcher)

    for stage in ("test", "uat", "prod"):
        node = stage_node(watcher, stage)
        expect(node.get_by_test_id("stage-freight")).to_have_count(0)
        expect(node).to_contain_text("No Freight yet")

        button = page.get_by_test_id(f"promote-to-{stage}")
        ui.open_freight_drawer(page, TAG, wait_for=button, timeout=30)
        button.click()

        drawer = page.locator("#drawer .drawer-body[id^=promotion-drawer-]")
        expect(drawer).to_be_visible(timeout=10_000)
        expect(drawer.locator(".drawer-head")).to_contain_text(f"Promotion to {stage}")
        if stage == "test":
            ui.screenshot(page, "promotion-running.png")

        phase = drawer.get_by_test_id("promotion-phase")
        expect(phase).to_have_text("Succeeded", timeout=60_000)
        steps = page.locator("#drawer li[data-testid=step]")
        expect(steps).to_have_count(STEPS)
        for i in range(STEPS):
            expect(steps.nth(i)).to_have_attribute("data-status", "Succeeded")
        expect(page.locator("#drawer h3", has_text="Steps")).to_contain_text(f"{STEPS}/{STEPS}")
        if stage == "test":
            ui.screenshot(page, "promotion-done.png")
        ui.assert_same_document(page)

        # The other window followed along without a reload.
        expect(node.get_by_test_id("stage-freight")).to_contain_text(TAG, timeout=30_000)
        expect(node.get_by_test_id("stage-phase")).to_have_text("Ready", timeout=30_000)
        ui.assert_same_document(watcher)

    # Both windows kept one websocket the whole time: nothing reconnected (a reconnect would
    # hide a consumer that crashed), and the updates came through it. Neither got a fragment it
    # had no element for: the watcher never opened a drawer, this window only some of them.
    for window in (page, watcher):
        ui.assert_live_and_clean(window)
        assert ui.live_stats(window)["wsMessages"] > 0
    for stage in ("test", "uat", "prod"):
        expect(stage_node(watcher, stage).get_by_test_id("stage-freight")).to_contain_text(TAG)
    holders = ui.freight_card(watcher, TAG).locator(".holder")
    expect(holders).to_have_count(3)
    assert sorted(holders.all_inner_texts()) == ["prod", "test", "uat"]
    ui.screenshot(watcher, "pipeline-after-prod.png")

    # The promotions really rendered and pushed the manifests.
    gitops = data_dir / "demo" / "repos" / "guestbook-gitops.git"
    for stage in ("test", "uat", "prod"):
        manifests = subprocess.run(
            ["git", "--git-dir", str(gitops), "show", f"stage/{stage}:manifests.yaml"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"demo/guestbook:{TAG}" in manifests, manifests
        assert f"namespace: kargo-demo-{stage}" in manifests, manifests


def test_viewer_cannot_promote(live_server_embedded, manage_embedded, browser, page: Page, ui):
    base_url, data_dir = live_server_embedded
    manage_embedded(
        data_dir, "shell", "-c", add_member_code(PROJECT, "vera", "vera-pass-123", "viewer")
    )
    ui.login(page, base_url, "vera", "vera-pass-123")
    expect(page.locator("a.project-card", has_text=PROJECT)).to_be_visible()
    ui.open_project(page, base_url)
    expect(page.locator(".topbar .role-badge")).to_have_text("viewer")
    ui.wait_for_freight(page, TAG, timeout=30)
    # A viewer still gets live updates: the project's websocket accepts members.
    ui.wait_live(page)

    drawer = ui.open_freight_drawer(page, TAG)
    expect(drawer.locator("table").last).to_contain_text("test")
    expect(page.locator("#drawer [data-testid^=promote]")).to_have_count(0)
    expect(page.locator("#drawer").get_by_role("button")).to_have_count(0)
    expect(page.get_by_role("button", name="Promote")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Refresh")).to_have_count(0)
    ui.screenshot(page, "viewer.png")

    # Hiding the button is not the protection: the server refuses the POST itself.
    freight_name = drawer.locator(".kv code").first.inner_text().strip()
    assert len(freight_name) == 40, freight_name
    response = ui.post_form(
        page, f"/project/{PROJECT}/stage/test/promote", {"freight": freight_name}
    )
    assert response["status"] == 403, response
    response = ui.post_form(
        page, f"/project/{PROJECT}/freight/{freight_name}/approve", {"stage": "uat"}
    )
    assert response["status"] == 403, response

    # Someone not logged in cannot open the project's websocket at all.
    anonymous = browser.new_context()
    try:
        stranger = anonymous.new_page()
        stranger.goto(f"{base_url}/login/")
        result = stranger.evaluate(
            """(url) => new Promise((resolve) => {
                const ws = new WebSocket(url);
                let opened = false, messages = 0;
                ws.onopen = () => { opened = true; };
                ws.onmessage = () => { messages += 1; };
                ws.onclose = (e) => resolve({opened, messages, code: e.code, closed: true});
                setTimeout(() => resolve({opened, messages, closed: false}), 15000);
            })""",
            base_url.replace("http://", "ws://") + f"/ws/project/{PROJECT}/",
        )
        assert result["closed"] and not result["opened"] and result["messages"] == 0, result
    finally:
        anonymous.close()


def test_bad_input_never_500(live_server_embedded, page: Page, ui):
    base_url, _ = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    message = "Choose the Freight to promote."

    # A plain form POST naming Freight that does not exist: redirected back with the message.
    response = ui.post_form(page, f"/project/{PROJECT}/stage/test/promote", {"freight": "nope"})
    assert response["status"] != 500, response
    assert response["status"] == 422 or response["redirected"], response
    assert message in response["text"], response["text"][:2000]

    # The same from htmx (as the drawer's buttons send it): 422 with the message fragment.
    response = ui.post_form(
        page,
        f"/project/{PROJECT}/stage/test/promote",
        {"freight": "nope"},
        headers={"HX-Request": "true", "HX-Target": "drawer"},
    )
    assert response["status"] == 422, response
    assert message in response["text"], response

    # And what a person sees after submitting such a form without JavaScript's help.
    page.evaluate(
        """([path, token]) => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = path;
            for (const [k, v] of [['csrfmiddlewaretoken', token], ['freight', 'nope']]) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = k; input.value = v;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        [f"/project/{PROJECT}/stage/test/promote", ui.csrf_token(page)],
    )
    expect(page).to_have_url(f"{base_url}/project/{PROJECT}/stage/test/")
    expect(page.locator("#flash")).to_contain_text(message)

    # Unknown stage, unknown project, unknown freight: 404, not 500.
    response = ui.post_form(page, f"/project/{PROJECT}/stage/nope/promote", {"freight": "nope"})
    assert response["status"] == 404, response
    for path in ("/project/nope/", f"/project/{PROJECT}/freight/nope/"):
        got = page.goto(f"{base_url}{path}")
        assert got is not None and got.status == 404, (path, got and got.status)


def release(data_dir, tag: str) -> None:
    """A new release of the demo's app: a commit tagged `tag`, pushed to the bare repository the
    Warehouse subscribes to (`manage.py demo` left its work tree in the data dir)."""
    work = data_dir / "demo" / "work" / "app"
    bare = data_dir / "demo" / "repos" / "guestbook-app.git"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo Developer",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Demo Developer",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    for args in (
        ["commit", "--quiet", "--allow-empty", "-m", f"Release {tag}"],
        ["tag", "-a", tag, "-m", f"Release {tag}"],
        ["push", "--quiet", "--follow-tags", str(bare), "main"],
    ):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)


def test_open_freight_drawer_follows_changes_made_elsewhere(
    live_server_embedded, context, page: Page, ui
):
    """Window A keeps a Freight drawer open; window B discovers, approves and promotes that
    Freight. A is never reloaded and nothing in it is clicked again: what changes comes live.

    B is another window of the same server, not `manage.py kargo` in its own process: in
    embedded mode the channel layer is in memory, per process, so a change the CLI makes never
    reaches open pages (the scaled mode's Redis layer does carry them)."""
    base_url, data_dir = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    ui.wait_live(page)
    ui.mark(page)
    other = context.new_page()
    ui.open_project(other, base_url)
    ui.wait_live(other)
    ui.mark(other)

    # A new release: B asks the Warehouse to look, and the Freight appears in both windows.
    expect(ui.freight_card(page, NEW_TAG)).to_have_count(0)
    release(data_dir, NEW_TAG)
    other.locator(".node-warehouse").get_by_role("button", name="Refresh").click()
    ui.wait_for_freight(page, NEW_TAG, timeout=30)
    ui.wait_for_freight(other, NEW_TAG, timeout=30)

    # Nothing verified the new Freight anywhere: test takes it directly, uat and prod only
    # with an approval.
    drawer = ui.open_freight_drawer(page, NEW_TAG)
    drawer_id = drawer.get_attribute("id")
    row = {stage: drawer.locator(f"tr[data-stage={stage}]") for stage in ("test", "uat", "prod")}
    expect(row["test"].get_by_test_id("promote-to-test")).to_be_visible()
    expect(row["uat"]).to_contain_text("not yet verified in test")
    expect(row["prod"]).to_contain_text("not yet verified in uat")
    expect(row["prod"].get_by_test_id("approve-for-prod")).to_be_visible()
    expect(row["prod"].get_by_test_id("promote-to-prod")).to_have_count(0)
    ui.screenshot(page, "freight-drawer-before.png")

    # B approves it for prod: A's drawer offers Promote to prod instead of Approve.
    ui.open_freight_drawer(other, NEW_TAG)
    other.get_by_test_id("approve-for-prod").click()
    expect(row["prod"].get_by_test_id("promote-to-prod")).to_be_visible(timeout=15_000)
    expect(row["prod"]).to_contain_text("approved")
    expect(row["prod"].get_by_test_id("approve-for-prod")).to_have_count(0)
    ui.screenshot(page, "freight-drawer-approved.png")

    # B promotes it to test: once it is verified there, A's drawer shows it current in test and
    # available to uat, whose Approve becomes Promote.
    other.get_by_test_id("promote-to-test").click()
    promotion = other.locator("#drawer .drawer-body[id^=promotion-drawer-]")
    expect(promotion.get_by_test_id("promotion-phase")).to_have_text("Succeeded", timeout=60_000)
    expect(row["test"]).to_contain_text("current", timeout=15_000)
    expect(row["uat"].get_by_test_id("promote-to-uat")).to_be_visible(timeout=15_000)
    expect(row["uat"]).to_contain_text("verified in test")
    expect(row["uat"].get_by_test_id("approve-for-uat")).to_have_count(0)
    ui.screenshot(page, "freight-drawer-verified.png")

    # The same drawer element all along, in a document never reloaded.
    expect(page.locator("#drawer .drawer-body")).to_have_attribute("id", drawer_id)
    for window in (page, other):
        ui.assert_same_document(window)
        ui.assert_live_and_clean(window)
