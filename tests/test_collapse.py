"""Syndicated copies and rewrites of one announcement collapse into one entry; titles in
every script keep keys of their own."""

from __future__ import annotations

import pytest

from recommender.catalog import Catalog
from recommender.collapse import title_key
from recommender.importer import import_paths
from recommender.training import train

AVS = [  # one announcement, four sites, three headlines, two days
    ("Microsoft announces next evolution of Azure VMware Solution", "Neowin", 0),
    ("Microsoft announces next generation of Azure VMware Solution", "ZDNet", 0),
    ("Microsoft unveils next-gen Azure VMware Solution", "The Register", 1),
    ("Microsoft announces the next evolution of Azure VMware Solution", "Petri", 1),
]
SCRIPTS = [  # four stories on four subjects, in four scripts
    "Облачные вычисления растут в России",
    "Η Microsoft επενδύει στην Ελλάδα με νέο κέντρο δεδομένων",
    "微软在日本开设新的数据中心区域",
    "مايكروسوفت تطلق خدمات سحابية جديدة في السعودية",
]
FILLER = ["Azure Arc adds Kubernetes management", "Azure SQL gets serverless tier",
          "VMware and Microsoft extend partnership", "Azure Stack HCI preview opens",
          "Windows Server 2022 reaches general availability", "Azure cost management update"]


LEAD = ("Azure VMware Solution now runs on new AV36P hosts in more regions, with VMware Cloud "
        "Foundation, hybrid migration tools and disaster recovery for enterprise customers "
        "moving vSphere workloads to the cloud without refactoring their applications")


def _file(folder, name, title, day, provider="Example", related=(), excerpt=None):
    items = "".join(f'\n  - title: "{t}"\n    webUrl: https://news.example/{u}\n'
                    f"    publishedDateTime: 2021-05-{d:02d}T10:00:00Z" for t, u, d in related)
    excerpt = excerpt or f"{title}. Details of the announcement for customers."
    (folder / f"{name}.md").write_text(
        f'---\ntitle: "{title}"\nexcerpt: "{excerpt}"\n'
        f'publishedDateTime: 2021-05-{day:02d}T10:00:00Z\n'
        f"webUrl: https://news.example/{name}\nprovider:\n  name: {provider}\n"
        + (f"related:{items}\n" if related else "") + "---\n")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from service import create_app

    folder = tmp_path_factory.mktemp("collapse")
    files = folder / "files"
    files.mkdir()
    for i, (title, provider, day) in enumerate(AVS):
        _file(files, f"avs{i}", title, 10 + day, provider, excerpt=LEAD)  # syndicated lead
    for i, title in enumerate(SCRIPTS):
        _file(files, f"script{i}", title, 12)
    for i, title in enumerate(FILLER):
        listed = [(FILLER[(i + 1) % len(FILLER)], f"filler{(i + 1) % len(FILLER)}", 3 + i),
                  (AVS[i % 4][0], f"avs{i % 4}", 10)]
        _file(files, f"filler{i}", title, 3 + i, related=listed)
    _file(files, "query", "Azure VMware Solution: what the next evolution brings", 11,
          related=[(FILLER[2], "filler2", 5)])
    location = folder / "catalog.sqlite3"
    with Catalog(location) as catalog:
        import_paths(catalog, [files], on_error=lambda p, r: pytest.fail(f"{p}: {r}"))
        train(catalog, folder / "models", params={"ranker__n_estimators": 20})
    app = create_app({"TESTING": True, "CATALOG": str(location),
                      "MODELS": str(folder / "models")})
    return app.test_client()


def test_copies_with_other_headlines_and_providers_collapse_into_one_entry(client):
    query = {"url": "https://news.example/query", "k": 20, "curated": "model"}
    apart = client.get("/v1/related", query_string={**query, "dedupe": "false"}).get_json()
    copies = {f"https://news.example/avs{i}" for i in range(4)}
    assert copies <= {r["url"] for r in apart["related"]}  # the test can fail
    together = client.get("/v1/related", query_string=query).get_json()["related"]
    entries = [r for r in together if r["url"] in copies]
    assert len(entries) == 1
    also = {a["url"] for a in entries[0]["also"]}
    assert also == copies - {entries[0]["url"]}
    assert {a["provider"] for a in entries[0]["also"]} | {entries[0]["provider"]} == \
        {p for _, p, _ in AVS}
    assert any("same announcement" in reason for reason in entries[0]["reasons"])
    assert len(together) > len([r for r in together if r["url"] in copies])


def test_titles_in_four_scripts_are_four_stories():
    keys = {title_key(t) for t in SCRIPTS}
    assert len(keys) == 4 and all(keys)
    assert title_key("Café  Déjà-Vu!") == title_key("cafe deja vu")


def test_stories_titled_in_other_scripts_are_not_dropped_as_duplicates(client):
    body = client.post("/v1/related", query_string={"k": 30}, json={
        "title": "Microsoft datacenter regions", "publishedDateTime": "2021-05-12T10:00:00Z",
        "excerpt": " ".join(SCRIPTS)}).get_json()
    urls = {r["url"] for r in body["related"]}
    assert {f"https://news.example/script{i}" for i in range(4)} <= urls
