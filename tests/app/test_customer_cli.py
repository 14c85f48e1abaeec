"""The `customers` commands, run in-process (classifier/customer_cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.app.commands.customers import add_customer_commands, run_customers
from abuse_desk.app.wiring import open_engine
from abuse_desk.core.config import Config, build_config

from tests.support import NOW

CSV = """customer_id,name,email,resource,valid_from,valid_until
C-1,Example Hosting Ltd,noc@hosting.example,192.0.2.0/24,,2026-02-01T00:00:00Z
C-1,,,shop.example,,
C-2,Jane Doe,,192.0.2.0/24,2026-02-01T00:00:00Z,
C-2,,,198.51.100.200:1024-32767,,
C-3,Carrier Grade,,198.51.100.200:32768-65535,,
C-3,,,Sales@Carrier.Example,,
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="abuse-desk customers")
    common = argparse.ArgumentParser(add_help=False)
    add_customer_commands(top.add_subparsers(dest="customers_command", required=True), common)
    return top


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return build_config({"database": {"url": f"sqlite:///{tmp_path / 'var' / 'desk.db'}"}},
                        "test", env={})


class Cli:
    def __init__(self, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
        self.config, self.capsys = config, capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        engine = open_engine(self.config)
        try:
            code = run_customers(parser().parse_args(argv), self.config, engine, lambda: NOW)
        finally:
            engine.dispose()
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> tuple[int, Any]:
        code, out, _err = self(*argv, "--json")
        return code, json.loads(out)


@pytest.fixture
def cli(config: Config, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(config, capsys)


@pytest.fixture
def imported(cli: Cli, tmp_path: Path) -> Cli:
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    code, _out, _err = cli("import", str(path))
    assert code == 0
    return cli


def test_import_twice(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    assert cli("import", str(path)) == (0, (
        f"{path}: 3 customer(s) added, 0 updated; 6 resource(s) added, 0 updated; "
        "0 row(s) unchanged\n"
        "Workers use the change within classifier.index_refresh_s (5 s).\n"), "")
    assert cli("import", str(path)) == (0, (
        f"{path}: 0 customer(s) added, 0 updated; 0 resource(s) added, 0 updated; "
        "6 row(s) unchanged\n"), "")


def test_a_bad_file_imports_nothing_and_says_where(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV + "C-4,Four,,300.1.2.3,,\n", encoding="utf-8")
    code, out, err = cli("import", str(path))
    assert (code, out) == (1, "")
    assert err == (
        f"abuse-desk: error: {path}: line 8: resource '300.1.2.3': not an IP, CIDR, "
        "IP:LOW-HIGH, domain or address\n"
        "Nothing of the file was imported: correct the lines above and import it again.\n")
    assert cli("list") == (0, "no customers yet: import them with abuse-desk customers import "
                              "FILE.csv\n", "")


def test_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    assert cli("import", str(tmp_path / "nope.csv")) == (
        2, "", f"abuse-desk: error: {tmp_path / 'nope.csv'}: no such file (give the CSV file "
                "to import)\n")


def test_list(imported: Cli) -> None:
    assert imported("list") == (0, """\
C-1  Example Hosting Ltd <noc@hosting.example>  2 resource(s)
    192.0.2.0/24 (until 2026-02-01T00:00:00Z)
    shop.example
C-2  Jane Doe  2 resource(s)
    192.0.2.0/24 (from 2026-02-01T00:00:00Z)
    198.51.100.200:1024-32767
C-3  Carrier Grade  2 resource(s)
    198.51.100.200:32768-65535
    sales@carrier.example
""", "")
    code, customers = imported.json("list")
    assert code == 0
    assert [c["customer_id"] for c in customers] == ["C-1", "C-2", "C-3"]
    assert customers[1]["resources"] == [
        {"resource": "192.0.2.0/24", "kind": "cidr", "valid_from": "2026-02-01T00:00:00Z",
         "valid_until": None},
        {"resource": "198.51.100.200:1024-32767", "kind": "ip-ports", "valid_from": None,
         "valid_until": None}]


def test_resolve_an_ip_before_and_after_a_reassignment(imported: Cli) -> None:
    assert imported("resolve", "192.0.2.9", "--at", "2026-01-31T23:59:59Z") == (0, (
        "192.0.2.9 at 2026-01-31T23:59:59Z: customer C-1 (Example Hosting Ltd, "
        "noc@hosting.example)\n"
        "  found by source_ip 192.0.2.9 in 192.0.2.0/24 of C-1, until 2026-02-01T00:00:00Z\n"),
        "")
    code, doc = imported.json("resolve", "192.0.2.9", "--at", "2026-02-01")
    assert (code, doc["customer_id"], doc["name"], doc["kind"], doc["at"]) == (
        0, "C-2", "Jane Doe", "ip", "2026-02-01T00:00:00Z")
    assert doc["matches"][0]["resource"] == "192.0.2.0/24"


def test_resolve_cgnat_needs_the_port(imported: Cli) -> None:
    code, out, _err = imported("resolve", "198.51.100.200")
    assert code == 1
    assert out.splitlines()[1:] == [
        "  reason: CGNAT address needs the source port",
        "  reason: no customer resolves",
        "  candidate: source_ip 198.51.100.200 in 198.51.100.200:1024-32767 of C-2, always",
        "  candidate: source_ip 198.51.100.200 in 198.51.100.200:32768-65535 of C-3, always"]
    code, doc = imported.json("resolve", "198.51.100.200", "--port", "40000")
    assert (code, doc["customer_id"], doc["port"]) == (0, "C-3", 40000)


def test_resolve_urls_domains_and_addresses(imported: Cli) -> None:
    at = ("--at", "2026-01-01")
    assert imported.json("resolve", "https://www.shop.example/login?x=1", *at)[1]["matches"][0][
        "via"] == "url"
    assert imported.json("resolve", "cdn.shop.example", *at)[1]["customer_id"] == "C-1"
    assert imported.json("resolve", "SALES@carrier.example", *at)[1]["customer_id"] == "C-3"
    code, doc = imported.json("resolve", "other.example", *at)
    assert (code, doc["customer_id"], doc["reasons"]) == (1, None, ["no customer resolves"])


def test_resolve_asks_the_hook_about_an_ip_nobody_holds(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        imported: Cli) -> None:
    script = tmp_path / "radius.py"
    script.write_text('import json, sys\nprint(json.dumps({"customer_id": "C-2" if sys.argv[1] '
                      '== "203.0.113.5" else None}))\n', encoding="utf-8")
    hooked = build_config({"database": {"url": imported.config.database.url},
                           "classifier": {"resolver_hook_command": [sys.executable,
                                                                    str(script)]}},
                          "test", env={})
    cli = Cli(hooked, capsys)
    code, doc = cli.json("resolve", "203.0.113.5", "--at", "2026-02-10T00:00:00Z")
    assert (code, doc["customer_id"], doc["reasons"]) == (0, "C-2", [])
    assert doc["matches"][0]["via"] == "hook"
    code, doc = cli.json("resolve", "203.0.113.6", "--at", "2026-02-10T00:00:00Z")
    assert (code, doc["customer_id"]) == (1, None)
    assert doc["reasons"] == ["no customer resolves",
                              "the resolver hook knows nobody with this IP at the incident time"]


def test_bad_arguments_say_what_is_expected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["resolve", "192.0.2.1", "--at", "soon"])
    assert caught.value.code == 2
    assert "argument --at: 'soon' is not ISO 8601 (e.g. 2026-03-01T12:00:00Z or 2026-03-01)" \
        in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["resolve", "192.0.2.1", "--port", "70000"])
    assert "argument --port: '70000' is not a port (0-65535)" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "words"), [
    ("import", "nothing of the file is imported"),
    ("resolve", "VALUE is an IP"),
    ("list", "List every customer"),
])
def test_every_command_has_help(command: str, words: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args([command, "--help"])
    assert caught.value.code == 0
    assert words in " ".join(capsys.readouterr().out.split())


def test_a_long_import_shows_progress_on_a_terminal(cli: Cli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(f"C-{n},Customer {n},,10.{n // 256}.{n % 256}.0/24,,\n" for n in range(1000))
    path = tmp_path / "many.csv"
    path.write_text(CSV.splitlines(keepends=True)[0] + rows, encoding="utf-8")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _out, err = cli("import", str(path))
    assert code == 0
    assert "checking: 100%" in err and "writing: 100%" in err and "1000/1000" in err
    code, _out, err = cli("import", "--quiet", str(path))
    assert (code, err) == (0, "")
