"""Safe user text: bio Markdown, plain fields, markup detection, intro videos, languages, slugs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from marketplace.tutors.text import (
    BIO_ALLOWED_TAGS,
    BIO_LINK_REL,
    MAX_BIO_LENGTH,
    MAX_SLUG_LENGTH,
    MAX_VIDEO_URL_LENGTH,
    IntroVideo,
    TextError,
    contains_markup,
    is_language_code,
    language_choices,
    language_name,
    parse_intro_video,
    plain_text,
    render_bio,
    sanitize_bio_html,
    slugify,
    unique_slug,
)

REL = f'rel="{BIO_LINK_REL}"'


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def tags_of(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = TagCollector()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_safe_bio_html(html: str) -> None:
    assert "<script" not in html.lower()
    for tag, attrs in tags_of(html):
        assert tag in BIO_ALLOWED_TAGS, tag
        for name, value in attrs:
            assert not name.startswith("on"), name
            assert name in {"href", "rel", "start"}, name
            if name == "href":
                assert re.match(r"(https?://|mailto:)", value or "", re.IGNORECASE), value
                assert "javascript:" not in (value or "").lower()
            if name == "rel":
                assert value == BIO_LINK_REL
    assert sanitize_bio_html(html) == html  # already clean: sanitising again changes nothing


# ---- bio -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
        "<style>body{display:none}</style>",
        '<iframe src="https://evil.example"></iframe>',
        "<img src=x onerror=alert(1)>",
        '<a href="https://ok.example" onclick="alert(1)" target="_blank">x</a>',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java\tscript:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](vbscript:msgbox(1))",
        "<javascript:alert(1)>",
        "![x](https://evil.example/tracker.png)",
        '<svg onload="alert(1)">',
        "<!-- <script>alert(1)</script> -->",
        "[x](//evil.example/protocol-relative)",
        "[x](/relative/path)",
    ],
)
def test_bio_neutralises_scripts_styles_frames_images_handlers_and_bad_urls(attack: str) -> None:
    html = render_bio(f"Hello {attack} bye")
    assert_safe_bio_html(html)
    lowered = html.lower()
    for forbidden in ("<script", "<style", "<iframe", "<img", "<svg"):  # "<" in text is always escaped
        assert forbidden not in lowered
    for _, attrs in tags_of(html):
        assert {name for name, _ in attrs} <= {"href", "rel"}  # no on* handlers, no target
    assert 'href="javascript' not in lowered and 'href="data' not in lowered and 'href="vbscript' not in lowered


def test_raw_html_in_a_bio_is_shown_as_text() -> None:
    assert render_bio("I <b>love</b> jazz") == "<p>I &lt;b&gt;love&lt;/b&gt; jazz</p>"


def test_bio_formatting_survives() -> None:
    html = render_bio(
        "# About me\n"
        "### Teaching\n"
        "I play **cello** and *piano*.\n"
        "Second line.\n\n"
        "- beginners\n- advanced\n\n"
        "3. scales\n4. etudes\n\n"
        "See [my site](https://cello.example/about?a=1&b=2) or <mailto:me@cello.example>."
    )
    assert "<h3>About me</h3>" in html
    assert "<h4>Teaching</h4>" in html
    assert "<strong>cello</strong>" in html and "<em>piano</em>" in html
    assert "<br>\nSecond line." in html
    assert "<ul>\n<li>beginners</li>\n<li>advanced</li>\n</ul>" in html
    assert '<ol start="3">' in html
    assert f'<a href="https://cello.example/about?a=1&amp;b=2" {REL}>my site</a>' in html
    assert f'<a href="mailto:me@cello.example" {REL}>mailto:me@cello.example</a>' in html
    assert_safe_bio_html(html)


def test_every_bio_link_gets_rel_and_no_target() -> None:
    html = render_bio("[a](https://a.example) [b](http://b.example) <https://c.example>")
    links = [attrs for tag, attrs in tags_of(html) if tag == "a"]
    assert len(links) == 3
    for attrs in links:
        assert dict(attrs)["rel"] == BIO_LINK_REL
        assert "target" not in dict(attrs)


def test_bio_is_markup_and_empty_input_renders_nothing() -> None:
    assert isinstance(render_bio("hi"), Markup)
    assert render_bio("") == render_bio("  \n\n ") == ""


def test_bio_length_is_limited() -> None:
    assert render_bio("x" * MAX_BIO_LENGTH)
    with pytest.raises(TextError) as info:
        render_bio("x" * (MAX_BIO_LENGTH + 1))
    assert info.value.code == "too_long"
    assert info.value.params == {"max_length": MAX_BIO_LENGTH, "length": MAX_BIO_LENGTH + 1}


def test_bio_drops_control_and_bidi_override_characters() -> None:
    assert render_bio("a\x00b\x1bc \u202eevil\u202c") == "<p>abc evil</p>"


DANGEROUS_PIECES = [
    "<script>",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "[x](javascript:alert(1))",
    "[x](",
    "](",
    ")",
    "<",
    ">",
    "&",
    "&lt;",
    '"',
    "'",
    "`",
    "*",
    "**",
    "_",
    "- ",
    "1. ",
    "# ",
    "\n",
    "\n\n",
    "    ",
    " onmouseover=alert(1) ",
    "data:text/html,<script>alert(1)</script>",
    "<a href=",
    "https://ok.example",
    '<https://ok.example/x"onclick=alert(1)>',
    "\\",
    "&#106;avascript:",
    "<!--",
    "-->",
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(DANGEROUS_PIECES), st.text(max_size=20)), max_size=30).map("".join))
def test_rendered_bio_is_always_safe(text: str) -> None:
    html = render_bio(text[:MAX_BIO_LENGTH])
    assert_safe_bio_html(html)
    for tag in re.findall(r"<[^>]*>", html):
        assert not re.search(r"\son\w+\s*=", tag)
        assert "javascript:" not in tag.lower()


# ---- plain text and markup detection -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Jazz   piano\tteacher \n", "Jazz piano teacher"),
        ("Cafe\u0301", "Café"),  # NFC
        ("a\x00b\x07c\x1bd", "abcd"),
        ("evil\u202eexe.txt", "evilexe.txt"),
        ("zero\u200bwidth", "zerowidth"),
        ("line\u2028break\u00a0nbsp", "line break nbsp"),
        ("👩\u200d🎤 singer", "👩\u200d🎤 singer"),  # ZWJ emoji sequences stay
        ("I <3 music & <b>you</b>", "I <3 music & <b>you</b>"),  # kept: templates escape
        ("lone \ud800 surrogate", "lone surrogate"),
        ("", ""),
    ],
)
def test_plain_text_normalises(value: str, expected: str) -> None:
    assert plain_text(value, max_length=100) == expected


def test_plain_text_multiline_keeps_paragraphs() -> None:
    assert plain_text(" a \r\n b\n\n\n\n  c  d \n\n", max_length=100, multiline=True) == "a\nb\n\nc d"


def test_plain_text_length_is_checked_after_normalising() -> None:
    assert plain_text("  " + "x" * 10 + "  ", max_length=10) == "x" * 10
    with pytest.raises(TextError) as info:
        plain_text("x" * 11, max_length=10)
    assert (info.value.code, info.value.params) == ("too_long", {"max_length": 10, "length": 11})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<b>hi</b>", True),
        ("<script", True),
        ("</p>", True),
        ("<!-- x -->", True),
        ("<?php", True),
        ("Rock &amp; Roll", True),
        ("&#60;script", True),
        ("&#x3c;", True),
        ("I <3 music", False),
        ("a < b > c", False),
        ("Tom & Jerry", False),
        ("&nbsp;", True),
        ("AT&T; rates", False),  # no one-letter character references exist
        ("plain", False),
    ],
)
def test_contains_markup(value: str, expected: bool) -> None:
    assert contains_markup(value) is expected


# ---- intro videos --------------------------------------------------------------------------

YT = "dQw4w9WgXcQ"


def youtube(video_id: str = YT) -> IntroVideo:
    return IntroVideo(
        provider="youtube",
        video_id=video_id,
        embed_url=f"https://www.youtube-nocookie.com/embed/{video_id}",
        watch_url=f"https://www.youtube.com/watch?v={video_id}",
    )


def vimeo(video_id: str, video_hash: str | None = None) -> IntroVideo:
    suffix = f"&h={video_hash}" if video_hash else ""
    return IntroVideo(
        provider="vimeo",
        video_id=video_id,
        embed_url=f"https://player.vimeo.com/video/{video_id}?dnt=1{suffix}",
        watch_url=f"https://vimeo.com/{video_id}" + (f"/{video_hash}" if video_hash else ""),
        vimeo_hash=video_hash,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://www.youtube.com/watch?v={YT}", youtube()),
        (f"https://youtube.com/watch?v={YT}&t=42s&list=PL123", youtube()),
        (f"https://m.youtube.com/watch?feature=share&v={YT}", youtube()),
        (f"https://youtu.be/{YT}", youtube()),
        (f"https://youtu.be/{YT}?si=AbCdEf123", youtube()),
        (f"https://www.youtube.com/embed/{YT}", youtube()),
        (f"https://www.youtube-nocookie.com/embed/{YT}?rel=0", youtube()),
        (f"https://www.youtube.com/shorts/{YT}", youtube()),
        (f"https://www.youtube.com/live/{YT}", youtube()),
        (f"  www.youtube.com/watch?v={YT}  ", youtube()),
        (f"youtu.be/{YT}", youtube()),
        (f"HTTPS://WWW.YOUTUBE.COM/watch?v={YT}", youtube()),
        ("https://www.youtube.com/watch?v=jNQXAC9IVRw", youtube("jNQXAC9IVRw")),
        ("https://youtu.be/M7lc1UVf-VE", youtube("M7lc1UVf-VE")),
        ("https://vimeo.com/76979871", vimeo("76979871")),
        ("https://www.vimeo.com/76979871/", vimeo("76979871")),
        ("https://vimeo.com/76979871/0123456789", vimeo("76979871", "0123456789")),
        ("https://vimeo.com/channels/staffpicks/76979871", vimeo("76979871")),
        ("https://player.vimeo.com/video/76979871", vimeo("76979871")),
        ("https://player.vimeo.com/video/76979871?h=abcdef0123&badge=0", vimeo("76979871", "abcdef0123")),
        ("", None),
        ("   ", None),
    ],
)
def test_accepted_video_urls(url: str, expected: IntroVideo | None) -> None:
    assert parse_intro_video(url) == expected


@pytest.mark.parametrize(
    ("url", "code"),
    [
        (f"http://www.youtube.com/watch?v={YT}", "invalid_url"),
        (f"ftp://youtube.com/watch?v={YT}", "invalid_url"),
        ("javascript:alert(1)//youtube.com", "invalid_url"),
        (f"javascript://youtube.com/watch?v={YT}", "invalid_url"),
        (f"data:text/html,youtube.com/watch?v={YT}", "invalid_url"),
        (f"//youtube.com/watch?v={YT}", "invalid_url"),
        (f"https://user:pw@youtube.com/watch?v={YT}", "invalid_url"),
        (f"https://youtube.com@evil.example/watch?v={YT}", "invalid_url"),
        (f"https://youtube.com:8443/watch?v={YT}", "invalid_url"),
        (f"https://evil.example\\@youtube.com/watch?v={YT}", "invalid_url"),
        (f"https://www.youtube.com/watch?v={YT} extra", "invalid_url"),
        (f"https://www.yout\u00fcbe.com/watch?v={YT}", "invalid_url"),
        ("https://youtube.com/watch?v=" + "a" * MAX_VIDEO_URL_LENGTH, "too_long"),
        (f"https://youtube.com.evil.example/watch?v={YT}", "unsupported_video_host"),
        (f"https://evil.example/youtube.com/watch?v={YT}", "unsupported_video_host"),
        (f"https://evilyoutube.com/watch?v={YT}", "unsupported_video_host"),
        (f"https://youtube.com./watch?v={YT}", "unsupported_video_host"),
        ("https://vimeo.com.evil.example/76979871", "unsupported_video_host"),
        ("https://dailymotion.com/video/x7tgad0", "unsupported_video_host"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXc", "no_video_id"),  # 10 characters
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQQ", "no_video_id"),  # 12 characters
        ("https://www.youtube.com/watch?v=dQw4w9WgXcR", "no_video_id"),  # impossible last character
        (f"https://www.youtube.com/watch?v={YT}&v={YT}", "no_video_id"),
        ("https://www.youtube.com/watch?v=<script>xx", "no_video_id"),
        ("https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs", "no_video_id"),
        (f"https://www.youtube.com/embed/{YT}/extra", "no_video_id"),
        ("https://www.youtube.com/@somechannel", "no_video_id"),
        ("https://youtu.be/", "no_video_id"),
        ("https://vimeo.com/0123", "no_video_id"),
        ("https://vimeo.com/abc", "no_video_id"),
        ("https://vimeo.com/76979871/not-a-hash", "no_video_id"),
        ("https://player.vimeo.com/video/76979871?h=<script>", "no_video_id"),
        ("https://vimeo.com/1234567890123", "no_video_id"),
    ],
)
def test_refused_video_urls(url: str, code: str) -> None:
    with pytest.raises(TextError) as info:
        parse_intro_video(url)
    assert info.value.code == code


def test_watch_url_parses_back_to_the_same_video() -> None:
    for url in (f"https://youtu.be/{YT}", "https://player.vimeo.com/video/76979871?h=abcdef0123"):
        video = parse_intro_video(url)
        assert video is not None
        assert parse_intro_video(video.watch_url) == video


# ---- languages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "locale", "name"),
    [
        ("es", "de", "Spanisch"),
        ("es", "en", "Spanish"),
        ("de", "en", "German"),
        ("de", "de", "Deutsch"),
        ("ja", "de", "Japanisch"),
        ("en", "de_DE", "Englisch"),
        ("en", "de-AT", "Englisch"),
        ("fr", "xx-unknown", "French"),  # unknown locale: English
    ],
)
def test_language_names(code: str, locale: str, name: str) -> None:
    assert language_name(code, locale) == name


@pytest.mark.parametrize(
    ("code", "valid"),
    [("es", True), ("zh", True), ("ES", False), ("spa", False), ("es_MX", False), ("", False), ("zz", False)],
)
def test_is_language_code(code: str, valid: bool) -> None:
    assert is_language_code(code) is valid


def test_unknown_language_code_is_refused() -> None:
    with pytest.raises(TextError) as info:
        language_name("xx", "en")
    assert (info.value.code, info.value.params) == ("unknown_language", {"code": "xx"})


def test_language_choices_are_sorted_by_localised_name() -> None:
    choices = language_choices("de")
    assert ("es", "Spanisch") in choices
    names = [name for _, name in choices]
    assert names.index("Arabisch") < names.index("Deutsch") < names.index("Englisch")
    assert all(is_language_code(code) for code, _ in choices)
    assert len(choices) > 150


# ---- slugs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "slug"),
    [
        ("Zoë Müller-Łukasz", "zoe-muller-lukasz"),
        ("Ørjan Ærø", "orjan-aero"),
        ("Straße", "strasse"),
        ("GROSSE ẞ", "grosse-ss"),
        ("Œuvre Þórður Đorđe", "oeuvre-thordur-dorde"),
        ("François O'Brien", "francois-obrien"),
        ("  --Jazz & Blues!!  ", "jazz-blues"),
        ("Ｆｕｌｌｗｉｄｔｈ ﬁddle", "fullwidth-fiddle"),
        ("Piano 101", "piano-101"),
        ("🎸🎹", "tutor"),
        ("Анна", "tutor"),
        ("", "tutor"),
    ],
)
def test_slugify(value: str, slug: str) -> None:
    assert slugify(value) == slug


def test_long_slugs_are_cut_at_a_word_boundary() -> None:
    slug = slugify("Classical and romantic piano repertoire for ambitious adult beginners in Berlin")
    assert len(slug) <= MAX_SLUG_LENGTH
    assert slug == "classical-and-romantic-piano-repertoire-for-ambitious-adult"
    assert slugify("x" * 100) == "x" * MAX_SLUG_LENGTH


def test_slug_fallback_is_configurable_and_must_be_a_slug() -> None:
    assert slugify("🎻", fallback="course") == "course"
    with pytest.raises(ValueError, match="fallback"):
        slugify("🎻", fallback="Not A Slug")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_slugs_are_always_short_nonempty_ascii_and_stable(value: str) -> None:
    slug = slugify(value)
    assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", slug)
    assert len(slug) <= MAX_SLUG_LENGTH
    assert slugify(slug) == slug


def test_unique_slug_appends_numbers() -> None:
    taken = {"zoe-muller", "zoe-muller-2"}
    assert unique_slug("Zoë Müller", taken.__contains__) == "zoe-muller-3"
    assert unique_slug("Anna", taken.__contains__) == "anna"


def test_unique_slug_keeps_the_length_limit_with_a_suffix() -> None:
    base = "a" * MAX_SLUG_LENGTH
    slug = unique_slug(base, {base}.__contains__)
    assert slug == "a" * (MAX_SLUG_LENGTH - 2) + "-2"


def test_unique_slug_falls_back_to_random_suffixes_then_gives_up() -> None:
    calls = count()
    sequential = {"anna", *(f"anna-{n}" for n in range(2, 102))}
    slug = unique_slug("Anna", lambda s: next(calls) >= 0 and s in sequential)
    assert re.fullmatch(r"anna-[0-9a-f]{6}", slug)
    with pytest.raises(TextError) as info:
        unique_slug("Anna", lambda s: True)
    assert (info.value.code, info.value.params) == ("slug_unavailable", {"slug": "anna"})


def test_text_error_carries_a_stable_code_and_parameters() -> None:
    error = TextError("too_long", max_length=5, length=6)
    assert (error.code, error.params, str(error)) == (
        "too_long",
        {"max_length": 5, "length": 6},
        "too_long (max_length=5, length=6)",
    )
