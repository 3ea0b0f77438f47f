"""The web catalog over plain HTTP (the browser suite is test_web_browser.py): what each page says, status codes,
escaping, privacy, and the pieces behind the pages (card sanitising, the lineage layout)."""

from __future__ import annotations

import os
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from registry_server.graph import MAX_DETAIL, MAX_LABEL, layout
from registry_server.render import card_html
from zoo_core.errors import ZooError

HTML = {"Accept": "text/html"}


def get(catalog, path: str, **kwargs) -> httpx.Response:
    return httpx.get(catalog.url + path, headers={**HTML, **kwargs.pop("headers", {})},
                     timeout=kwargs.pop("timeout", 30), **kwargs)


def result_ids(page: str) -> list[str]:
    return re.findall(r'<li class="card result">\s*<h3><a href="/([^"]+)">', page)


def test_search_facets_sort_and_pages_narrow_the_results(sample_catalog):
    everything = result_ids(get(sample_catalog, "/").text)
    assert len(everything) == 10  # the private model is not listed
    assert "private-lab/internal-bert" not in everything
    text = result_ids(get(sample_catalog, "/?modality=text").text)
    assert sorted(text) == ["nlp/bert-base-sst2", "nlp/minilm-sst2-lora", "sandbox/card-with-script"]
    both = result_ids(get(sample_catalog, "/?modality=text&strategy=lora").text)
    assert both == ["nlp/minilm-sst2-lora"]
    pneumonia = get(sample_catalog, "/?q=pneumonia").text
    assert set(result_ids(pneumonia)) == {"medical/resnet50-pneumonia", "medical/resnet50-pneumonia-lora",
                                           "medical/resnet50-chestxray-probe"}
    # the facet counts are those of the current matches, and a chosen facet offers its removal
    facet = re.search(r'data-facet="family">(.*?)</section>', get(sample_catalog, "/?q=pneumonia").text, re.S)
    assert re.search(r'>resnet</a> <span class="count">3</span>', facet.group(1))
    chosen = get(sample_catalog, "/?family=vgg").text
    assert 'aria-label="Remove filter Backbone family: vgg"' in chosen
    assert result_ids(chosen) == ["vision/vgg16-flowers"]
    by_accuracy = result_ids(get(sample_catalog, "/?sort=accuracy").text)
    assert by_accuracy[:2] == ["vision/resnet50-cifar10", "vision/alexnet-digits"]  # 0.9531, 0.9507
    assert result_ids(get(sample_catalog, "/?sort=name").text)[0] == "eyes/inception-v3-retina"
    first, second = (get(sample_catalog, f"/?sort=name&per_page=4&page={n}").text for n in (1, 2))
    assert len(result_ids(first)) == 4 and not set(result_ids(first)) & set(result_ids(second))
    assert 'rel="next" href="/?sort=name&amp;per_page=4&amp;page=2"' in first


def test_search_text_is_escaped_when_shown_back(sample_catalog):
    page = get(sample_catalog, "/", params={"q": '<script>alert("q")</script>'}).text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


def test_model_page_has_card_metadata_versions_files_and_snippets(sample_catalog):
    response = get(sample_catalog, "/medical/resnet50-pneumonia")
    page = response.text
    assert response.status_code == 200
    assert "<title>medical/resnet50-pneumonia v2 · Transfer Zoo</title>" in page  # `latest` is v2: v3 was yanked
    assert page.count("<h1") == 1 and "<h3>Intended use</h3>" in page  # the card's headings sit below the page's h1
    assert "<dt>license</dt><dd>cc-by-4.0</dd>" in page
    versions = re.search(r'id="versions".*?</table>', page, re.S).group(0)
    assert [n for n in re.findall(r">v(\d+)</a>", versions)] == ["3", "2", "1"]
    assert "yanked" in versions and "production" in versions
    files = re.search(r'id="files".*?</table>', page, re.S).group(0)
    link = re.search(r'href="([^"]+/model.safetensors)"', files).group(1)
    download = httpx.get(sample_catalog.url + link)
    assert download.status_code == 200 and download.content[:8]  # a real safetensors header
    assert 'zoo_core.load("medical/resnet50-pneumonia@2", registry="' in unescape(page)
    assert 'snapshot_download("medical/resnet50-pneumonia", revision="v2"' in unescape(page)
    yanked = get(sample_catalog, "/medical/resnet50-pneumonia/v/3").text
    assert "This version is <strong>yanked</strong>" in yanked and "model.safetensors</a>" not in yanked


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser sees them."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_hostile_card_is_shown_as_text(sample_catalog):
    page = get(sample_catalog, "/sandbox/card-with-script").text
    card = re.search(r'<article class="card-body".*?</article>', page, re.S).group(0)
    tags = Tags(card).tags
    assert not [t for t, _ in tags if t in ("script", "img", "iframe", "object", "embed")]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    assert not [v for _, attrs in tags for v in attrs.values() if v and v.strip().lower().startswith("javascript:")]
    assert "&lt;script&gt;window.__zoo_pwned" in card  # shown, as text
    assert not re.search(r"<script(?![^>]*src=\"/static/)", page.replace(card, ""))  # the page itself has none


def test_lineage_page_draws_the_family(sample_catalog):
    page = get(sample_catalog, "/medical/resnet50-pneumonia-lora/v/1/lineage").text
    nodes = re.findall(r'data-node="([^"]+)"', page)
    # ancestors back to the ImageNet weights: lora -> pneumonia@2 -> cifar10@2 -> torchvision
    assert nodes[0] == "torchvision:resnet50.IMAGENET1K_V2"
    assert {"vision/resnet50-cifar10@2", "medical/resnet50-pneumonia@2", "medical/resnet50-pneumonia-lora@1"} <= set(
        nodes)
    assert 'href="/medical/resnet50-pneumonia/v/2"' in page
    branch = get(sample_catalog, "/vision/resnet50-cifar10/v/2/lineage").text
    assert "medical/resnet50-chestxray-probe@1" in branch and "medical/resnet50-pneumonia-lora@1" in branch


def test_compare_shows_metric_and_recipe_differences(sample_catalog):
    page = get(sample_catalog, "/compare", params={"a": "medical/resnet50-pneumonia@1",
                                                  "b": "medical/resnet50-pneumonia@2"}).text
    metrics = re.search(r'id="metrics".*?</table>', page, re.S).group(0)
    assert re.search(r"accuracy</th><td[^>]*>0.8713</td><td[^>]*>0.8932</td>\s*<td[^>]*>\+0.0219", metrics)
    diff = re.search(r'id="recipe-diff".*?</table>', page, re.S).group(0)
    assert re.search(r"strategy.name</code></th><td>freeze</td><td>finetune</td>", diff)
    assert "backbone" not in re.findall(r"<code>([^<]+)</code>", diff)  # same in both: not a difference
    missing = get(sample_catalog, "/compare", params={"a": "medical/resnet50-pneumonia@1", "b": "nobody/none@1"})
    assert missing.status_code == 404 and "nobody/none" in missing.text


def test_plugins_page_lists_what_each_plugin_contributes(sample_catalog):
    for backbone, family in (("resnet50", "resnet"), ("vgg16", "vgg"), ("inception_v3", "inception"),
                             ("alexnet", "alexnet"), ("bert-base-uncased", "bert"), ("tinynet", "tinynet")):
        # the first visit lists the plugins in a child process that imports every plugin: slow on a busy machine
        page = get(sample_catalog, "/plugins", params={"q": backbone}, timeout=300).text
        assert re.search(rf'<th scope="row">{backbone}</th><td>{family}</td>', page), backbone
    page = get(sample_catalog, "/plugins", params={"q": "resnet50", "plugin": "torchvision"}).text
    assert "stem → layer1 → layer2 → layer3 → layer4" in page
    assert "torchvision:resnet50.IMAGENET1K_V2" in page
    assert re.search(r'<th scope="row">lora</th><td>.*?r=8', page)


def backbone_rows(page: str) -> list[tuple[str, str]]:
    """(name, plugin) of each row of the backbones table."""
    table = re.search(r'<h2 id="backbones">.*?</table>', page, re.S).group(0)
    return re.findall(r'<tr><th scope="row">([^<]+)</th>.*?<td>([^<]*)</td></tr>', table, re.S)


def test_the_plugins_page_filters_and_pages_the_backbones(sample_catalog):
    """zoo-timm alone brings over a thousand backbones: a page holds 100, with a filter by name, plugin and modality."""
    from registry_server.web import BACKBONES_PER_PAGE

    first = get(sample_catalog, "/plugins", timeout=300).text
    total = int(re.search(r"1–100 of (\d+) backbones", first).group(1))
    assert total > 1000 and len(backbone_rows(first)) == BACKBONES_PER_PAGE
    pages = -(-total // BACKBONES_PER_PAGE)
    assert f"Page 1 of {pages}" in first and 'rel="next" href="/plugins?page=2#backbones"' in first
    last = get(sample_catalog, "/plugins", params={"page": pages}).text
    assert len(backbone_rows(last)) == total - BACKBONES_PER_PAGE * (pages - 1)
    assert backbone_rows(get(sample_catalog, "/plugins", params={"page": 10_000}).text) == backbone_rows(last)
    names = {name for page in range(1, pages + 1)
             for name, _ in backbone_rows(get(sample_catalog, "/plugins", params={"page": page}).text)}
    assert len(names) == total  # every backbone on exactly one page
    convnext = backbone_rows(get(sample_catalog, "/plugins", params={"q": "convnext*"}).text)
    assert convnext and all(name.startswith("convnext") for name, _ in convnext)
    torchvision = get(sample_catalog, "/plugins", params={"plugin": "torchvision", "modality": "image"}).text
    assert {plugin for _, plugin in backbone_rows(torchvision)} == {"torchvision"}
    assert re.search(r"of \d+ matching \(of \d+\) backbones", torchvision)
    assert "No backbone matches" in get(sample_catalog, "/plugins", params={"q": "no-such-net"}).text
    assert get(sample_catalog, "/plugins", params={"page": "two"}).status_code == 400


def server_pid(url: str) -> int:
    """The process of the `zoo serve` listening on `url`'s port."""
    port = url.rsplit(":", 1)[1].encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and b"--port" in args and port in args:
            return int(cmdline.parent.name)
    raise AssertionError(f"no zoo serve process on port {port.decode()}")


def test_the_plugins_page_keeps_model_code_out_of_the_server(sample_catalog):
    """The listing builds every backbone (torch, torchvision, transformers): a child process does it, so the
    server never maps their libraries, measured from outside in the server's /proc/PID/maps."""
    maps = Path(f"/proc/{server_pid(sample_catalog.url)}/maps")
    assert "libtorch" not in maps.read_text()  # nor at its start: the registry and the server are torch-free
    page = get(sample_catalog, "/plugins", params={"q": "resnet50"}, timeout=300).text
    assert re.search(r'<th scope="row">resnet50</th><td>resnet</td>', page)  # the listing was made, elsewhere
    mapped = maps.read_text()
    assert "libtorch" not in mapped and "torchvision" not in mapped and "transformers" not in mapped


def test_the_plugins_page_says_when_the_plugins_cannot_be_listed(tmp_path, serve, plugin_site):
    plugin_site.add("zoo_exits", "import os\nos._exit(3)  # takes the whole listing process down\n")
    url = serve(tmp_path / "registry", env={"PYTHONPATH": os.pathsep.join(
        [str(plugin_site.path), os.environ.get("PYTHONPATH", "")])})
    page = httpx.get(url + "/plugins", headers=HTML, timeout=120)
    assert page.status_code == 200 and "The plugins could not be listed" in page.text
    assert "exit status 3" in page.text
    assert httpx.get(url + "/api/models").status_code == 200  # the server itself is unaffected


def test_not_found_pages_and_private_models(sample_catalog):
    missing = get(sample_catalog, "/nobody/nothing")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text and 'href="/"' in missing.text
    assert get(sample_catalog, "/nobody/nothing/v/3/lineage").status_code == 404
    assert get(sample_catalog, "/medical/resnet50-pneumonia/v/9").status_code == 404
    assert get(sample_catalog, "/no/such/page/at/all").status_code == 404
    api = httpx.get(sample_catalog.url + "/api/nothing-here")
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"
    assert api.json()["type"] == "NotFoundError" and api.headers["x-error-message"] == api.json()["error"]
    private = get(sample_catalog, "/" + sample_catalog.private)
    assert private.status_code == 404 and "internal-bert" in private.text  # says what was not found, no more
    from zoo_core.registry.service import RegistryService

    service = RegistryService(f"sqlite:///{sample_catalog.root / 'registry.db'}", sample_catalog.root / "blobs")
    token = service.create_token("private-lab")
    owner = get(sample_catalog, "/" + sample_catalog.private, headers={"Authorization": f"Bearer {token}"})
    assert owner.status_code == 200 and "private" in owner.text
    service.engine.dispose()


def test_a_malformed_query_gets_a_page_that_names_the_field(sample_catalog):
    page = get(sample_catalog, "/?page=second")
    assert page.status_code == 400 and "<h1>Bad request</h1>" in page.text and "page:" in page.text
    api = httpx.get(sample_catalog.url + "/api/search?page=second")
    assert api.status_code == 422 and api.json()["detail"][0]["loc"] == ["query", "page"]
    assert api.json()["type"] == "RequestError" and api.headers["x-error-message"].startswith("page:")


def test_every_page_reports_its_server_time(sample_catalog):
    timing = get(sample_catalog, "/").headers["server-timing"]
    assert re.fullmatch(r'app;dur=\d+\.\d+, db;dur=\d+\.\d+;desc="[1-9]\d* queries"', timing)


def test_namespaces_that_would_hide_catalog_pages_are_refused(tmp_path):
    from zoo_core.registry.service import RegistryService

    service = RegistryService(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "README.md").write_text("draft")
    for name in ("plugins", "static", "compare", "api"):
        with pytest.raises(ZooError, match="reserved"):
            service.push_folder(tmp_path / "m", f"{name}/model", status="draft")


def test_card_html_escapes_raw_html_and_drops_script_links():
    meta, html = card_html("---\nlicense: mit\n---\n# Title\n\n<b onclick=x()>bold</b> <iframe src=//evil>\n\n"
                           "[a](javascript:alert(1)) [b](https://example.org) ![c](javascript:alert(2))\n")
    assert meta == {"license": "mit"}
    assert "<h2>Title</h2>" in html
    assert "<b" not in html and "&lt;b onclick=x()&gt;" in html and "<iframe" not in html
    assert 'href="javascript' not in html and 'src="javascript' not in html
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">b</a>' in html


def test_lineage_layout_of_fifty_versions_keeps_boxes_apart():
    """A family of 50: one root, 7 children each with 6 grandchildren; no two boxes overlap and every label fits."""
    nodes = [{"id": "torchvision:resnet50.IMAGENET1K_V2", "external": True, "depth": -1},
             {"id": "acme/root@1", "depth": 0, "strategy": "finetune"}]
    edges = [{"child": "acme/root@1", "parent": nodes[0]["id"], "relation": "finetune"}]
    for i in range(7):
        child = f"acme/a-rather-long-model-name-number-{i}@1"
        nodes.append({"id": child, "depth": 1, "strategy": "freeze"})
        edges.append({"child": child, "parent": "acme/root@1", "relation": "finetune"})
        for j in range(6):
            grandchild = f"acme/leaf-{i}-{j}@{j + 1}"
            nodes.append({"id": grandchild, "depth": 2, "strategy": "lora", "status": "yanked" if j == 5 else None})
            edges.append({"child": grandchild, "parent": child, "relation": "adapter"})
    assert len(nodes) == 51
    placed = layout({"root": "acme/root@1", "nodes": nodes, "edges": edges}, href=lambda ref: "/" + ref)
    boxes = [(n.x, n.y, n.x + placed.node_width, n.y + placed.node_height) for n in placed.nodes]
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[2] <= placed.width and a[1] >= 0 and a[3] <= placed.height
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert all(len(n.label) <= MAX_LABEL and len(n.detail) <= MAX_DETAIL for n in placed.nodes)
    assert len(placed.edges) == 50
    # children are grouped like their parents: the leaves' reading order (sub-column, then row) follows the parents'
    where = {n.id: (n.x, n.y) for n in placed.nodes}
    parents_order = sorted(range(7), key=lambda i: where[f"acme/a-rather-long-model-name-number-{i}@1"])
    leaves_order = sorted(range(7), key=lambda i: where[f"acme/leaf-{i}-0@1"])
    assert parents_order == leaves_order
    # 42 leaves wrap into sub-columns: the drawing stays about one screen tall
    assert placed.height < 1000 and len({x for x, _ in where.values()}) == 1 + 1 + 1 + 4


def test_every_answer_carries_the_security_headers(sample_catalog):
    """Pages, API answers, errors and downloads: nosniff, no framing, same-origin referrers; and on every page a
    policy that runs no script and loads no remote image (a card's tracking pixel never reaches its author)."""
    for path in ("/", f"/{sample_catalog.hostile}", "/plugins", "/nobody/nothing", "/api/models", "/static/zoo.css"):
        response = get(sample_catalog, path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY" and response.headers["referrer-policy"] == "same-origin"
        policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'none'" and policy["img-src"] == "'self' data:", path
        assert policy["frame-ancestors"] == "'none'"
    # /docs runs Swagger UI from the installed package: scripts from this server only, nothing from a CDN
    docs = get(sample_catalog, "/docs")
    policy = dict(part.strip().split(" ", 1) for part in docs.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sources and all(s.startswith("/docs/") for s in sources), sources
    for source in sources:
        assert get(sample_catalog, source).status_code == 200, source
    assert get(sample_catalog, "/redoc").status_code == 404  # it would load its script from a CDN: not served


def test_an_external_base_model_is_text_not_a_link_to_another_site(tmp_path, serve):
    """A card's `base_model` is free text: `\\evil.example@x` once became href="/\\evil.example/v/x", which
    browsers read as //evil.example/v/x. Only versions of this registry are linked."""
    from registry_server.web import version_link
    from tests.test_registry import CARD
    from zoo_core.registry.service import RegistryService

    assert version_link("acme/resnet@3") == "/acme/resnet/v/3"
    for text in ("\\evil.example@x", "\\\\evil.example/a@1", "//evil.example/a@1", "hf:bert-base-uncased",
                 "acme/resnet@latest", "javascript:alert(1)@1", None):
        assert version_link(text) is None, text
    root = tmp_path / "registry"
    service = RegistryService(f"sqlite:///{root / 'registry.db'}", root / "blobs")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "README.md").write_text(CARD.replace("license:", "base_model: \\evil.example@x\nlicense:", 1)
                                      .format(name="m", accuracy=0.9, tag="x"))
    (folder / "model.safetensors").write_bytes(b"w")
    service.push_folder(folder, "acme/external-parent")
    service.engine.dispose()
    page = get_url(serve(root) + "/acme/external-parent")
    links = [attrs.get("href") for tag, attrs in Tags(page).tags if tag == "a"]
    assert "<code>\\evil.example@x</code>" in page
    assert not [h for h in links if h and "evil" in h]


def get_url(url: str) -> str:
    response = httpx.get(url, headers=HTML, timeout=30)
    assert response.status_code == 200, response.text
    return response.text
