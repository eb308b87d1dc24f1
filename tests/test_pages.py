"""The pages through the test client: status codes and escaping without a browser."""


def test_pages_render(client):
    assert client.get("/").status_code == 200
    assert client.get("/stories?q=facial").status_code == 200
    r = client.get("/?title=Facial+recognition+in+schools")
    assert r.status_code == 200 and b"Related to:" in r.data


def test_page_errors_are_pages_with_status(client):
    r = client.get("/?url=https://nowhere.example/x")
    assert r.status_code == 404 and b"no story in the catalog" in r.data
    r = client.get("/?title=x&k=500")
    assert r.status_code == 400 and b"k must be an integer" in r.data


def test_evaluation_without_a_report_says_how_to_make_one(seeds_catalog, seeds_models, tmp_path):
    from service import create_app

    client = create_app({"CATALOG": str(seeds_catalog), "MODELS": str(seeds_models),
                         "INSTANCE": str(tmp_path)}).test_client()
    r = client.get("/evaluation")
    assert r.status_code == 404 and b"recommender evaluate" in r.data
    assert client.get("/evaluation/recall.png").status_code == 404


def test_evaluation_with_no_catalog_says_so(tmp_path):
    from recommender.report import write_report
    from service import create_app

    report = {"counts": {"stories": 1, "queries": 2, "test_queries": 1},
              "protocol": {"test_fraction": 0.2}, "queries": [
                  {"id": 1, "curated": [2], "ours": [2], "recall@10": 1.0}],
              "model": {"recall_curve": [1.0]}, "baseline": {"recall_curve": [0.5]}}
    write_report(report, tmp_path / "evaluation")
    client = create_app({"CATALOG": str(tmp_path / "missing.sqlite3"),
                         "MODELS": str(tmp_path / "models"), "INSTANCE": str(tmp_path)}
                        ).test_client()
    r = client.get("/evaluation")
    assert r.status_code == 503 and b"no catalog at" in r.data


def test_links_to_a_preview_keep_deduplication_on(client):
    r = client.get("/stories?q=facial")
    assert b"dedupe=true" in r.data
    r = client.get("/?title=facial+recognition")
    assert b'name="dedupe" type="checkbox" value="true" checked' not in r.data  # submitted off
    assert b"dedupe=true" in r.data


def test_pasted_markup_is_escaped(client):
    r = client.get("/", query_string={"title": "<script>alert(1)</script>"})
    assert b"<script>alert(1)</script>" not in r.data
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in r.data
