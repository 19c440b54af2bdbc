"""Freight put together by hand in the browser (issue 9, item 6): from the Warehouse card's
New Freight, pick a discovered commit and create; the Freight's drawer opens (these artifacts
made Freight before, and the page says so)."""

from playwright.sync_api import Page, expect


def test_new_freight_from_the_warehouse_card(live_server_embedded, page: Page, ui):
    base_url, _ = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    ui.wait_for_freight(page, "v1.2.0", timeout=30)
    page.get_by_test_id("new-freight").click()
    drawer = page.locator("#drawer .drawer-body[id^=assemble-drawer-]")
    expect(drawer.locator("h2")).to_have_text("Put Freight together")
    select = drawer.get_by_test_id("artifact-select")
    expect(select.locator("option")).to_have_count(3)
    select.select_option(label=select.locator("option").nth(1).inner_text())
    ui.screenshot(page, "assemble-freight.png")
    drawer.get_by_test_id("create-freight").click()
    freight = page.locator("#drawer .drawer-body[id^=freight-drawer-]")
    expect(freight).to_be_visible()
    expect(freight.locator("table").first).to_contain_text("v1.1.0")
    expect(page.locator("#flash")).to_contain_text("has exactly these artifacts")
    ui.screenshot(page, "assemble-freight-done.png")
