"""Tiny Debian packages for the corpus tests: one per extractor format, with prose, code, markup and a paragraph
repeated across packages. `write_inputs(folder)` writes them and returns CorpusSource entries pinned to them."""
import hashlib
import io
import lzma
import struct
import tarfile
import zlib
from pathlib import Path

from posbench.harness.training.corpus import CorpusSource

PROSE = [
    "The harbour town woke slowly, and the fishermen carried their nets down to the boats before the bells rang.",
    "A quiet argument about the price of salt went on for most of the morning, and nobody seemed to win it.",
    "By noon the wind had turned, so the older sailors decided that nothing more would be caught that day.",
    "Children ran along the sea wall, counting the gulls and inventing names for every ship they could see.",
]
SHARED = "This paragraph appears in two packages, so the corpus keeps only its first copy and counts it once."
CODE = "for (i = 0; i < n; i++) { x[i] = y[i] * 2; } /* {{ }} [] <> */ 0x1F 0x2E 0x3D = == != ++ --"


def deb(members: dict) -> bytes:
    """An ar archive holding debian-binary, an empty control.tar.xz and data.tar.xz with `members`."""
    def tar_xz(files):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo("./" + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return lzma.compress(raw.getvalue())

    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in (("debian-binary", b"2.0\n"), ("control.tar.xz", tar_xz({})), ("data.tar.xz", tar_xz(members))):
        out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.write(data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def sword_module(blocks: list) -> tuple:
    """(.bzs index, .bzz data) of a SWORD module holding `blocks` (OSIS strings)."""
    index, data = b"", b""
    for text in blocks:
        packed = zlib.compress(text.encode())
        index += struct.pack("<III", len(data), len(packed), len(text.encode()))
        data += packed
    return index, data


RST = f"""Harbour notes
=============

{PROSE[0]}
:ref:`{PROSE[1][:-1]} <target>`.

.. code-block:: c

   {CODE}

An example follows::

    {CODE}

{SHARED}
"""
HTML = f"""<html><head><title>page</title><script>var x = 1;</script></head><body>
<div class="navheader">Prev Next Up Home</div><h1>Evening</h1><p>{PROSE[2]}</p><pre>{CODE}</pre>
<p>{PROSE[3]} <code>inline words</code> stay.</p><table><tr><td>1</td><td>2</td></tr></table><p>{SHARED}</p>
</body></html>"""
POD = f"""=head1 NAME

perlharbour - the harbour

=head1 DESCRIPTION

{PROSE[1].replace("price", "B<price>")}

    {CODE}

=begin html

<p>dropped</p>

=end html

{PROSE[0]}
"""
ADOC_ONLY = "The lantern on the pier was lit at dusk by whoever happened to be closest to the matches."
ADOC = f"""harbour(1)
==========

NAME
----
{ADOC_ONLY}

----
{CODE}
----

{PROSE[2]}
"""
OSIS = [f'<div type="book"/><title type="main">Book one</title><div type="x-p"/>{PROSE[0]} '
        f'<note placement="foot">a footnote that is dropped</note>{PROSE[1]}',
        f'<chapter n="2"/><w lemma="strong:H1">{PROSE[2].split()[0]}</w> {" ".join(PROSE[2].split()[1:])} {PROSE[3]}']
SHORT = "Too short to keep."


def write_inputs(folder) -> tuple:
    """Write the fixture packages into folder; returns their CorpusSource entries."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index, data = sword_module(OSIS)
    packages = {
        "book": ("sword", {"usr/share/sword/modules/texts/ztext/fix/ot.bzs": index,
                           "usr/share/sword/modules/texts/ztext/fix/ot.bzz": data},
                 ["usr/share/sword/modules/texts/ztext/fix/*.bzs"], ()),
        "rstdocs": ("rst", {"usr/share/doc/x/a.rst.txt": RST.encode(), "usr/share/doc/x/short.rst.txt": SHORT.encode(),
                            "usr/share/doc/x/translations/b.rst.txt": RST.encode()},
                    ["usr/share/doc/x/*.rst.txt"], ["*/translations/*"]),
        "htmldocs": ("html", {"usr/share/doc/y/p.html": HTML.encode()}, ["usr/share/doc/y/*.html"], ()),
        "poddocs": ("pod", {"usr/share/perl/5/pod/perlharbour.pod": POD.encode()}, ["usr/share/perl/*/pod/*.pod"], ()),
        "adocdocs": ("asciidoc", {"usr/share/doc/z/harbour.txt": ADOC.encode()}, ["usr/share/doc/z/*.txt"], ()),
    }
    sources = []
    for name, (fmt, members, patterns, exclude) in packages.items():
        blob = deb(members)
        filename = f"fixture-{name}_1.0_all.deb"
        (folder / filename).write_bytes(blob)
        sources.append(CorpusSource(name, f"fixture-{name}", "1.0", f"pool/main/f/fixture/{filename}", len(blob),
                                    hashlib.sha256(blob).hexdigest(), "public domain", "book", fmt, tuple(patterns),
                                    tuple(exclude), "test fixture"))
    return tuple(sources)
