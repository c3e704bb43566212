"""Statement text as stored and shown (hoop/core/redact.py): values a detector matches and
credentials are masked inside their own literal, everything else stays as typed, and where a
mask could not be placed exactly the rest is withheld, never shown differently."""

from __future__ import annotations

import re

import pytest
from core.sql import corpus_mysql, corpus_postgres

from hoop.core.masking_rules import MaskRule
from hoop.core.redact import StatementMasking, mask_free_text
from hoop.core.statement_detectors import HINT_WORDS
from hoop.core.statement_lexing import NUMBER, STRING, readings
from hoop.core.statement_secrets import CREDENTIAL_ARGS, CREDENTIAL_NAME

MASKING = StatementMasking()
WITHHELD = "withheld by Hoop"


def pg(text: str, masking: StatementMasking = MASKING) -> str:
    return masking.mask(text, "postgres", "pg").text


def my(text: str, masking: StatementMasking = MASKING) -> str:
    return masking.mask(text, "mysql", "my").text


def sh(text: str) -> str:
    return MASKING.mask(text, "shell", "web1").text


# -- detectors, in every kind of literal and comment ----------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("INSERT INTO t VALUES ('cy@example.com', '5500000000000004')",
         "INSERT INTO t VALUES ('****@example.com', '************0004')"),
        ("SELECT $$cy@example.com$$, $q$ 219-09-9999 $q$, E'\\t cy@example.com', U&'cy@example.com'",
         "SELECT $$****@example.com$$, $q$ *****9999 $q$, E'\\t ****@example.com', U&'****@example.com'"),
        ("SELECT 1 -- mail cy@example.com\n/* key AKIAIOSFODNN7EXAMPLE */",
         "SELECT 1 -- mail ****@example.com\n/* key ****MPLE */"),
        ('SELECT 1 AS "cy@example.com"', 'SELECT 1 AS "****@example.com"'),
        # a card number typed as a number: the whole number, quoted so the text still parses
        ("UPDATE t SET n = 1 WHERE card = 5500000000000004", "UPDATE t SET n = 1 WHERE card = '************0004'"),
        ("SELECT 'order 4539578763621487', 'v1.2.3', 12345", "SELECT 'order 4539578763621487', 'v1.2.3', 12345"),
    ],
)  # fmt: skip
def test_postgres_literals_and_comments_are_masked_in_place(typed: str, stored: str) -> None:
    assert pg(typed) == stored


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("INSERT INTO t VALUES (\"cy@example.com\", 5500000000000004, 'O\\'Brien')",
         "INSERT INTO t VALUES (\"****@example.com\", '************0004', 'O\\'Brien')"),
        ("SELECT 1 # cy@example.com\n, 2 /* x--cy@example.com */ -- +1 415-555-0132",
         "SELECT 1 # ****@example.com\n, 2 /* x--****@example.com */ -- *******0132"),
        ("SELECT /*!50000 'cy@example.com' */ 1", "SELECT /*!50000 '****@example.com' */ 1"),
    ],
)  # fmt: skip
def test_mysql_literals_and_comments_are_masked_in_place(typed: str, stored: str) -> None:
    assert my(typed) == stored


def test_the_connections_rules_choose_the_format_of_each_detector() -> None:
    rules = [
        MaskRule("mail", detectors=("email",), style="redact", connections=("prod*",)),
        MaskRule("cards", detectors=("credit_card",), style="hash"),  # the key stays in the gateway
    ]
    masking = StatementMasking(rules)
    text = "INSERT INTO t VALUES ('cy@example.com', '5500000000000004')"
    assert masking.mask(text, "postgres", "prod-eu").text == "INSERT INTO t VALUES ('****', '****')"
    assert masking.mask(text, "postgres", "staging").text == "INSERT INTO t VALUES ('****@example.com', '****')"


# -- credentials: only the literal that is one ----------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "ALTER ROLE app PASSWORD 'S3cret!x' VALID UNTIL '2030-01-01'",
        "CREATE ROLE app WITH LOGIN ENCRYPTED PASSWORD 'S3cret!x' CONNECTION LIMIT 3",
        "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'S3cret!x')",
        "CREATE SUBSCRIPTION s CONNECTION 'host=db user=app password=S3cret!x' PUBLICATION p",
        "SELECT crypt('S3cret!x', gen_salt('bf')), pgp_sym_encrypt('note', 'S3cret!x')",
        "UPDATE users SET password_hash = crypt('S3cret!x', 'salt'), name = 'Ann' WHERE id = 1",
        "INSERT INTO users (name, password) VALUES ('Ann', 'S3cret!x')",
        "SELECT * FROM users WHERE api_key IN ('S3cret!x', 'S3cret!x') AND name = 'Ann'",
        "SELECT dblink_connect('postgresql://app:S3cret!x@db/app')",
        "ALTER ROLE app PASSWORD 'S3cr'\n'et!x' VALID UNTIL 'infinity'",  # one literal to the server
    ],
)
def test_postgres_credentials_are_masked_alone(typed: str) -> None:
    stored = pg(typed)
    assert not re.search("S3cr|et!x", stored) and WITHHELD not in stored
    # everything but the credential is as typed
    assert re.sub(r"\*{4}", "", stored) == re.sub(r"S3cret!x|S3cr'\n'et!x", "", typed)


@pytest.mark.parametrize(
    "typed",
    [
        "CREATE USER 'ann'@'10.0.0.1' IDENTIFIED BY 'S3cret!x'",
        "ALTER USER 'ann'@'%' IDENTIFIED WITH 'mysql_native_password' BY 'S3cret!x' REPLACE 'S3cret!x'",
        "ALTER USER ann@localhost IDENTIFIED VIA ed25519 USING PASSWORD('S3cret!x') OR unix_socket",
        "SET PASSWORD FOR 'ann'@'%' = PASSWORD('S3cret!x')",
        "SET PASSWORD FOR CURRENT_USER() = 'S3cret!x'",
        "GRANT SELECT ON db.* TO 'ann'@'%' IDENTIFIED BY PASSWORD 'S3cret!x'",
        "CHANGE MASTER TO MASTER_HOST='db1', MASTER_USER='repl', MASTER_PASSWORD='S3cret!x'",
        "SET @pwd = 'S3cret!x', @who = 'ann'",
        "SELECT AES_ENCRYPT('note', 'S3cret!x'), ENCRYPT('S3cret!x', 'ab')",
        "INSERT INTO users SET name = 'ann', passwd = 'S3cret!x'",
        "SET PASSWORD = _utf8mb4'S3cr' 'et!x', @who = 'ann'",  # an introducer; two literals, one string
        "UPDATE users SET api_key = N'S3cret!x' WHERE name = 'ann'",
    ],
)
def test_mysql_credentials_are_masked_alone(typed: str) -> None:
    stored = my(typed)
    assert not re.search("S3cr|et!x", stored) and WITHHELD not in stored
    assert re.sub(r"\*{4}", "", stored) == re.sub("S3cret!x|S3cr|et!x", "", typed)


def test_every_credential_word_is_a_hint_that_the_text_needs_scanning() -> None:
    """The writer scans a text for credentials only when it holds a hint word: each word the
    finders look for must contain one."""
    words = ["identified", "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "private_key"]
    words += ["master_password", "access_key", *CREDENTIAL_ARGS["postgres"], *CREDENTIAL_ARGS["mysql"]]
    assert [w for w in words if not any(h in w.lower() for h in HINT_WORDS)] == []
    assert all(CREDENTIAL_NAME.fullmatch(w) for w in words[1:9])


@pytest.mark.parametrize(
    "typed",
    [
        "-- password rotation\nUPDATE t SET note = 'rotated', owner = 'ops' WHERE id = 42",
        "/* reset the password */ DELETE FROM sessions WHERE user_name = 'ann'",
        "SELECT password FROM users WHERE name = 'ann'",
        "SELECT * FROM users WHERE password_changed_at < '2020-01-01' AND name = 'ann'",
        "SELECT \"secret\", token_count FROM t WHERE kind = 'identified'",
    ],
)
def test_the_word_password_elsewhere_masks_nothing(typed: str) -> None:
    assert pg(typed) == typed
    assert my(typed) == typed


# -- masked columns ---------------------------------------------------------------------------


def test_values_bound_to_a_masked_column_are_masked_in_its_style() -> None:
    masking = StatementMasking(
        [MaskRule("pii", columns=("customers.notes", "ssn")), MaskRule("p", columns=("phone",), style="partial")]
    )
    assert (
        pg(
            "UPDATE customers c SET notes = 'has asthma', name = 'Ann' WHERE c.ssn IN ('123', '456') AND id = 5",
            masking,
        )
        == "UPDATE customers c SET notes = '****', name = 'Ann' WHERE c.ssn IN ('****', '****') AND id = 5"
    )
    insert = "INSERT INTO customers (name, phone, notes) VALUES ('Ann', '0612345678', lower('X')), ('Bo', NULL, 'y')"
    assert pg(insert, masking) == insert.replace("'0612345678'", "'******5678'").replace("'X'", "'****'").replace(
        "'y'", "'****'"
    )
    reverse = "SELECT * FROM t WHERE 'ab' = ssn OR name LIKE 'a%'"
    assert my(reverse, masking) == reverse.replace("'ab'", "'****'")
    other = "UPDATE orders SET notes = 'gift wrap' WHERE id = 5"  # the rule names customers.notes
    assert pg(other, masking) == other


# -- what an attacker might try: the approver must see what runs ----------------------------


@pytest.mark.parametrize(
    ("typed", "dialect", "kept"),
    [
        # read with NO_BACKSLASH_ESCAPES the literal ends at \' and the UPDATE sets balance
        ("UPDATE t SET pwd = 'a\\' , balance = 1000000 WHERE id = 1 -- '", "mysql", "UPDATE t SET pwd = '"),
        # standard_conforming_strings off: the e-mail address is inside a literal, with it on it is not
        ("SELECT 'a\\' , 'cy@example.com' --'", "postgres", "SELECT 'a\\' , '"),
        # an e-mail address outside any literal is code (a MySQL user variable after OR)
        ("DELETE FROM t WHERE id = 1 OR@example.com", "mysql", "DELETE FROM t WHERE id = 1 "),
        # a private key cut short: unterminated, the server rejects the text
        ("ALTER ROLE app PASSWORD 'S3cret!x", "postgres", "ALTER ROLE app PASSWORD"),
    ],
)
def test_what_cannot_be_masked_exactly_is_withheld_not_disguised(typed: str, dialect: str, kept: str) -> None:
    stored = MASKING.mask(typed, dialect, "c").text
    assert stored.startswith(kept + "…[") and WITHHELD in stored
    assert "cy@example" not in stored and "S3cret" not in stored and "balance" not in stored


def test_a_mask_never_opens_or_closes_a_comment() -> None:
    assert pg("SELECT 1 /* x/AKIAIOSFODNN7EXAMPLE/y */, 2") == "SELECT 1 /* x/ ****MPLE/y */, 2"
    assert pg("SELECT 1 /* key AKIAIOSFODNN7EXAMPLE*/, 2") == "SELECT 1 /* key ****MPLE*/, 2"


def _shape(text: str, dialect: str) -> list[tuple[str, str]]:
    """The tokens with their bodies left out: what masking may not change (a masked number
    becomes a string)."""
    [reading, *_] = readings(text, dialect)
    kinds = ["literal" if t.kind in (STRING, NUMBER) else t.kind for t in reading]
    return [(k, "" if t.body_end > t.body_start else text[t.start : t.end]) for k, t in zip(kinds, reading)]


SENSITIVE = ["cy@example.com", "5500000000000004", "+1 415-555-0132", "GB82WEST12345698765432", "S3cret!x"]


@pytest.mark.parametrize(
    ("dialect", "corpus"),
    [("postgres", corpus_postgres.BLOCK + corpus_postgres.ALLOW), ("mysql", corpus_mysql.BLOCK + corpus_mysql.ALLOW)],
)
def test_masking_changes_no_token_of_any_corpus_statement(dialect: str, corpus: list[str]) -> None:
    masking = StatementMasking([MaskRule("pii", columns=("users.*",))])
    checked = 0
    for n, typed in enumerate(corpus):
        # every string literal of the statement holds a sensitive value, and a comment does too
        value = SENSITIVE[n % len(SENSITIVE)]
        text = re.sub(r"'[^'\\]*'", f"'{value} x'", typed) + " -- cy@example.com"
        stored = masking.mask(text, dialect, "c").text
        assert "cy@example.com" not in stored and "5500000000000004" not in stored, (text, stored)
        if WITHHELD in stored:
            continue
        assert _shape(stored, dialect) == _shape(text, dialect), (text, stored)
        checked += 1
    assert checked > len(corpus) * 0.8


# -- shell commands ---------------------------------------------------------------------------


def test_shell_commands_are_masked_on_the_raw_text() -> None:
    assert sh("grep cy@example.com /var/log/mail.log | mysql --password=S3cret -e 'select 1'") == (
        "grep ****@example.com /var/log/mail.log | mysql --password=**** -e 'select 1'"
    )
    assert (
        sh("PGPASSWORD=S3cret psql postgresql://app:S3cret@db/app")
        == "PGPASSWORD=**** psql postgresql://app:****@db/app"
    )


def test_a_private_key_is_masked_only_inside_one_quoted_word() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    assert sh(f"printf '%s' '{key}' > /root/k.pem") == "printf '%s' '****' > /root/k.pem"
    # unquoted, each line is a command: masking the "key" would hide `reboot` from the approver
    unquoted = "-----BEGIN PRIVATE KEY-----\nreboot\n-----END PRIVATE KEY-----"
    assert sh(unquoted) == unquoted


# -- echoes of a statement elsewhere ---------------------------------------------------------


def test_a_servers_error_quoting_the_statement_is_scrubbed() -> None:
    masked = MASKING.mask("ALTER USER 'ann'@ IDENTIFIED BY 'S3cret!x'", "mysql", "my")
    error = "You have an error in your SQL syntax; ... near 'IDENTIFIED BY 'S3cret!x'' at line 1"
    assert "S3cret!x" not in masked.scrub(error)
    assert (
        mask_free_text("Key (email)=(cy@example.com) already exists.")
        == "Key (email)=(****@example.com) already exists."
    )
