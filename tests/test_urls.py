"""URL identity: every variant a page or a curated list may carry names one story."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.urls import InvalidURL, canonical_url, is_web_url, web_url

FOX = "https://www.foxnews.com/us/new-facial-recognition-app-promises-to-solve-crimes"


@pytest.mark.parametrize("variant", [
    FOX,
    FOX + "/",
    FOX + ".amp",
    FOX + "/amp",
    FOX + "/amp/",
    "http://foxnews.com/us/new-facial-recognition-app-promises-to-solve-crimes",
    "HTTPS://WWW.FOXNEWS.COM/us/new-facial-recognition-app-promises-to-solve-crimes",
    FOX + "#comments",
    FOX + "?utm_source=twitter&UTM_Medium=social&fbclid=abc&ocid=x&itm_campaign=y",
    FOX + "?CMPID=a&mod=b&partnerref=c&feedref=d&refsec=e&ref=f&source=g&admgarea=h&tc=i"
          "&taid=j&topicPageSponsorship=k&useSponsorshipSuggestions=l&gclid=m",
    "https://www-foxnews-com.cdn.ampproject.org/c/s/www.foxnews.com/us/"
    "new-facial-recognition-app-promises-to-solve-crimes.amp",
    "https://www.foxnews.com:443/us/new-facial-recognition-app-promises-to-solve-crimes",
])
def test_variants_share_one_key(variant):
    want = "foxnews.com/us/new-facial-recognition-app-promises-to-solve-crimes"
    assert canonical_url(variant) == want


def test_meaningful_query_parameters_are_kept_and_sorted():
    a = canonical_url("https://example.com/watch?v=42&list=7&utm_source=x")
    b = canonical_url("https://example.com/watch?list=7&v=42")
    assert a == b == "example.com/watch?list=7&v=42"
    assert canonical_url("https://example.com/watch?v=43") != a


def test_path_case_is_significant_but_host_case_is_not():
    assert canonical_url("https://Example.COM/A") == "example.com/A"
    assert canonical_url("https://example.com/A") != canonical_url("https://example.com/a")


def test_amp_inside_a_word_is_not_stripped():
    assert canonical_url("https://example.com/news/camp") == "example.com/news/camp"
    assert canonical_url("https://example.com/ex.ample") == "example.com/ex.ample"


@pytest.mark.parametrize("bad", ["", "   ", "not a url", "https:///path-only", 42])
def test_text_without_a_host_is_refused(bad):
    with pytest.raises(InvalidURL):
        canonical_url(bad)


def _accepted(url: object) -> bool:
    try:
        web_url(url)  # type: ignore[arg-type]
    except InvalidURL:
        return False
    return True


@given(st.one_of(
    st.from_regex(r"\A(https?|javascript|data|file|HTTP)?:?/{0,3}[a-z0-9.\-:@ ]{0,12}"
                  r"(/[\x00-\x7f\u2028\u00e9]{0,12})?\Z"),
    st.text(max_size=30)))
@settings(max_examples=400, deadline=None)
def test_the_fast_check_of_an_emitted_url_agrees_with_the_full_rule(url):
    """Answers check a score of URLs each through a fast path for the common shape; it must
    accept nothing the full rule refuses (javascript:, control characters, no host...)."""
    assert is_web_url(url) == _accepted(url)
