"""Differential test: the gateway splits and classifies statement text exactly as PostgreSQL does.

Generated texts (tests/core/sql/parity_cases.py) go to the real server as one simple-protocol
Query each, under every supported client encoding and both settings of
standard_conforming_strings; the server's command tags say which statements it ran. The same
bytes go through the gateway's reading: the session's TextMode (from the parameters the server
reports, as the PostgreSQL door takes them) decodes them, and `classify` splits and names the
statements. Wherever both run the text, the statement lists must be identical: a gateway that saw
fewer or other statements than the server ran would judge text that is not what runs.

The gateway may refuse more than the server (text it cannot decode or parse where the server
ran something): that is counted and reported, a usability cost, never a bypass. Text the server
refuses is harmless whatever the gateway thought of it (nothing ran) and is counted too.
`backslash_quote = on` makes the server run the most texts (`\\'` is accepted in every
encoding), so the comparison covers the setting an attacker would pick.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from core.sql.parity_cases import ENCODINGS, Case, Generator, make_pool, pool_probes
from core.sql.pg_server import Server, ServerRun

from hoop.core.sql import TextMode, TextModeError, classify
from hoop.core.sql.textmode import postgres_mode

pytestmark = pytest.mark.needs_postgres

CASES_PER_ENCODING = 400
MODES = ("on", "off")
# Encodings with characters that end in a backslash byte, which the server reads as part of them.
TRICKY_ENCODINGS = frozenset({"SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "GB18030", "UHC"})
# Counters, in report order: both sides agree (ran the same statements; of these, more than one /
# both refused), the gateway refused what the server ran (decode / parse), the server refused
# what the gateway read, a statement failed while running (the ones before it agree), mismatch.
COLUMNS = ("same", "split", "refused", "gw_decode", "gw_parse", "srv_only", "runtime", "mismatch")


@dataclass(frozen=True)
class Reading:
    kinds: tuple[str, ...] | None  # None: the gateway refuses the text
    why: str = ""


def gateway_reading(raw: bytes, mode: TextMode) -> Reading:
    try:
        text = mode.decode(raw)
    except TextModeError as exc:
        return Reading(None, f"decode: {exc}")
    result = classify(text, "postgres", mode)
    if result.error:
        return Reading(None, f"parse: {result.error}")
    return Reading(tuple(s.kind for s in result.statements))


# Errors the server raises while reading the whole text, before running any of it: syntax,
# bytes invalid in the encoding or without a server character, a Unicode escape string or an
# escaped quote its settings forbid, an invalid escape.
READING_ERRORS = frozenset({"42601", "22021", "22P05", "0A000", "22P06", "22025"})


def compare(run: ServerRun, reading: Reading) -> str:
    """The COLUMNS entry for one text."""
    if run.sqlstate in READING_ERRORS:
        return "refused" if reading.kinds is None else "srv_only"  # nothing ran
    if reading.kinds is None:
        return "gw_decode" if reading.why.startswith("decode") else "gw_parse"
    if run.sqlstate is None:
        return "same" if reading.kinds == run.kinds else "mismatch"
    # A statement failed while running: the ones before it ran, and it was the next one.
    ran = len(run.kinds)
    return "runtime" if reading.kinds[:ran] == run.kinds and len(reading.kinds) > ran else "mismatch"


def known_cases(gen: Generator) -> list[Case]:
    """Texts valid under two readings, split differently by a wrong reading of the string mode,
    of a lone backslash in non-ASCII text, or of a character ending in a backslash byte."""
    balanced = b"') AS x, length(') ; DELETE FROM probe ; -- ')"
    cases = [
        Case(b"SELECT 'a\\' AS x, ' ; DELETE FROM probe; -- '", False),
        Case(b"SELECT length('\\" + balanced, False),
        Case(b"SELECT length(E'\\" + balanced, False),
    ]
    cases += [Case(b"SELECT length(E'" + char + b"\\" + balanced, False) for char in gen.pool.plain[-3:]]
    cases += [Case(b"SELECT length(E'" + char + balanced, True) for char in gen.pool.tricky if char.endswith(b"\\")]
    return cases


def report(tally: dict[tuple[str, str], Counter[str]], tricky_ran: Counter[tuple[str, str]]) -> str:
    head = f"{'encoding':<15} scs  " + " ".join(f"{c:>9}" for c in COLUMNS) + "  tricky_ran"
    lines = [head]
    for (encoding, scs), counts in tally.items():
        cells = " ".join(f"{counts[c]:>9}" for c in COLUMNS)
        lines.append(f"{encoding:<15} {scs:<4} {cells}  {tricky_ran[(encoding, scs)]:>10}")
    return "\n".join(lines)


def test_gateway_splits_statements_as_the_server_runs_them() -> None:
    server = Server()
    try:
        server_encoding = server.parameter("server_encoding")
        server.command(b"SET backslash_quote TO on")
        server.command(b"SET escape_string_warning TO off")
        server.command(b"CREATE TEMP TABLE probe (n int)")
        probes = pool_probes()
        tally: dict[tuple[str, str], Counter[str]] = {}
        tricky_ran: Counter[tuple[str, str]] = Counter()
        server_only: Counter[str] = Counter()  # why the server refused what the gateway read
        examples: dict[str, list[str]] = {"mismatch": [], "gw_parse": []}
        for encoding in ENCODINGS:
            pool = make_pool(probes, server.read(server_encoding if encoding == "SQL_ASCII" else encoding, probes))
            gen = Generator(encoding, pool)
            cases = known_cases(gen) + gen.cases(CASES_PER_ENCODING)
            server.command(f"SET client_encoding TO '{encoding}'".encode())
            for scs in MODES:
                server.command(f"SET standard_conforming_strings TO {scs}".encode())
                mode = postgres_mode(
                    server.parameter("client_encoding"),
                    server.parameter("standard_conforming_strings"),
                    server_encoding,
                )
                counts = tally[(encoding, scs)] = Counter()
                for case in cases:
                    run = server.run(case.raw)
                    reading = gateway_reading(case.raw, mode)
                    outcome = compare(run, reading)
                    counts[outcome] += 1
                    if outcome == "same" and case.tricky and run.tags:
                        tricky_ran[(encoding, scs)] += 1
                    if outcome == "srv_only":
                        server_only[f"{run.sqlstate} {run.message.split(':')[0]}"] += 1
                    if outcome == "same" and len(run.tags) > 1:
                        counts["split"] += 1
                    if outcome in ("mismatch", "gw_parse"):
                        examples[outcome].append(
                            f"{encoding} scs={scs} {case.raw!r}: server ran {run.tags} "
                            f"(error: {run.sqlstate} {run.message!r}); gateway read {reading.kinds} {reading.why}"
                        )
            server.command(b"SET client_encoding TO 'UTF8'")
    finally:
        server.close()
    table = report(tally, tricky_ran) + "\nsrv_only by server error: " + repr(dict(server_only.most_common()))
    print("\n" + table)  # the counts, for `pytest -s`
    mismatches = examples["mismatch"]
    assert not mismatches, f"{len(mismatches)} texts read differently:\n" + "\n".join(mismatches[:20]) + "\n" + table
    # Refusing what the server runs costs users, never safety; but the string-mode reading must
    # not be the cause: only characters Python has no table for may be (gw_decode).
    unparsed = examples["gw_parse"]
    assert not unparsed, (
        f"{len(unparsed)} texts the server ran were refused:\n" + "\n".join(unparsed[:20]) + "\n" + table
    )
    # The comparison proves something only where the server ran the texts, several at once, and
    # with the characters that hide a backslash.
    thin = [k for k, counts in tally.items() if counts["same"] < counts["refused"] / 2 or counts["split"] < 40]
    assert not thin, f"too few texts ran under {thin}:\n{table}"
    short = [k for k in tally if k[0] in TRICKY_ENCODINGS and tricky_ran[k] < 50]
    assert not short, f"too few texts with a character ending in an ASCII byte ran under {short}:\n{table}"
