"""The documentation stays true: generated tables current, every quarantine reason documented, links alive.

No Spark session: ``docs/tables.md`` is rendered from ``StructType`` objects, the reasons are read from
``src/vidrec/data/ingest.py``'s syntax tree.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vidrec.cli import docs

ROOT = Path(__file__).resolve().parents[1]
INGEST = ROOT / "src" / "vidrec" / "data" / "ingest.py"
CONTRACT = ROOT / "docs" / "contract.md"
README = ROOT / "README.md"
README_MAX_BYTES = 12_000
#: ``[text](target)`` or ``[text](target "title")``; images too.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _names_reason(node: ast.AST) -> bool:
    """``C.COL_REASON`` (or the literal ``"reason"``): the column a reason is written to."""
    return (isinstance(node, ast.Attribute) and node.attr == "COL_REASON") or (
        isinstance(node, ast.Constant) and node.value == "reason"
    )


def _pattern(node: ast.AST) -> tuple[str, re.Pattern[str]]:
    """A reason as text (``{...}`` for an f-string's values) and as a regex (each value: a word)."""
    if isinstance(node, ast.Constant):
        return node.value, re.compile(re.escape(node.value))
    shown, regex = [], []
    for part in node.values:
        if isinstance(part, ast.Constant):
            shown.append(part.value)
            regex.append(re.escape(part.value))
        else:
            shown.append("{" + ast.unparse(part.value) + "}")
            regex.append(r"\S+")
    return "".join(shown), re.compile("".join(regex))


def quarantine_reasons() -> dict[str, re.Pattern[str]]:
    """Every reason text ``ingest.py`` can write: the ``(condition, "reason")`` pairs of its checks, and
    the literals written as the reason column (``F.lit("duplicate event_id").alias(C.COL_REASON)``)."""
    found: dict[str, re.Pattern[str]] = {}
    for node in ast.walk(ast.parse(INGEST.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Tuple)
            and len(node.elts) == 2
            and _text(node.elts[1])
            and not isinstance(node.elts[0], (ast.Constant, ast.JoinedStr))
        ):
            shown, regex = _pattern(node.elts[1])
            found[shown] = regex
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "alias"
            and node.args
            and _names_reason(node.args[0])
            and isinstance(node.func.value, ast.Call)
            and node.func.value.args
            and _text(node.func.value.args[0])
        ):
            shown, regex = _pattern(node.func.value.args[0])
            found[shown] = regex
    return found


def markdown_files() -> list[Path]:
    return [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_tables_md_is_current() -> None:
    path = ROOT / "docs" / "tables.md"
    assert path.exists(), "docs/tables.md is missing: run `make docs`"
    stale = "docs/tables.md is stale: run `make docs`"
    assert path.read_text(encoding="utf-8") == docs.render_tables(), stale
    assert docs.main(["--check"]) == 0


def test_tables_md_covers_every_table_and_schema() -> None:
    text = docs.render_tables()
    from vidrec import constants as C

    for key, table in vars(C).items():
        if key.startswith("T_"):
            assert f"## {table[0]}/{table[1]}" in text, key
    assert "Schema `vidrec.data.schemas.BRONZE_EVENTS`" in text
    assert "| `event_id` | string | no |" in text


def test_the_reason_extraction_finds_the_known_reasons() -> None:
    reasons = quarantine_reasons()
    for known in (
        "unknown event_type",
        "ts in the future",
        "duplicate event_id",
        "duplicate event_id (differs from the event already ingested)",
        "missing required field {name}",
        "duplicate {key}",
        "invalid signup_date",
    ):
        assert known in reasons, f"{known!r} not extracted from {INGEST.name}: {sorted(reasons)}"
    assert len(reasons) >= 25


@pytest.mark.parametrize("reason", sorted(quarantine_reasons()))
def test_every_quarantine_reason_is_documented(reason: str) -> None:
    pattern = quarantine_reasons()[reason]
    text = CONTRACT.read_text(encoding="utf-8")
    assert pattern.search(text), f"quarantine reason {reason!r} of {INGEST.name} is not in docs/contract.md"


def test_readme_is_a_front_page_inside_the_repository() -> None:
    data = README.read_bytes()
    assert len(data) <= README_MAX_BYTES, f"README.md is {len(data)} bytes (at most {README_MAX_BYTES})"
    text = data.decode("utf-8")
    head = "\n".join(text.splitlines()[:6])
    assert "make demo" in head and "make test" in head
    assert "../shared" not in text
    assert not re.search(r"(?<!docs/)DESIGN\.md", text), "README names DESIGN.md, which is not in the repo"
    assert "/work/" not in text, "README names an absolute path of this machine"
    for target in LINK.findall(text):
        assert not target.startswith("/"), f"README links an absolute path: {target}"


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_in_the_repository(md: Path) -> None:
    broken = []
    for target in LINK.findall(md.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        path = (md.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or not path.is_relative_to(ROOT):
            broken.append(target)
    assert broken == [], f"{md.relative_to(ROOT)}: links to missing files: {broken}"
