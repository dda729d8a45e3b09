"""`eval.py data list|download|check` against a local HTTP server (127.0.0.1, stopped after each test), and the
catalogue against the tasks: every task that reads outside data names a catalogue entry when that data is missing."""
import hashlib
import http.server
import io
import json
import re
import threading
import zipfile
from pathlib import Path

import pytest

from posbench.harness.cli import main
from posbench.harness.evaluation.data import RECORD, data_paths
from posbench.tasks import MissingData, TaskRegistry, build_samples
from posbench.tasks.data_catalogue import CATALOGUE, DataEntry, DataFile, register_data
from tests.data_testing import DATA_ROOT, needs_data

REFERENCE_TOKENIZER = Path(__file__).resolve().parents[1] / "models" / "reference" / "rope"


class Server:
    """Serves `files` (url path -> bytes) on 127.0.0.1 and counts requests; shuts down on close or after 120 s."""

    def __init__(self, files: dict):
        self.files, self.requests = files, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.watchdog = threading.Timer(120, self.close)
        self.watchdog.daemon = True
        self.watchdog.start()

    def close(self):
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


PLAIN = b"first file\n" * 50
UNPINNED = b'{"question": "unpinned"}\n'
MEMBERS = {"pkg/english/a.txt": b"alpha\n", "pkg/english/b.tab": b"beta\t1\n", "pkg/other.txt": b"not needed"}


@pytest.fixture
def served():
    """A server with three files and a fixture entry `fixture_set` pointing at them; both removed afterwards."""
    server = Server({"/plain.txt": PLAIN, "/unpinned.json": UNPINNED, "/pkg.zip": zip_bytes(MEMBERS)})
    entry = DataEntry("fixture_set", "tests", "a local test server", "CC0", (
        DataFile("fixture/plain.txt", f"{server.url}/plain.txt", len(PLAIN), sha(PLAIN)),
        DataFile("fixture/q.json", f"{server.url}/unpinned.json"),
        DataFile("fixture/nltk/a.txt", f"{server.url}/pkg.zip", 6, sha(b"alpha\n"), member="pkg/english/a.txt"),
        DataFile("fixture/nltk/b.tab", f"{server.url}/pkg.zip", 7, sha(b"beta\t1\n"), member="pkg/english/b.tab"),
    ))
    register_data(entry)
    try:
        yield server, entry
    finally:
        CATALOGUE.pop(entry.name, None)
        server.close()


def test_download_verifies_lays_out_and_records(served, tmp_path, capsys):
    server, _ = served
    root = tmp_path / "root"
    assert main(["data", "download", "fixture_set", "--data-root", str(root)]) == 0
    assert (root / "fixture/plain.txt").read_bytes() == PLAIN
    assert (root / "fixture/q.json").read_bytes() == UNPINNED
    assert (root / "fixture/nltk/a.txt").read_bytes() == b"alpha\n"
    assert (root / "fixture/nltk/b.tab").read_bytes() == b"beta\t1\n"
    assert not (root / "fixture/nltk/other.txt").exists()
    assert sorted(server.requests) == ["/pkg.zip", "/plain.txt", "/unpinned.json"]   # the archive once
    record = json.loads((root / RECORD).read_text())
    assert record == {"fixture/q.json": {"size": len(UNPINNED), "sha256": sha(UNPINNED),
                                         "url": f"{server.url}/unpinned.json"}}
    assert not list(root.glob(".download-*"))
    # A second download finds everything verified and fetches nothing; check passes.
    assert main(["data", "download", "fixture_set", "--data-root", str(root)]) == 0
    assert len(server.requests) == 3 and "all 4 files present and verified" in capsys.readouterr().out
    assert main(["data", "check", "fixture_set", "--data-root", str(root)]) == 0
    assert "fixture_set ok" in capsys.readouterr().out


def test_check_and_download_replace_a_changed_file(served, tmp_path, capsys):
    server, _ = served
    root = tmp_path / "root"
    assert main(["data", "download", "fixture_set", "--data-root", str(root)]) == 0
    (root / "fixture/q.json").write_bytes(UNPINNED.replace(b"unpinned", b"tampered"))   # same size
    (root / "fixture/nltk/a.txt").write_bytes(b"ALPHA\n")
    capsys.readouterr()
    assert main(["data", "check", "fixture_set", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "fixture_set corrupt" in out and "fixture/q.json: corrupt: sha256" in out
    assert "fixture/nltk/a.txt: corrupt: sha256" in out and "eval.py data download fixture_set" in out
    assert main(["data", "download", "fixture_set", "--data-root", str(root)]) == 0
    assert (root / "fixture/nltk/a.txt").read_bytes() == b"alpha\n"
    assert main(["data", "check", "fixture_set", "--data-root", str(root)]) == 0


def test_a_wrong_download_writes_nothing(served, tmp_path, capsys):
    server, _ = served
    server.files["/plain.txt"] = PLAIN.replace(b"first", b"frist")          # same size, other bytes
    root = tmp_path / "root"
    assert main(["data", "download", "fixture_set", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fixture_set: ") and "plain.txt: sha256 differs" in err and err.count("\n") == 1
    assert not (root / "fixture/plain.txt").exists() and not list(root.glob(".download-*"))
    server.files["/plain.txt"] = PLAIN + b"more"                            # too long: stopped while streaming
    assert main(["data", "download", "fixture_set", "--data-root", str(root)]) == 2
    assert f"more than the expected {len(PLAIN)} bytes" in capsys.readouterr().err


def test_offline_unknown_and_empty_requests_are_one_line_errors(served, tmp_path, capsys):
    server, entry = served
    server.close()                                                          # nothing listens any more
    assert main(["data", "download", "fixture_set", "--data-root", str(tmp_path), "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot download {server.url}/") and err.count("\n") == 1
    assert main(["data", "download", "no_such_set"]) == 2
    assert "unknown data set 'no_such_set'; known: tokenizer, essays" in capsys.readouterr().err
    assert main(["data", "download"]) == 2
    assert "data download needs NAME... or all" in capsys.readouterr().err


def test_list_shows_every_entry_its_source_and_presence(served, tmp_path, capsys):
    root = tmp_path / "root"
    assert main(["data", "list", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    for name, entry in CATALOGUE.items():
        assert f"\n{name} " in out and entry.source in out and entry.licence in out
    assert re.search(r"\nfixture_set +missing +4 files", out)
    main(["data", "download", "fixture_set", "--data-root", str(root)])
    capsys.readouterr()
    (root / "fixture/plain.txt").unlink()
    assert main(["data", "list", "fixture_set", "--data-root", str(root)]) == 0
    assert re.search(r"fixture_set +partial 3/4", capsys.readouterr().out)


def data_tasks():
    """Every task whose source reads a data path (${...}), with a length to build it at."""
    reg = TaskRegistry()
    return [(spec, spec.context_lengths[0] if spec.length_controlled else None) for spec in reg.tasks()
            if "${" in json.dumps(spec.source_params)]


def test_every_missing_data_message_names_a_catalogue_entry(tmp_path):
    """With an empty data root, each data task fails with MissingData that names a catalogue entry to download and
    its source, and never a file outside the repository's own tree of docs."""
    from posbench.harness.core.checkpoint import load_tokenizer

    tokenizer = load_tokenizer(REFERENCE_TOKENIZER)
    paths = data_paths(tmp_path)
    tasks = data_tasks()
    assert len(tasks) > 60
    named = set()
    for spec, length in tasks:
        with pytest.raises(MissingData) as err:
            build_samples(spec, tokenizer, length=length, data_paths=paths, indices=[0])
        message = str(err.value)
        name = message.split("python eval.py data download ")[1].split("`")[0]
        assert name in CATALOGUE and CATALOGUE[name].source in message, (spec.name, message)
        assert "shared/data" not in message and "PROVENANCE" not in message, (spec.name, message)
        named.add(name)
    assert {"essays", "squad", "hotpotqa", "nlgraph", "hybridqa", "longbench", "arc", "boolq", "mmlu"} <= named


@needs_data("tokenizer", "essays", "punkt_tab", "nlgraph", "hybridqa", "arc", "boolq", "mmlu", "c4_sample")
def test_the_catalogue_checksums_match_the_data_root(capsys):
    """The pinned sizes and sha256s are those of the files the tests run on (hashes ~30 MB)."""
    names = ["tokenizer", "essays", "punkt_tab", "nlgraph", "hybridqa", "arc", "boolq", "mmlu", "c4_sample"]
    assert main(["data", "check", *names, "--data-root", str(DATA_ROOT)]) == 0
    assert capsys.readouterr().out.count(" ok") == len(names)
