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

import re
import secrets
from collections import Counter
from dataclasses import dataclass, field

import pytest
from core.sql.parity_cases import ENCODINGS, Case, CharPool, Generator, make_pool, pool_probes
from core.sql.pg_server import Server, ServerRun

from hoop.core.sql import TextMode, TextModeError, classify
from hoop.core.sql.textmode import postgres_mode

pytestmark = pytest.mark.needs_postgres
BYTES = re.compile(r"0x[0-9a-f]{2}( 0x[0-9a-f]{2})*")

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


@dataclass
class Results:
    """Counts per (client encoding, standard_conforming_strings), and what they stand for."""

    server_encoding: str
    tally: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    tricky_ran: Counter[tuple[str, str]] = field(default_factory=Counter)
    server_only: Counter[str] = field(default_factory=Counter)  # why the server refused what the gateway read
    examples: dict[str, list[str]] = field(default_factory=lambda: {"mismatch": [], "gw_parse": []})
    unsupported: list[str] = field(default_factory=list)  # client encodings the server cannot convert

    def table(self) -> str:
        lines = [f"server_encoding {self.server_encoding}; client encodings it refuses: {self.unsupported}"]
        lines.append(f"{'encoding':<15} scs  " + " ".join(f"{c:>9}" for c in COLUMNS) + "  tricky_ran")
        for (encoding, scs), counts in self.tally.items():
            cells = " ".join(f"{counts[c]:>9}" for c in COLUMNS)
            lines.append(f"{encoding:<15} {scs:<4} {cells}  {self.tricky_ran[(encoding, scs)]:>10}")
        lines.append("srv_only by server error: " + repr(dict(self.server_only.most_common())))
        return "\n".join(lines)

    def assert_agreement(self) -> str:
        """Fail on any text both sides read differently, or that the server ran and the gateway
        could not parse; the report table otherwise."""
        table = self.table()
        print("\n" + table)  # the counts, for `pytest -s`
        mismatches = self.examples["mismatch"]
        assert not mismatches, (
            f"{len(mismatches)} texts read differently:\n" + "\n".join(mismatches[:20]) + "\n" + table
        )
        # Refusing what the server runs costs users, never safety; but the string-mode reading
        # must not be the cause: only characters Python has no table for may be (gw_decode).
        unparsed = self.examples["gw_parse"]
        assert not unparsed, (
            f"{len(unparsed)} texts the server ran were refused:\n" + "\n".join(unparsed[:20]) + "\n" + table
        )
        return table


def differential(server: Server, pools: dict[str, CharPool], per_encoding: int) -> Results:
    """Run every encoding's texts under both string modes on `server` and compare."""
    results = Results(server.parameter("server_encoding"))
    server.command(b"SET backslash_quote TO on")
    server.command(b"SET escape_string_warning TO off")
    server.command(b"CREATE TEMP TABLE probe (n int)")
    for encoding in ENCODINGS:
        gen = Generator(encoding, pools[encoding])
        cases = known_cases(gen) + gen.cases(per_encoding)
        if server.try_command(f"SET client_encoding TO '{encoding}'".encode()):
            results.unsupported.append(encoding)  # no conversion to the server's encoding
            continue
        for scs in MODES:
            server.command(f"SET standard_conforming_strings TO {scs}".encode())
            mode = postgres_mode(
                server.parameter("client_encoding"),
                server.parameter("standard_conforming_strings"),
                results.server_encoding,
            )
            counts = results.tally[(encoding, scs)] = Counter()
            for case in cases:
                run = server.run(case.raw)
                reading = gateway_reading(case.raw, mode)
                outcome = compare(run, reading)
                counts[outcome] += 1
                if outcome == "same" and len(run.tags) > 1:
                    counts["split"] += 1
                if outcome == "same" and case.tricky and run.tags:
                    results.tricky_ran[(encoding, scs)] += 1
                if outcome == "srv_only":
                    results.server_only[f"{run.sqlstate} {BYTES.sub('0x..', run.message.split(':')[0])}"] += 1
                if outcome in results.examples:
                    results.examples[outcome].append(
                        f"{encoding} scs={scs} {case.raw!r}: server ran {run.tags} "
                        f"(error: {run.sqlstate} {run.message!r}); gateway read {reading.kinds} {reading.why}"
                    )
    return results


@pytest.fixture(scope="module")
def pools() -> dict[str, CharPool]:
    """Each encoding's characters as the server reads them (into UTF-8, the test database's
    encoding; SQL_ASCII text is then checked as UTF-8)."""
    server = Server()
    try:
        probes = pool_probes()
        return {e: make_pool(probes, server.read("UTF8" if e == "SQL_ASCII" else e, probes)) for e in ENCODINGS}
    finally:
        server.close()


def test_gateway_splits_statements_as_the_server_runs_them(pools: dict[str, CharPool]) -> None:
    server = Server()
    try:
        assert server.parameter("server_encoding") == "UTF8"
        results = differential(server, pools, CASES_PER_ENCODING)
    finally:
        server.close()
    table = results.assert_agreement()
    # The comparison proves something only where the server ran the texts, several at once, and
    # with the characters that hide a backslash.
    tally = results.tally
    assert not results.unsupported and len(tally) == len(ENCODINGS) * len(MODES), table
    thin = [k for k, counts in tally.items() if counts["same"] < counts["refused"] / 2 or counts["split"] < 40]
    assert not thin, f"too few texts ran under {thin}:\n{table}"
    short = [k for k in tally if k[0] in TRICKY_ENCODINGS and results.tricky_ran[k] < 50]
    assert not short, f"too few texts with a character ending in an ASCII byte ran under {short}:\n{table}"


@pytest.mark.parametrize("server_encoding", ["SQL_ASCII", "EUC_JP"])
def test_gateway_splits_statements_as_servers_of_other_encodings_run_them(
    pools: dict[str, CharPool], server_encoding: str
) -> None:
    """A database in SQL_ASCII keeps the client's bytes unconverted (and refuses high bytes from
    client encodings that could hide an ASCII byte); one in EUC_JP converts through other tables
    and accepts only the client encodings it can convert."""
    admin = Server()
    database = f"hoop_parity_{secrets.token_hex(4)}"
    encoding = f"ENCODING '{server_encoding}' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    admin.command(f"CREATE DATABASE {database} {encoding}".encode())
    try:
        server = Server(database)
        try:
            results = differential(server, pools, CASES_PER_ENCODING // 4)
        finally:
            server.close()
    finally:
        admin.command(f"DROP DATABASE {database} WITH (FORCE)".encode())
        admin.close()
    table = results.assert_agreement()
    assert results.server_encoding == server_encoding and len(results.tally) >= 6, table
    # A SQL_ASCII database refuses every high byte from SJIS, BIG5, ... clients: only ASCII runs.
    thin = [k for k, counts in results.tally.items() if counts["same"] < 10]
    assert not thin, f"too few texts ran under {thin}:\n{table}"
