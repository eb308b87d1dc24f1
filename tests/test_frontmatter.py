"""Parsing one file: fields as the seeds carry them, and a named reason for each bad kind."""

import datetime as dt
from pathlib import Path

import pytest
from badfiles import BAD, GOOD
from conftest import SEEDS

from recommender.frontmatter import BadFile, iso_utc, parse_file, parse_text


def test_seed_file_fields():
    article = parse_file(next(SEEDS.glob("000_*.txt")))
    item = article.item
    assert item.title.startswith("Privacy rights groups call for")
    assert item.key == ("biometricupdate.com/202002/privacy-rights-groups-call-for-day-of-action"
                        "-to-ban-facial-recognition-at-all-schools")
    assert item.published == "2020-02-19T18:13:00Z"
    assert item.provider_name == "Biometric Companies"
    assert item.provider_domain == "biometricupdate.com"
    assert item.topics == ["AI", "Computer Vision"]
    assert item.image.endswith("Chincotech-facial-recognition.png")
    assert (item.quality, item.heat, item.type) == (31, -1, "article")
    assert [r.provider_name for r in article.related] == ["Fox News", "Cook County Record"]
    fox = article.related[0]
    assert set(fox.urls) == {"webUrl", "ampWebUrl", "cdnAmpWebUrl"}
    assert fox.aliases == (fox.key,)  # all three URL fields name one story


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_bad_kind_is_refused_with_its_reason(name, tmp_path):
    data, words = BAD[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BadFile) as err:
        parse_file(path)
    assert words in str(err.value)


def test_python_tag_never_runs(tmp_path):
    marker = Path("/tmp/pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "tag.md"
    path.write_bytes(BAD["python_tag.md"][0])
    with pytest.raises(BadFile):
        parse_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("field,value,words", [
    ("topics", '"AI"', "field 'topics' must be list"),
    ("quality", '"high"', "field 'quality' must be int"),
    ("provider", "[1, 2]", "field 'provider' must be dict"),
    ("publishedDateTime", '"yesterday"', "not an ISO 8601 date"),
])
def test_wrong_field_types_are_named(field, value, words):
    lines = [ln for ln in GOOD.splitlines() if not ln.startswith(f"{field}:")]
    text = "\n".join([lines[0], f"{field}: {value}", *lines[1:]]) + "\n"
    with pytest.raises(BadFile, match=words):
        parse_text(text)


def test_bad_related_item_names_its_position():
    text = GOOD.replace('  - title: "Its neighbour"\n', '  - excerpt: "no title"\n')
    with pytest.raises(BadFile, match=r"related\[0\] has no title"):
        parse_text(text)


def test_dates_normalise_to_utc():
    text = GOOD.replace("2021-03-01T10:00:00Z", '"2021-03-01T12:00:00+02:00"')
    assert parse_text(text).item.published == "2021-03-01T10:00:00Z"


@pytest.mark.parametrize("raw,want", [
    ("0845-11-03T22:53:52.20+23:52", "0845-11-02T23:01:52Z"),
    ("2021-03-01", "2021-03-01T00:00:00Z"),
    ("2021-03-01T10:00:00.999Z", "2021-03-01T10:00:00Z"),
])
def test_iso_utc_always_gives_parseable_four_digit_years(raw, want):
    assert iso_utc(raw) == want
    assert dt.datetime.fromisoformat(want.rstrip("Z"))


def test_dates_at_the_edge_of_the_calendar_are_refused_not_crashed():
    with pytest.raises(BadFile, match="out of range"):
        iso_utc("0001-01-01T00:00:00+05:00")


def test_anchors_that_do_not_explode_are_fine():
    text = GOOD.replace("---\n", "---\nbase: &b {k: v}\nother: *b\n", 1)
    assert parse_text(text).item.title == "A good article"
