"""The web catalog in a real browser: Playwright driving Debian's Chromium against `zoo serve` over the sample
catalog. Each test saves screenshots of the pages it visits under test-output/web/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ZOO_CHROMIUM") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "web"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file() or bool(os.environ.get("ZOO_SKIP_BROWSER")),
                                reason="Chromium is not installed (make test installs it: scripts/chromium.sh)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, sample_catalog, request):
    """A fresh page with the catalog as base URL; fails the test on any script error or console error, and
    records every dialog (a hostile card's alert would open one)."""
    context = browser.new_context(base_url=sample_catalog.url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.problems = []
    tab.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    tab.on("console", lambda msg: tab.problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    tab.on("dialog", lambda dialog: (tab.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    tab.shots = 0

    def shot(name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.shots += 1
        tab.screenshot(path=SCREENSHOTS / f"{request.node.name}-{tab.shots}-{name}.png", full_page=True)

    tab.shot = shot
    yield tab
    context.close()
    assert tab.problems == []


def follow(page, target) -> None:
    """Click `target` and wait until the page it navigates to has loaded: a click only waits for the navigation to
    start, so reading the page straight after it may read the old document (CI once counted 0 rows that way)."""
    with page.expect_navigation():
        target.click()


def results(page) -> list[str]:
    return page.locator("li.card.result h3 a").all_inner_texts()


def test_search_and_filters_narrow_the_results(page):
    page.goto("/")
    assert page.title() == "Models · Transfer Zoo"
    everything = results(page)
    assert len(everything) == 10
    page.shot("home")
    page.get_by_role("searchbox", name="Search", exact=True).fill("pneumonia")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"q=pneumonia"))
    found = results(page)
    assert set(found) == {"medical/resnet50-pneumonia", "medical/resnet50-pneumonia-lora",
                          "medical/resnet50-chestxray-probe"}
    assert page.locator("#result-count").inner_text() == "3 models matching “pneumonia”"
    page.shot("search")
    follow(page, page.locator('section[data-facet="strategy"]').get_by_role("link", name="lora"))
    assert results(page) == ["medical/resnet50-pneumonia-lora"]
    page.shot("search-and-facet")
    follow(page, page.get_by_role("link", name="Remove filter Strategy: lora"))
    assert set(results(page)) == set(found)
    page.locator("#sort").select_option("accuracy")
    follow(page, page.get_by_role("button", name="Search"))
    assert results(page)[0] == "medical/resnet50-pneumonia"  # v2's 0.8932 is the best of the three


def test_model_page_shows_card_versions_and_files(page):
    page.goto("/?family=resnet")
    page.get_by_role("link", name="medical/resnet50-pneumonia", exact=True).click()
    page.wait_for_url("**/medical/resnet50-pneumonia")
    assert page.title() == "medical/resnet50-pneumonia v2 · Transfer Zoo"
    assert page.get_by_role("heading", level=1).inner_text().startswith("resnet50-pneumonia")
    card = page.get_by_role("article", name="Model card")
    assert card.get_by_role("heading", name="Intended use").is_visible()
    assert "Paediatric chest X-ray" in card.inner_text()
    rows = page.locator("#versions tbody tr")
    assert rows.count() == 3
    assert "yanked" in rows.nth(0).inner_text() and "production" in rows.nth(1).inner_text()
    files = page.locator("#files tbody tr").all_inner_texts()
    assert [f.split("\t")[0] for f in files] == ["README.md", "config.json", "metrics.json", "model.safetensors",
                                                 "recipe.yaml"]
    with page.expect_download() as download:
        page.get_by_role("link", name="model.safetensors").click()
    assert Path(download.value.path()).stat().st_size > 0
    assert 'zoo_core.load("medical/resnet50-pneumonia@2"' in page.locator("#use").inner_text()
    page.shot("model")
    follow(page, page.get_by_role("link", name="v3", exact=True))
    assert page.get_by_role("status").inner_text().startswith("This version is yanked")
    assert page.get_by_role("link", name="model.safetensors").count() == 0
    page.shot("yanked-version")


def test_following_a_lineage_node(page, sample_catalog):
    page.goto("/medical/resnet50-pneumonia-lora")
    page.get_by_role("link", name="Lineage").click()
    page.wait_for_url("**/lineage")
    assert page.title().startswith("Lineage of medical/resnet50-pneumonia-lora@1")
    nodes = page.locator("svg g.node")
    assert nodes.count() == 4  # lora <- pneumonia@2 <- cifar10@2 <- torchvision ResNet-50 (ImageNet)
    assert page.locator("svg g.node.external .label").text_content().startswith("resnet50.IMAGENET1K_V2")
    page.shot("lineage-leaf")
    page.locator('svg a[aria-label^="vision/resnet50-cifar10@2"]').click()
    page.wait_for_url("**/vision/resnet50-cifar10/v/2")
    assert page.get_by_role("heading", level=1).inner_text().startswith("resnet50-cifar10")
    page.get_by_role("link", name="Family graph →").click()
    page.wait_for_url("**/lineage")
    # from the middle of the family: the branch (linear probe) and all three pneumonia versions are descendants
    labels = page.locator("svg g.node .label").all_text_contents()
    assert {"resnet50-chestxray-probe@1", "resnet50-pneumonia@1", "resnet50-pneumonia@3",
            "resnet50-pneumonia-lora@1"} <= set(labels)
    page.shot("lineage-branch")


def test_comparing_two_versions(page):
    page.goto("/medical/resnet50-pneumonia/v/2")
    page.get_by_label("Compare", exact=True).select_option("medical/resnet50-pneumonia@1")
    page.get_by_label("with").select_option("medical/resnet50-pneumonia@2")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r"/compare\?a=medical"))
    metrics = page.locator("#metrics tbody tr", has_text="accuracy").inner_text().split("\t")
    assert metrics[1:] == ["0.8713", "0.8932", "+0.0219"]
    diff = page.locator("#recipe-diff").inner_text()
    assert "strategy.name\tfreeze\tfinetune" in diff and "train.lr\t0.002\t0.0005" in diff
    page.shot("compare")


def test_a_card_carrying_a_script_does_not_run_it(page, sample_catalog):
    page.goto("/" + sample_catalog.hostile)
    card = page.get_by_role("article", name="Model card")
    assert "<script>window.__zoo_pwned" in card.inner_text()  # shown as text
    assert page.evaluate("window.__zoo_pwned") is None
    assert card.locator("script, img, iframe").count() == 0
    card.get_by_text("a link that must not run").click()
    assert page.evaluate("window.__zoo_pwned") is None
    page.shot("hostile-card")  # the fixture also asserts that no dialog opened


def test_the_api_docs_run_from_this_server(page):
    """Swagger UI from the installed package under the page's own policy (scripts from 'self'): it renders the
    operations without a console error (a CSP violation would be one) and loads nothing from another origin."""
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto("/docs")
    page.get_by_text("/api/search").first.wait_for()
    assert page.get_by_role("heading", name=re.compile("Transfer Zoo registry")).count() >= 1
    assert requested and all(url.startswith(page.url.split("/docs")[0]) for url in requested), requested
    page.shot("docs")


def test_plugins_page(page):
    page.goto("/plugins")
    assert page.get_by_role("navigation", name="Pages of backbones").is_visible()
    table = page.locator("#backbones ~ .table-wrap table").first
    for backbone in ("resnet50", "vgg16", "inception_v3", "alexnet", "bert-base-uncased", "tinynet"):
        page.get_by_label("Name", exact=True).fill(backbone)
        follow(page, page.get_by_role("button", name="Filter"))
        assert table.get_by_role("rowheader", name=backbone, exact=True).count() == 1, backbone
    page.get_by_label("Name", exact=True).fill("resnet50")
    page.get_by_label("Plugin", exact=True).select_option("torchvision")
    follow(page, page.get_by_role("button", name="Filter"))
    resnet50 = table.locator("tr").filter(has=page.get_by_role("rowheader", name="resnet50", exact=True))
    assert "stem → layer1 → layer2 → layer3 → layer4" in resnet50.inner_text()  # not cspresnet50 (zoo-timm)
    page.shot("plugins")


def test_not_found_and_private(page, sample_catalog):
    response = page.goto("/nobody/nothing")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    page.shot("not-found")
    follow(page, page.get_by_role("link", name="Back to the catalog"))
    assert len(results(page)) == 10
    assert page.goto("/" + sample_catalog.private).status == 404
    page.goto("/?q=internal")
    assert results(page) == []
    # the browser logs each 404 above as a failed load: those two were the point of this test
    assert sum("404 (Not Found)" in p for p in page.problems) == 2
    page.problems.clear()


def test_phone_width_without_javascript(browser, sample_catalog, request):
    """At 390 px wide and with scripts off: every page works and nothing but tables and the graph scrolls
    sideways."""
    context = browser.new_context(base_url=sample_catalog.url, viewport={"width": 390, "height": 844},
                                  java_script_enabled=False, is_mobile=True)
    page = context.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(("/", "/medical/resnet50-pneumonia", "/vision/resnet50-cifar10/v/2/lineage",
                              "/compare?a=medical/resnet50-pneumonia@1&b=medical/resnet50-pneumonia@2", "/plugins")):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        assert page.locator("h1").count() == 1 and page.title().endswith("· Transfer Zoo")
        page.screenshot(path=SCREENSHOTS / f"{request.node.name}-{i}.png", full_page=True)
    page.goto("/")
    follow(page, page.locator('section[data-facet="family"]').get_by_role("link", name="bert"))
    assert len(page.locator("li.card.result").all()) == 3
    context.close()
