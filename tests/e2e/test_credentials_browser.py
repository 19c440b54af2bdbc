"""The credentials page in the browser (issue 9, item 4): an admin reaches it from the project
page, adds a git credential, and sees it listed with "password set" and never the password."""

from playwright.sync_api import Page, expect

PASSWORD = "pa55-w0rd-never-shown"


def test_an_admin_adds_a_credential_and_never_sees_its_password(
    live_server_embedded, page: Page, ui
):
    base_url, _ = live_server_embedded
    ui.login(page, base_url, "demo", "demo")
    ui.open_project(page, base_url)
    page.get_by_role("link", name="Credentials").click()
    expect(page.get_by_role("heading", name="Credentials", level=1)).to_be_visible()
    expect(page.locator(".empty-inline")).to_contain_text("No credentials yet")
    page.get_by_label("Name", exact=True).fill("gitops")
    page.get_by_label("Repository URL").fill("https://git.example.com/org/gitops.git")
    page.get_by_label("Username").fill("bot")
    page.get_by_label("Password or token").fill(PASSWORD)
    page.get_by_role("button", name="Add credential").click()
    row = page.locator("tr[data-credential=gitops]")
    expect(row).to_contain_text("password set")
    expect(row).to_contain_text("https://git.example.com/org/gitops.git")
    assert PASSWORD not in page.content()
    ui.screenshot(page, "credentials.png")
