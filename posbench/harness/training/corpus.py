"""The natural-text training corpus: English prose from Debian packages, rebuilt offline from pinned inputs.

Every input is one Debian package (bookworm) of public-domain books or of free documentation, pinned by version,
archive path, size and sha256 (`SOURCES`). The archive path is the same on every Debian mirror and on the snapshot
archive, so a user rebuilds the corpus byte for byte anywhere:

    python -m posbench.harness.training.corpus download --inputs DIR   # apt-get download, or --mirror URL
    python -m posbench.harness.training.corpus build --inputs DIR --out DATA/corpus/natural_v1
    python -m posbench.harness.training.corpus check --out DATA/corpus/natural_v1
    python -m posbench.harness.training.corpus stats --out DATA/corpus/natural_v1 --tokenizer TOKENIZER.json

Build: each package's data.tar.xz is read in Python (no dpkg needed); the members a source names are turned into
documents by its format's extractor (reStructuredText, HTML, POD, AsciiDoc, SWORD OSIS modules); then
deterministic cleaning (`clean_document`): Unicode NFC, markup already stripped, paragraphs that are mostly not
words (code, tables, ASCII art) dropped, paragraphs seen before anywhere in the corpus dropped (licence notices,
repeated boilerplate: every token counted is unique text), documents under MIN_DOC_CHARS dropped. Splits are per
document by a hash of its id: about 1% validation, 1% test, the rest train. Outputs (gzip without timestamps, so
two builds are byte-identical): train/validation/test.jsonl.gz with {"id", "source", "text"} per line, and
manifest.json (inputs with their sha256, per-source and per-split counts, outputs' sha256).
"""
import argparse
import dataclasses
import fnmatch
import gzip
import hashlib
import html
import html.parser
import io
import json
import lzma
import os
import re
import struct
import subprocess
import sys
import tarfile
import unicodedata
import urllib.request
import zlib
from pathlib import Path

CORPUS_NAME = "natural_v1"
CLEANING_VERSION = 1
MIN_DOC_CHARS = 400          # shorter documents (stubs, index pages) are dropped
MIN_WORD_SHARE = 0.75        # a paragraph keeps only if this share of its characters are letters, spaces, punctuation
SPLITS = (("validation", 10), ("test", 10))   # per-mille of documents; the rest is train


class CorpusError(ValueError):
    """A corpus input or output is missing or does not match its recorded size/sha256 (a user error)."""


@dataclasses.dataclass(frozen=True)
class CorpusSource:
    name: str             # short name, also the "source" field of every document
    package: str          # Debian package and exact version
    version: str
    archive_path: str     # path under any Debian mirror (or snapshot) root
    size: int
    sha256: str
    licence: str
    kind: str             # book | documentation
    format: str           # rst | html | pod | asciidoc | sword: which extractor reads the members
    members: tuple        # fnmatch patterns of data.tar members to read
    exclude: tuple = ()   # fnmatch patterns of members to skip
    note: str = ""

    @property
    def filename(self) -> str:
        return self.archive_path.rsplit("/", 1)[1]

    @property
    def url(self) -> str:
        """A mirror-independent URL: `debian:` + the archive path (see `download`)."""
        return f"debian:{self.archive_path}"


def _src(name, package, version, path, size, sha256, licence, kind, fmt, members, exclude=(), note=""):
    return CorpusSource(name, package, version, path, size, sha256, licence, kind, fmt, tuple(members),
                        tuple(exclude), note)


DOC = "usr/share/doc"
SWORD = "usr/share/sword/modules"
SOURCES = (
    # public-domain books (19th-century English prose and the World English Bible)
    _src("treasury_of_david", "sword-comm-tdavid", "2.1-1",
         "pool/main/s/sword-comm-tdavid/sword-comm-tdavid_2.1-1_all.deb",
         5148904, "bcbfad701c5c4a061475b58309cebc42755a59e87478c8355227c5e046412b3f", "public domain", "book", "sword",
         [f"{SWORD}/comments/zcom/tdavid/*.czs"], note="C. H. Spurgeon, The Treasury of David (1869-1885)"),
    _src("henry_concise", "sword-comm-mhcc", "2.0-1", "pool/main/s/sword-comm-mhcc/sword-comm-mhcc_2.0-1_all.deb",
         1782348, "06f748215de78ff48fdfdee93e3ffc5af6318b976485f7aedf22309236967e35", "public domain", "book", "sword",
         [f"{SWORD}/comments/zcom/mhcc/*.bzs"], note="Matthew Henry, Concise Commentary (1706-1721)"),
    _src("scofield_notes", "sword-comm-scofield", "2.1-1",
         "pool/main/s/sword-comm-scofield/sword-comm-scofield_2.1-1_all.deb",
         487216, "0c11a9533d4870ec40cc72792ecde8aae6e4cc00eca12301150aac018fd5dfcb", "public domain", "book", "sword",
         [f"{SWORD}/comments/zcom/scofield/*.bzs"], note="Scofield Reference Notes (1917)"),
    _src("world_english_bible", "sword-text-web", "426.0-1",
         "pool/main/s/sword-text-web/sword-text-web_426.0-1_all.deb",
         3956428, "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1", "public domain", "book", "sword",
         [f"{SWORD}/texts/ztext/engWEB2015eb/*.bzs"], note="World English Bible (2015 edition), footnotes dropped"),
    _src("king_james_bible", "sword-text-kjv", "14.3-1", "pool/main/s/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
         2800476, "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57", "public domain", "book", "sword",
         [f"{SWORD}/texts/ztext/engKJV2006eb/*.bzs"], note="King James Version (1769 text)"),
    # free documentation: technical English prose
    _src("linux_docs", "linux-doc-6.1", "6.1.192-3", "pool/updates/main/l/linux/linux-doc-6.1_6.1.192-3_all.deb",
         37346428, "f18dfe28dcab7bdbf9185be16b9521f5841277a6a96c374a6683a648d5d5fa4f", "GPL-2.0", "documentation",
         "rst", [f"{DOC}/linux-doc-6.1/Documentation/*.rst.gz", f"{DOC}/linux-doc-6.1/Documentation/*.txt.gz"],
         exclude=["*/Documentation/translations/*", "*/Documentation/devicetree/*", "*/Documentation/ABI/*",
                  "*/Documentation/output/*"], note="Linux kernel Documentation/ sources (English only)"),
    _src("python_docs", "python3.11-doc", "3.11.2-6+deb12u9",
         "pool/updates/main/p/python3.11/python3.11-doc_3.11.2-6+deb12u9_all.deb",
         12644000, "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be", "PSF-2.0", "documentation",
         "rst", [f"{DOC}/python3.11/html/_sources/*.rst.txt"], note="Python 3.11 documentation sources"),
    _src("perl_docs", "perl-doc", "5.36.0-7+deb12u4", "pool/updates/main/p/perl/perl-doc_5.36.0-7+deb12u4_all.deb",
         7910372, "f4269cff4576d6f02a6756df842988e58451c7e945b08517dd235531b24e48f8", "GPL-1.0+ or Artistic-1.0",
         "documentation", "pod", ["usr/share/perl/*/pod/*.pod"], note="perl core documentation (POD)"),
    _src("postgresql_docs", "postgresql-doc-15", "15.20-0+deb12u1",
         "pool/updates/main/p/postgresql-15/postgresql-doc-15_15.20-0+deb12u1_all.deb",
         2124920, "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7", "PostgreSQL", "documentation",
         "html", [f"{DOC}/postgresql-doc-15/html/*.html"], note="PostgreSQL 15 manual"),
    _src("git_docs", "git-doc", "1:2.39.5-0+deb12u3", "pool/main/g/git/git-doc_2.39.5-0+deb12u3_all.deb",
         2153500, "3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec", "GPL-2.0", "documentation",
         "asciidoc", [f"{DOC}/git-doc/*.txt"], note="git manual pages and guides (AsciiDoc sources)"),
    _src("debian_handbook", "debian-handbook", "11.20220922",
         "pool/main/d/debian-handbook/debian-handbook_11.20220922_all.deb",
         34758056, "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa", "GPL-2.0+ or CC-BY-SA-3.0",
         "documentation", "html", [f"{DOC}/debian-handbook/html/en-US/*.html"],
         note="The Debian Administrator's Handbook (English only)"),
    _src("django_docs", "python-django-doc", "3:3.2.25-0+deb12u7",
         "pool/updates/main/p/python-django/python-django-doc_3.2.25-0+deb12u7_all.deb",
         3493656, "87307f067916df72e17180d35b7cde5c7ea6080336cda518efd7f6e66988a7ca", "BSD-3-Clause", "documentation",
         "html", [f"{DOC}/python-django-doc/html/*.html"],
         exclude=["*/_modules/*", "*/genindex*.html", "*/search.html", "*/py-modindex.html"],
         note="Django 3.2 documentation"),
    _src("sqlalchemy_docs", "python-sqlalchemy-doc", "1.4.46+ds1-1",
         "pool/main/s/sqlalchemy/python-sqlalchemy-doc_1.4.46+ds1-1_all.deb",
         3567160, "8805c3167ef75278ac6fd58ed9856321c2b2e3a7e441edba84b2eb955216d0fd", "MIT", "documentation", "rst",
         [f"{DOC}/python-sqlalchemy-doc/rst/*.rst"], note="SQLAlchemy 1.4 documentation sources"),
    _src("pandas_docs", "python-pandas-doc", "1.5.3+dfsg-2",
         "pool/main/p/pandas/python-pandas-doc_1.5.3+dfsg-2_all.deb",
         11879024, "4998405ff6b12432f46594963e95554ade1104705795428396345fca58d853f8", "BSD-3-Clause",
         "documentation", "rst", [f"{DOC}/python-pandas-doc/html/_sources/*.rst.txt"],
         exclude=["*/_sources/reference/api/*"], note="pandas 1.5 documentation sources (no API stubs)"),
    _src("cmake_docs", "cmake-doc", "3.25.1-1", "pool/main/c/cmake/cmake-doc_3.25.1-1_all.deb",
         2198792, "6e805a758ffed87cc7ea234cf0a7a1bb8ae78b93d8b5783e7fb989a6320f8133", "BSD-3-Clause",
         "documentation", "rst", ["usr/share/doc/cmake-data/html/_sources/*.rst.txt"], note="CMake 3.25 manual"),
    _src("erlang_docs", "erlang-doc", "1:25.2.3+dfsg-1+deb12u4",
         "pool/main/e/erlang/erlang-doc_25.2.3+dfsg-1+deb12u4_all.deb",
         21820260, "7d172cecfdd9c2930b27c776ad226ffcc84670375cf830c79ee41c6944e8a1c8", "Apache-2.0", "documentation",
         "html", [f"{DOC}/erlang-doc/*.html"], exclude=["*/chunks/*"], note="Erlang/OTP 25 documentation"),
    _src("rust_books", "rust-doc", "1.63.0+dfsg1-2", "pool/main/r/rustc/rust-doc_1.63.0+dfsg1-2_all.deb",
         17000500, "96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b", "MIT or Apache-2.0",
         "documentation", "html", [f"{DOC}/rust-doc/html/{book}/*.html" for book in
                                   ("book", "reference", "nomicon", "edition-guide", "rustc", "cargo",
                                    "embedded-book", "rustdoc", "unstable-book", "rust-by-example")],
         exclude=["*/print.html", "*/searchindex*", "*/toc.html"],
         note="The Rust books: the Book, Reference, Nomicon, rustc, Cargo, Rust by Example, ..."),
    _src("java_api_docs", "openjdk-17-doc", "17.0.21.1+2-1~deb12u1",
         "pool/updates/main/o/openjdk-17/openjdk-17-doc_17.0.21.1+2-1~deb12u1_all.deb",
         12875992, "3e04db24dbcb31d598774973998f1d8212e3424e288befbfef235077325f841d",
         "GPL-2.0 with Classpath exception", "documentation", "html",
         ["usr/share/doc/openjdk-17-jre-headless/api/*.html"],
         exclude=["*/class-use/*", "*/index-files/*", "*-tree.html", "*/allclasses*", "*/allpackages*",
                  "*/serialized-form.html", "*/constant-values.html", "*/search.html", "*/help-doc.html"],
         note="Java SE 17 API specification (javadoc)"),
    _src("scipy_docs", "python-scipy-doc", "1.10.1-2", "pool/main/s/scipy/python-scipy-doc_1.10.1-2_all.deb",
         33337224, "a237fdcef1675622f1a5d8a291c64feba140615130ee625554f94772d4ea3ad7", "BSD-3-Clause",
         "documentation", "html", [f"{DOC}/python-scipy-doc/html/*.html"],
         exclude=["*/_modules/*", "*/genindex*.html", "*/search.html", "*/py-modindex.html"],
         note="SciPy 1.10 documentation (tutorials and API reference)"),
    _src("sympy_docs", "python-sympy-doc", "1.11.1-1", "pool/main/s/sympy/python-sympy-doc_1.11.1-1_all.deb",
         21958880, "2a1d50bd49738f0280308fc8d86d5fa5739dbc6391e1c754f4549bc3635e6a31", "BSD-3-Clause",
         "documentation", "html", [f"{DOC}/python-sympy-doc/html/*.html"],
         exclude=["*/_modules/*", "*/genindex*.html", "*/search.html", "*/py-modindex.html"],
         note="SymPy 1.11 documentation"),
    _src("octave_manual", "octave-doc", "7.3.0-2", "pool/main/o/octave/octave-doc_7.3.0-2_all.deb",
         8270064, "b27897cc7e3d688daa5cb8f8d1ea47077f3fbd205ce32e22522200ff0c1eadd5", "GPL-3.0+", "documentation",
         "html", ["usr/share/doc/octave/octave.html/*.html"], note="GNU Octave 7 manual"),
    _src("apache_httpd_docs", "apache2-doc", "2.4.71-1~deb12u1",
         "pool/updates/main/a/apache2/apache2-doc_2.4.71-1~deb12u1_all.deb",
         4429560, "a7b3d1131c1c63dbf9999b28e75f9a133d30f70492b419936bd51759ac77a01f", "Apache-2.0", "documentation",
         "html", [f"{DOC}/apache2-doc/manual/en/*.html"], note="Apache HTTP Server 2.4 manual (English)"),
    _src("debian_reference", "debian-reference-en", "2.100",
         "pool/main/d/debian-reference/debian-reference-en_2.100_all.deb",
         1704872, "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f", "GPL-2.0+", "documentation",
         "html", ["usr/share/debian-reference/*.en.html"], note="Debian Reference (English)"),
)


# ---- reading a .deb -----------------------------------------------------------------------------------------------

def deb_members(path, patterns, exclude=()) -> list:
    """[(member name, bytes)] of the package's data.tar.* whose names match `patterns` (and no `exclude`), sorted
    by name. A .deb is an `ar` archive: 8-byte magic, then 60-byte headers (name 16, ..., size 10 at 48)."""
    blob = Path(path).read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise CorpusError(f"{path}: not a Debian package (no ar header)")
    pos, data = 8, None
    while pos + 60 <= len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        if name.startswith("data.tar"):
            data = (name, blob[pos + 60:pos + 60 + size])
        pos += 60 + size + (size % 2)
    if data is None:
        raise CorpusError(f"{path}: no data.tar member")
    name, payload = data
    if name.endswith(".xz"):
        payload = lzma.decompress(payload)
    elif name.endswith(".gz"):
        payload = gzip.decompress(payload)
    elif not name.endswith(".tar"):
        raise CorpusError(f"{path}: unsupported {name} (xz, gz or plain tar)")
    out = []
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        for info in tar:
            member = info.name.removeprefix("./")
            if info.isfile() and any(fnmatch.fnmatch(member, p) for p in patterns) and \
                    not any(fnmatch.fnmatch(member, p) for p in exclude):
                out.append((member, tar.extractfile(info).read()))
    return sorted(out)


# ---- extractors: member bytes -> [(document id, text)] --------------------------------------------------------------

def _decode(name, raw) -> str:
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


_RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)(?:\s*<[^`>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`_+")
_RST_MARK = re.compile(r"``|`_*|\*\*|(?<!\w)\*(?=\w)|(?<=\w)\*(?!\w)|\|")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_.:])\1{2,}\s*$")


def extract_rst(name, raw) -> list:
    """reStructuredText: directives, comments and literal blocks (after '::') dropped; roles and links to text."""
    lines, out, skip_indent = _decode(name, raw).splitlines(), [], None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
            out.append("")                     # what follows a skipped block starts a paragraph
        if stripped.startswith(".."):          # directive, comment, target: skip it and its indented body
            skip_indent = indent
            continue
        if _UNDERLINE.match(stripped):
            out.append("")
            continue
        if stripped.endswith("::"):            # a literal block follows
            text = stripped[:-2].rstrip()
            out.append(text + (":" if text and not text.endswith(":") else ""))
            skip_indent = indent
            continue
        text = _RST_LINK.sub(r"\1", _RST_ROLE.sub(r"\1", stripped))
        out.append(_RST_MARK.sub("", text))
    return [(name, "\n".join(out))]


_POD_CODE = re.compile(r"[A-Z]<<+\s(.*?)\s>>+|[A-Z]<([^<>]*)>")


def extract_pod(name, raw) -> list:
    """Perl POD: headings kept as lines, verbatim (indented) paragraphs and other commands dropped, B<x> -> x."""
    out, in_skip = [], False
    for para in re.split(r"\n\s*\n", _decode(name, raw)):
        if para.startswith("=begin") or para.startswith("=for"):
            in_skip = para.startswith("=begin")
            continue
        if para.startswith("=end"):
            in_skip = False
            continue
        if in_skip or para[:1] in (" ", "\t"):
            continue
        if para.startswith("="):
            command, _, text = para.partition(" ")
            if command not in ("=head1", "=head2", "=head3", "=head4", "=item"):
                continue
            para = text
        for _ in range(3):                     # nested codes: I<B<x>>
            para = _POD_CODE.sub(lambda m: (m.group(1) or m.group(2) or "").split("|")[0], para)
        out.append(para.strip())
    return [(name, "\n\n".join(out))]


_ADOC_DELIM = re.compile(r"^(-{4,}|\.{4,}|={4,}|\+{4,}|_{4,}|\*{4,}|/{4,}|\|===)\s*$")


def extract_asciidoc(name, raw) -> list:
    """AsciiDoc: listing/literal/comment blocks and attribute lines dropped, title underlines removed (a line of
    one repeated character as long as the title above it is an underline, not a block delimiter)."""
    out, in_block, previous = [], None, ""
    for line in _decode(name, raw).splitlines():
        stripped = line.strip()
        underline = _UNDERLINE.match(stripped) and previous and abs(len(stripped) - len(previous)) <= 2
        if not in_block and underline:
            out.append("")
        elif _ADOC_DELIM.match(stripped):
            if in_block is None and stripped[0] in "-./=|":
                in_block = stripped
            elif in_block == stripped:
                in_block = None
            out.append("")
        elif not (in_block or line[:1] == " " or          # space-indented: a literal paragraph
                  re.match(r"^(\[.*\]|:\w[\w-]*:.*|ifdef::.*|endif::.*|include::.*)$", stripped)):
            out.append(re.sub(r"linkgit:([\w-]+)\[\d\]", r"\1", stripped).replace("`", ""))
        previous = stripped if not in_block else ""
    return [(name, "\n".join(out))]


class _HTMLText(html.parser.HTMLParser):
    """Text of the page body: block elements break paragraphs; script, style, pre, code listings, navigation and
    tables are dropped."""
    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "br", "blockquote", "section",
             "title", "tr"}
    SKIP = {"script", "style", "pre", "head", "table", "nav"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skipping = [], []   # skipping: the open tags whose content is dropped

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        if tag in self.SKIP or (tag == "div" and ("navheader" in classes or "navfooter" in classes)) or \
                (self.skipping and tag == self.skipping[-1]):
            self.skipping.append(tag)
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def extract_html(name, raw) -> list:
    parser = _HTMLText()
    parser.feed(_decode(name, raw))
    parser.close()
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", "".join(parser.parts))]
    return [(name, "\n\n".join(p for p in paras if p))]


def extract_sword(name, raw, data: bytes) -> list:
    """A SWORD compressed module (zText/zCom): `raw` is the block index (.bzs/.czs: offset, size, uncompressed size
    as little-endian uint32), `data` the zlib blocks (.bzz/.czz). Each block (a book or chapter) is a document; the
    OSIS markup is stripped, footnotes dropped, titles and paragraph milestones become paragraph breaks."""
    docs = []
    for i in range(len(raw) // 12):
        offset, size, _ = struct.unpack_from("<III", raw, 12 * i)
        text = zlib.decompress(data[offset:offset + size]).decode("utf-8", errors="replace")
        text = re.sub(r"<note\b.*?</note>", " ", text, flags=re.S)
        text = re.sub(r"<title\b[^>]*>(.*?)</title>", r"\n\n\1\n\n", text, flags=re.S)
        text = re.sub(r"<(div|chapter|lg|l|p)\b[^>]*/>|<lb\b[^>]*/>", "\n\n", text)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
        docs.append((f"{name}#{i}", "\n\n".join(p for p in paras if p)))
    return docs


EXTRACTORS = {"rst": extract_rst, "pod": extract_pod, "asciidoc": extract_asciidoc, "html": extract_html}


def source_documents(source: CorpusSource, deb_path) -> list:
    """[(document id, raw text)] of one input package, in member order."""
    if source.format == "sword":
        index = deb_members(deb_path, source.members, source.exclude)
        datas = dict(deb_members(deb_path, [p[:-1] + "z" for p in source.members]))
        return [doc for name, raw in index if raw for doc in extract_sword(name, raw, datas[name[:-1] + "z"])]
    extractor = EXTRACTORS[source.format]
    return [doc for name, raw in deb_members(deb_path, source.members, source.exclude)
            for doc in extractor(name, raw)]


# ---- cleaning and splits -------------------------------------------------------------------------------------------

_PROSE_CHARS = re.compile(r"[\w\s.,;:'\"!?()\-\u2018\u2019\u201c\u201d\u2014\u2013]")


def is_prose(paragraph: str) -> bool:
    """Mostly words: letters, spaces and sentence punctuation make up MIN_WORD_SHARE of it, and it has a word of
    three letters or more (drops code, tables, rulers, lists of numbers)."""
    if not re.search(r"[A-Za-z]{3}", paragraph):
        return False
    prose = len(_PROSE_CHARS.findall(paragraph)) - sum(c.isdigit() for c in paragraph)
    return prose >= MIN_WORD_SHARE * len(paragraph)


def clean_document(text: str, seen: set) -> str:
    """NFC, control characters out, paragraphs re-flowed onto one line each, non-prose and already seen paragraphs
    dropped (`seen` holds hashes of every paragraph kept so far, across the whole corpus)."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")
    kept = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para or not is_prose(para):
            continue
        key = hashlib.sha256(para.lower().encode()).digest()[:16]
        if key in seen:
            continue
        seen.add(key)
        kept.append(para)
    return "\n\n".join(kept)


def split_of(doc_id: str) -> str:
    """validation / test / train for a document id: a hash, so the split never depends on the other documents."""
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") % 1000
    low = 0
    for name, per_mille in SPLITS:
        if bucket < low + per_mille:
            return name
        low += per_mille
    return "train"


# ---- build, check, download ------------------------------------------------------------------------------------------

def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_input(source: CorpusSource, inputs) -> Path:
    path = Path(inputs) / source.filename
    if not path.is_file():
        raise CorpusError(f"corpus input {source.name}: {path} is missing (run `python -m "
                          f"posbench.harness.training.corpus download --inputs {inputs}`)")
    if path.stat().st_size != source.size or sha256_file(path) != source.sha256:
        raise CorpusError(f"corpus input {source.name}: {path} does not match its pinned size {source.size} and "
                          f"sha256 {source.sha256}")
    return path


def _write_jsonl_gz(path: Path, records) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        for record in records:
            f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    os.replace(tmp, path)


def build(inputs, out, sources=SOURCES, min_doc_chars=MIN_DOC_CHARS, log=print) -> dict:
    """Build the corpus from the pinned packages in `inputs` into `out`; returns the manifest."""
    out = Path(out)
    paths = [verify_input(s, inputs) for s in sources]   # every input checked before any work
    splits = {name: [] for name in ("train", *(n for n, _ in SPLITS))}
    per_source, seen, ids = {}, set(), set()
    for source, path in zip(sources, paths):
        raw_docs = source_documents(source, path)
        counts = {"documents_read": len(raw_docs), "documents": 0, "chars_read": 0, "chars": 0}
        for member, text in raw_docs:
            doc_id = f"{source.name}/{member}"
            if doc_id in ids:
                raise CorpusError(f"corpus source {source.name}: document id {doc_id} twice")
            ids.add(doc_id)
            counts["chars_read"] += len(text)
            text = clean_document(text, seen)
            if len(text) < min_doc_chars:
                continue
            counts["documents"] += 1
            counts["chars"] += len(text)
            splits[split_of(doc_id)].append({"id": doc_id, "source": source.name, "text": text})
        per_source[source.name] = counts
        log(f"corpus: {source.name}: {counts['documents']}/{counts['documents_read']} documents, "
            f"{counts['chars'] / 1e6:.1f}M of {counts['chars_read'] / 1e6:.1f}M characters kept")
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, records in splits.items():
        path = out / f"{name}.jsonl.gz"
        _write_jsonl_gz(path, records)
        files[name] = {"file": path.name, "documents": len(records), "chars": sum(len(r["text"]) for r in records),
                       "sha256": sha256_file(path)}
    manifest = {"corpus": CORPUS_NAME, "cleaning_version": CLEANING_VERSION, "min_doc_chars": min_doc_chars,
                "min_word_share": MIN_WORD_SHARE, "splits_per_mille": dict(SPLITS),
                "inputs": [dataclasses.asdict(s) for s in sources], "sources": per_source, "files": files}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    return manifest


def check(out) -> dict:
    """The manifest of a built corpus after checking every output's sha256 (CorpusError names the first bad one)."""
    out = Path(out)
    if not (out / "manifest.json").is_file():
        raise CorpusError(f"corpus {out}: no manifest.json (build it: python -m posbench.harness.training.corpus "
                          f"build --inputs DIR --out {out})")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for name, entry in manifest["files"].items():
        path = out / entry["file"]
        if not path.is_file():
            raise CorpusError(f"corpus {out}: split {name}: {path} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise CorpusError(f"corpus {out}: split {name}: {path} sha256 differs from manifest.json (rebuild it)")
    return manifest


def read_split(out, split: str):
    """The documents of one split, in order."""
    with gzip.open(Path(out) / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def download(inputs, sources=SOURCES, mirror=None, log=print) -> list:
    """Fetch every input not already present and verified: from `mirror` (a Debian mirror or snapshot root URL:
    mirror/archive_path) if given or $POSBENCH_DEBIAN_MIRROR is set, else with `apt-get download PACKAGE=VERSION`
    (on a Debian bookworm system). Every file is checked against its pinned sha256."""
    inputs = Path(inputs)
    inputs.mkdir(parents=True, exist_ok=True)
    mirror = mirror or os.environ.get("POSBENCH_DEBIAN_MIRROR")
    done = []
    for source in sources:
        path = inputs / source.filename
        if not (path.is_file() and sha256_file(path) == source.sha256):
            if mirror:
                url = f"{mirror.rstrip('/')}/{source.archive_path}"
                log(f"corpus: downloading {url}")
                with urllib.request.urlopen(url) as response, open(path, "wb") as f:
                    f.write(response.read())
            else:
                log(f"corpus: apt-get download {source.package}={source.version}")
                result = subprocess.run(["apt-get", "download", f"{source.package}={source.version}"], cwd=inputs,
                                        capture_output=True, text=True)
                fetched = inputs / f"{source.package}_{source.version.replace(':', '%3a')}_all.deb"
                if result.returncode == 0 and fetched != path:   # apt-get spells an epoch into the name
                    os.replace(fetched, path)
                if result.returncode != 0:
                    raise CorpusError(f"corpus input {source.name}: apt-get download {source.package}="
                                      f"{source.version} failed ({result.stderr.strip()[-300:]}); pass --mirror "
                                      f"with a Debian mirror or snapshot root that still has {source.archive_path}")
        done.append(verify_input(source, inputs))
    return done


def token_stats(out, tokenizer_path, split="train", batch=256) -> dict:
    """Tokens of a split and its unigram entropy (nats per token) under a tokenizer.json: the loss a model that
    ignores context reaches, the bar a language model must beat by far."""
    import numpy as np
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    counts = np.zeros(tokenizer.get_vocab_size(), dtype=np.int64)
    texts = []
    for record in read_split(out, split):
        texts.append(record["text"])
        if len(texts) == batch:
            for enc in tokenizer.encode_batch(texts):
                counts += np.bincount(enc.ids, minlength=len(counts))
            texts = []
    for enc in tokenizer.encode_batch(texts):
        counts += np.bincount(enc.ids, minlength=len(counts))
    total = int(counts.sum())
    p = counts[counts > 0] / max(total, 1)
    return {"split": split, "tokenizer": str(tokenizer_path), "tokens": total,
            "unigram_entropy_nats": round(float(-(p * np.log(p)).sum()), 4), "distinct_tokens": int(p.size)}


def catalogue_entries(sources=SOURCES) -> list:
    """Every input as a plain record for a data catalogue (`eval.py data`): where it lies under the data root,
    its URL, size, sha256, licence and source."""
    return [{"name": f"corpus-{s.name}", "path": f"corpus/inputs/{s.filename}", "url": s.url, "size": s.size,
             "sha256": s.sha256, "licence": s.licence, "source": f"Debian package {s.package} {s.version}: {s.note}"}
            for s in sources]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posbench.harness.training.corpus", description=__doc__.split(
        "\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("download", "build", "check", "stats", "sources"):
        p = sub.add_parser(name)
        if name in ("download", "build"):
            p.add_argument("--inputs", required=True, help="folder of the .deb inputs")
        if name in ("build", "check", "stats"):
            p.add_argument("--out", required=True, help="corpus folder")
        if name == "download":
            p.add_argument("--mirror", help="Debian mirror or snapshot root URL (default: apt-get download)")
        if name == "stats":
            p.add_argument("--tokenizer", required=True, help="tokenizer.json")
            p.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    try:
        if args.command == "sources":
            for s in SOURCES:
                print(f"{s.name:20s} {s.package}={s.version}  {s.licence}  {s.size:>10,d} B  {s.note}")
        elif args.command == "download":
            download(args.inputs, mirror=args.mirror)
        elif args.command == "build":
            manifest = build(args.inputs, args.out)
            print(json.dumps(manifest["files"], indent=2))
        elif args.command == "check":
            manifest = check(args.out)
            sizes = ", ".join(f"{name} {entry['documents']} documents" for name, entry in manifest["files"].items())
            print(f"{args.out}: ok ({sizes})")
        else:
            print(json.dumps(token_stats(args.out, args.tokenizer, args.split), indent=2))
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
