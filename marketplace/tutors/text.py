"""Safe handling of what tutors write: bios, short fields, intro-video links, languages, slugs.

Pure functions, no I/O. Refusals raise :class:`TextError` with a stable ``code`` and parameters;
the web layer maps codes to translated messages (no user-facing text lives here).

Codes: ``too_long`` (max_length, length), ``invalid_url``, ``unsupported_video_host`` (host),
``no_video_id``, ``unknown_language`` (code), ``slug_unavailable`` (slug).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import nh3
from babel import Locale, UnknownLocaleError
from markdown_it import MarkdownIt
from markupsafe import Markup

from marketplace.errors import CodedError

__all__ = [
    "BIO_ALLOWED_TAGS",
    "BIO_LINK_REL",
    "MAX_BIO_LENGTH",
    "MAX_SLUG_LENGTH",
    "MAX_VIDEO_URL_LENGTH",
    "IntroVideo",
    "TextError",
    "contains_markup",
    "is_language_code",
    "language_choices",
    "language_name",
    "parse_intro_video",
    "plain_text",
    "render_bio",
    "sanitize_bio_html",
    "slugify",
    "unique_slug",
]


class TextError(CodedError):
    """Refused user text. ``code`` is stable; ``params`` feed the translated message."""


# ---- cleaning ------------------------------------------------------------------------------

# Invisible characters that only serve to spoof or hide text: bidi embeddings, overrides and
# isolates ("Trojan Source"), zero-width space, word joiner, BOM, Mongolian vowel separator.
# ZWJ/ZWNJ (emoji sequences, Persian and Indic scripts) and LRM/RLM stay.
_INVISIBLE = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u2060\ufeff\u180e")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")


def _clean_chars(value: str, *, keep_newlines: bool) -> str:
    """NFC; line breaks to ``\\n`` (or a space), tabs to spaces, other controls and lone surrogates dropped."""
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n"))
    out: list[str] = []
    for ch in value:
        if ch in _LINE_BREAKS:
            out.append("\n" if keep_newlines else " ")
        elif ch == "\t":
            out.append(" ")
        elif ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Cs"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def _check_length(value: str, max_length: int) -> str:
    if len(value) > max_length:
        raise TextError("too_long", max_length=max_length, length=len(value))
    return value


def plain_text(value: str, *, max_length: int, multiline: bool = False) -> str:
    """Normalise a short user field (headline, name, ...) or, with ``multiline``, a plain message.

    NFC; control and invisible spoofing characters removed; whitespace runs collapse to one space
    and the ends are trimmed. With ``multiline`` line breaks stay, at most one blank line in a row.
    The length (code points) is checked after normalisation. Angle brackets are kept: templates
    escape; use :func:`contains_markup` to refuse HTML-looking input where that matters.
    """
    text = _clean_chars(value, keep_newlines=multiline)
    if multiline:
        lines = [" ".join(line.split()) for line in text.split("\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    else:
        text = " ".join(text.split())
    return _check_length(text, max_length)


# "<" followed by a letter, "/", "!" or "?" opens a tag, comment or declaration in the HTML
# tokenizer; "&name;" and "&#..;" are character references. "I <3 music" and "a < b" pass.
_MARKUP = re.compile(r"<[A-Za-z/!?]|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def contains_markup(value: str) -> bool:
    """True when ``value`` looks like HTML (a tag, comment, declaration or character reference)."""
    return bool(_MARKUP.search(value))


# ---- bio: a small Markdown subset, sanitised ------------------------------------------------

MAX_BIO_LENGTH = 5000
BIO_ALLOWED_TAGS = frozenset({"p", "br", "strong", "em", "ul", "ol", "li", "a", "h3", "h4"})
BIO_LINK_REL = "nofollow noopener noreferrer ugc"
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_ABSOLUTE_LINK = re.compile(r"^(?:https?://[^/?#\s]+|mailto:[^\s]+)", re.IGNORECASE)


def _link_allowed(url: str) -> bool:
    return bool(_ABSOLUTE_LINK.match(url.strip()))


def _build_markdown() -> MarkdownIt:
    # "zero" enables nothing but paragraphs and text; switch on exactly the subset we support.
    # Off on purpose: raw HTML, images, code blocks/fences, blockquotes, tables, rules,
    # setext headings and reference definitions.
    md = MarkdownIt("zero", {"html": False, "breaks": True, "linkify": False, "typographer": False})
    md.enable(["heading", "list", "emphasis", "link", "autolink", "newline", "escape", "entity"])
    md.validateLink = _link_allowed  # type: ignore[method-assign]  # absolute http(s) and mailto only
    return md


_MARKDOWN = _build_markdown()
_BIO_CLEANER = nh3.Cleaner(
    tags=set(BIO_ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={"a": {"href"}, "ol": {"start"}},
    url_schemes=set(_LINK_SCHEMES),
    url_relative="deny",
    link_rel=BIO_LINK_REL,
    strip_comments=True,
)
_HEADING_TAGS = {"h1": "h3", "h2": "h3", "h3": "h4", "h4": "h4", "h5": "h4", "h6": "h4"}


def render_bio(markdown_text: str) -> Markup:
    """Render a tutor bio: Markdown subset to sanitised HTML, safe to output unescaped.

    Supported: paragraphs, line breaks (a single newline is a ``<br>``), ``**bold**``,
    ``*italic*``, bullet and numbered lists, links to absolute http(s)/mailto URLs (others stay
    literal text) and headings (``#``/``##`` become ``h3``, deeper ones ``h4``: the page owns
    h1/h2). Raw HTML is shown as text. nh3 then enforces the tag/attribute/scheme allowlist and
    gives links ``rel="nofollow noopener noreferrer ugc"`` (no ``target``).
    """
    text = _check_length(_clean_chars(markdown_text, keep_newlines=True), MAX_BIO_LENGTH)
    if not text.strip():
        return Markup("")
    tokens = _MARKDOWN.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = _HEADING_TAGS[token.tag]
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return Markup(_BIO_CLEANER.clean(html).strip())  # noqa: S704  # sanitised by nh3 just above


def sanitize_bio_html(html: str) -> str:
    """The sanitiser step of :func:`render_bio` on its own (idempotent on its output)."""
    return _BIO_CLEANER.clean(html)


# ---- intro video ---------------------------------------------------------------------------

MAX_VIDEO_URL_LENGTH = 500

_YOUTUBE_HOSTS = frozenset(
    {"youtube.com", "www.youtube.com", "m.youtube.com", "youtube-nocookie.com", "www.youtube-nocookie.com"}
)
_YOUTU_BE_HOSTS = frozenset({"youtu.be"})
_VIMEO_HOSTS = frozenset({"vimeo.com", "www.vimeo.com"})
_VIMEO_PLAYER_HOSTS = frozenset({"player.vimeo.com"})

# A YouTube id is 64 bits in URL-safe base64: 11 characters, the last one carrying 4 bits.
_YOUTUBE_ID = r"[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]"
_YOUTUBE_ID_RE = re.compile(_YOUTUBE_ID)
_YOUTUBE_PATH = re.compile(rf"/(?:embed|shorts|live|v)/({_YOUTUBE_ID})/?")
_YOUTU_BE_PATH = re.compile(rf"/({_YOUTUBE_ID})/?")
_VIMEO_ID = r"[1-9][0-9]{0,11}"
_VIMEO_HASH = r"[0-9a-f]{10}"
_VIMEO_HASH_RE = re.compile(_VIMEO_HASH)
_VIMEO_PATH = re.compile(rf"/(?:channels/[A-Za-z0-9_-]{{1,64}}/)?({_VIMEO_ID})(?:/({_VIMEO_HASH}))?/?")
_VIMEO_PLAYER_PATH = re.compile(rf"/video/({_VIMEO_ID})/?")

_URL_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces or controls
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_BARE_HOST = re.compile(r"[A-Za-z0-9.-]+(?:[/?#]|$)")


@dataclass(frozen=True, slots=True)
class IntroVideo:
    """A recognised intro video.

    The profile page shows a click-to-load placeholder (our own markup, no thumbnail fetched from
    the provider) and inserts the ``embed_url`` iframe only when the visitor presses play (the
    template may add ``autoplay=1`` then), so no third-party request happens before consent.
    ``watch_url`` is the canonical link to show and to store: it parses back to the same value.
    """

    provider: Literal["youtube", "vimeo"]
    video_id: str
    embed_url: str
    watch_url: str
    vimeo_hash: str | None = None  # the privacy hash of an unlisted Vimeo video


def _youtube(video_id: str) -> IntroVideo:
    return IntroVideo(
        provider="youtube",
        video_id=video_id,
        embed_url=f"https://www.youtube-nocookie.com/embed/{video_id}",
        watch_url=f"https://www.youtube.com/watch?v={video_id}",
    )


def _vimeo(video_id: str, video_hash: str | None) -> IntroVideo:
    return IntroVideo(
        provider="vimeo",
        video_id=video_id,
        embed_url=f"https://player.vimeo.com/video/{video_id}?dnt=1" + (f"&h={video_hash}" if video_hash else ""),
        watch_url=f"https://vimeo.com/{video_id}" + (f"/{video_hash}" if video_hash else ""),
        vimeo_hash=video_hash,
    )


def _single_param(query: str, name: str) -> str | None:
    values = parse_qs(query, keep_blank_values=True).get(name, [])
    return values[0] if len(values) == 1 else None


def parse_intro_video(url: str) -> IntroVideo | None:
    """Recognise a YouTube or Vimeo link; ``None`` for an empty field, :class:`TextError` otherwise.

    Accepted: ``https://`` (or no scheme, taken as https) on exactly the known hosts, no user
    info, no port; YouTube ``/watch?v=ID``, ``youtu.be/ID``, ``/embed/ID``, ``/shorts/ID``,
    ``/live/ID``; Vimeo ``vimeo.com/ID``, ``vimeo.com/ID/HASH`` (unlisted),
    ``vimeo.com/channels/NAME/ID``, ``player.vimeo.com/video/ID[?h=HASH]``. Other query
    parameters (``t``, ``si``...) are ignored; the result is rebuilt from the id alone.
    """
    text = url.strip()
    if not text:
        return None
    _check_length(text, MAX_VIDEO_URL_LENGTH)
    if not _URL_CHARS.fullmatch(text) or "\\" in text:
        raise TextError("invalid_url")
    if not _HAS_SCHEME.match(text):
        if not _BARE_HOST.match(text):
            raise TextError("invalid_url")
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TextError("invalid_url") from exc
    if parts.scheme.lower() != "https" or "@" in parts.netloc or port is not None or not parts.hostname:
        raise TextError("invalid_url")
    host = parts.hostname  # already lower-case
    path = parts.path

    if host in _YOUTUBE_HOSTS:
        if path.rstrip("/") == "/watch":
            video_id = _single_param(parts.query, "v")
            if video_id and _YOUTUBE_ID_RE.fullmatch(video_id):
                return _youtube(video_id)
        elif match := _YOUTUBE_PATH.fullmatch(path):
            return _youtube(match.group(1))
        raise TextError("no_video_id")
    if host in _YOUTU_BE_HOSTS:
        if match := _YOUTU_BE_PATH.fullmatch(path):
            return _youtube(match.group(1))
        raise TextError("no_video_id")
    if host in _VIMEO_HOSTS:
        if match := _VIMEO_PATH.fullmatch(path):
            return _vimeo(match.group(1), match.group(2))
        raise TextError("no_video_id")
    if host in _VIMEO_PLAYER_HOSTS:
        if match := _VIMEO_PLAYER_PATH.fullmatch(path):
            video_hash = _single_param(parts.query, "h")
            if video_hash is not None and not _VIMEO_HASH_RE.fullmatch(video_hash):
                raise TextError("no_video_id")
            return _vimeo(match.group(1), video_hash)
        raise TextError("no_video_id")
    raise TextError("unsupported_video_host", host=host)


# ---- languages -----------------------------------------------------------------------------


@cache
def _babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


@cache
def _iso639_1_codes() -> frozenset[str]:
    """The two-letter (ISO 639-1) language codes CLDR has names for."""
    return frozenset(code for code in Locale.parse("en").languages if re.fullmatch(r"[a-z]{2}", code))


def is_language_code(code: str) -> bool:
    """True for a lower-case ISO 639-1 code known to CLDR ("es"; not "ES", "spa" or "es_MX")."""
    return isinstance(code, str) and code in _iso639_1_codes()


def language_name(code: str, locale: str) -> str:
    """The name of language ``code`` in ``locale`` (``language_name("es", "de") == "Spanisch"``).

    CLDR's form is kept, so some locales give lower case ("espagnol"); capitalise in the template
    where a label needs it. An unknown ``locale`` falls back to English.
    """
    if not is_language_code(code):
        raise TextError("unknown_language", code=code)
    return _babel_locale(locale).languages.get(code) or Locale.parse("en").languages[code]


@cache
def language_choices(locale: str) -> tuple[tuple[str, str], ...]:
    """All ISO 639-1 ``(code, name)`` pairs, sorted by name in ``locale``, for select boxes."""
    pairs = [(code, language_name(code, locale)) for code in _iso639_1_codes()]
    return tuple(sorted(pairs, key=lambda pair: (_sort_key(pair[1]), pair[0])))


def _sort_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# ---- slugs ---------------------------------------------------------------------------------

MAX_SLUG_LENGTH = 60
# Letters NFKD does not decompose into ASCII (applied after casefold, which already maps ß to ss).
_TRANSLITERATE = str.maketrans(
    {"æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "œ": "oe", "ı": "i", "ħ": "h", "ŧ": "t", "ĸ": "k"}
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def slugify(value: str, *, max_length: int = MAX_SLUG_LENGTH, fallback: str = "tutor") -> str:
    """A readable ASCII URL slug: ``"Zoë Müller-Łukasz"`` -> ``"zoe-muller-lukasz"``.

    Latin accents and ligatures are transliterated; other scripts and symbols are dropped, and
    when nothing is left the ``fallback`` is used, so the result is never empty. Long slugs are
    cut at a word boundary when one is near.
    """
    text = unicodedata.normalize("NFKC", value).casefold().translate(_TRANSLITERATE)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = text.replace("'", "").replace("\u2019", "")  # O'Brien -> obrien
    slug = _NOT_SLUG.sub("-", text).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        if slug[max_length] != "-" and "-" in cut and cut.rindex("-") >= max_length // 2:
            cut = cut[: cut.rindex("-")]
        slug = cut.strip("-")
    if slug:
        return slug
    if not _SLUG.fullmatch(fallback) or len(fallback) > max_length:
        raise ValueError(f"fallback must be a slug of at most {max_length} characters: {fallback!r}")
    return fallback


def _with_suffix(slug: str, suffix: str, max_length: int) -> str:
    return slug[: max_length - len(suffix)].rstrip("-") + suffix


def unique_slug(
    base: str,
    taken: Callable[[str], bool],
    *,
    max_length: int = MAX_SLUG_LENGTH,
    fallback: str = "tutor",
    attempts: int = 100,
) -> str:
    """``slugify(base)``, else with ``-2``, ``-3``... until ``taken`` says no; then random suffixes.

    ``taken`` is a check (typically a query), so two concurrent sign-ups can still pick the same
    slug: the database's unique constraint is the final word, and the caller retries on conflict.
    """
    slug = slugify(base, max_length=max_length, fallback=fallback)
    if not taken(slug):
        return slug
    for number in range(2, attempts + 2):
        candidate = _with_suffix(slug, f"-{number}", max_length)
        if not taken(candidate):
            return candidate
    for _ in range(10):
        candidate = _with_suffix(slug, f"-{secrets.token_hex(3)}", max_length)
        if not taken(candidate):
            return candidate
    raise TextError("slug_unavailable", slug=slug)
