"""Bodies of MySQL / MariaDB stored programs: the statements a procedure, function, trigger,
event or `BEGIN NOT ATOMIC` block will run, so each is judged where the program is defined.

The lexer keeps a stored program's BEGIN ... END together; this module walks its tokens as the
server's compound-statement grammar does: labels, BEGIN/END, DECLARE (variables, cursors,
handlers), IF/ELSEIF/ELSE, CASE/WHEN, WHILE/DO, REPEAT/UNTIL, LOOP, RETURN, and the flow words
(LEAVE, ITERATE, OPEN, FETCH, CLOSE) that run no SQL. Every other statement is classified like a
top-level one; conditions, defaults and RETURN values are classified as the SELECT they are,
and kept when they touch a table or call a function. Anything the walker or the classifier
cannot read makes the classification fail (fail closed): as text the gateway cannot read, not
as a syntax error of the server's.

Parameters, DECLAREd variables and a trigger's NEW.x / OLD.x are values, not columns (the
server reads a name that is both as the variable): in a WHERE clause they are read as a
placeholder, so `DELETE FROM t WHERE flag` with a variable is as unbounded as `WHERE ?`.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import Classification, Statement
from .mysql_lexer import MySQLSyntaxError, Tok

StatementOf = Callable[[list[Tok], frozenset[str]], Statement]  # tokens, variable names in scope
ExpressionOf = Callable[[list[Tok]], Classification]

_FLOW = frozenset({"LEAVE", "ITERATE", "OPEN", "FETCH", "CLOSE"})
_SKIP_WORDS = frozenset({"ELSE", "LOOP", "REPEAT", "DO"})
_CONDITION_END = {"IF": "THEN", "ELSEIF": "THEN", "WHEN": "THEN", "WHILE": "DO", "UNTIL": "END"}
# words between a routine's parameter list and its body
_CHARACTERISTICS = frozenset(
    {"LANGUAGE", "SQL", "NOT", "DETERMINISTIC", "CONTAINS", "NO", "READS", "MODIFIES", "DATA", "SECURITY"}
    | {"DEFINER", "INVOKER"}
)
_TYPE_WORDS = frozenset({"UNSIGNED", "SIGNED", "ZEROFILL", "BINARY", "ASCII", "UNICODE", "PRECISION", "VARYING"})


def _close_paren(toks: list[Tok], i: int) -> int:
    """Index after the parenthesis group that opens at i."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].text == "(":
            depth += 1
        elif toks[j].text == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise MySQLSyntaxError("unbalanced parentheses in a stored program", syntax=False)


def parameters(toks: list[Tok]) -> frozenset[str]:
    """Names in the parameter list of CREATE PROCEDURE/FUNCTION ([IN|OUT|INOUT] name type, ...)."""
    opener = next((i for i, t in enumerate(toks) if t.text == "("), None)
    if opener is None:
        return frozenset()
    names: set[str] = set()
    expect, depth = True, 0
    for t in toks[opener + 1 : _close_paren(toks, opener) - 1]:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif t.text == "," and depth == 0:
            expect = True
        elif expect and t.up not in ("IN", "OUT", "INOUT"):
            names.add(t.name)
            expect = False
    return frozenset(names)


def values_in_where(toks: list[Tok], clean: str, variables: frozenset[str]) -> str:
    """`clean` with each variable reference after the statement's first WHERE replaced by a
    placeholder of the same length (offsets stay valid)."""
    start = next((i for i, t in enumerate(toks) if t.up == "WHERE"), None)
    if start is None:
        return clean
    out = list(clean)
    i = start + 1
    while i < len(toks):
        t = toks[i]
        dotted = i + 2 < len(toks) and toks[i + 1].text == "."
        prev_dot = toks[i - 1].text == "."
        end = None
        if (t.up in ("NEW", "OLD") or t.name in variables) and dotted and not prev_dot:
            end = toks[i + 2].end  # NEW.col, rec.col: a row held in a variable, a value here
        elif t.kind in ("word", "ident") and t.name in variables and not prev_dot and not dotted:
            if not (i + 1 < len(toks) and toks[i + 1].text == "("):
                end = t.end
        if end is not None:
            out[t.start : end] = "?" + " " * (end - t.start - 1)
            i += 3 if dotted else 1
        else:
            i += 1
    return "".join(out)


def body_start(toks: list[Tok], obj: str) -> int | None:
    """Index of the first body token of CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT (or ALTER EVENT)."""
    words = [t.up for t in toks]
    if obj == "event":
        return next((i + 1 for i, w in enumerate(words) if w == "DO"), None)
    if obj == "trigger":
        row = next((i for i, w in enumerate(words) if w == "ROW" and i > 2 and words[i - 1] == "EACH"), None)
        if row is None:
            return None
        return row + 1 + (2 if row + 1 < len(words) and words[row + 1] in ("FOLLOWS", "PRECEDES") else 0)
    # PROCEDURE / FUNCTION: the body follows the parameter list, RETURNS type and characteristics
    opener = next((i for i, t in enumerate(toks) if t.text == "("), None)
    if opener is None:
        return None  # a loadable function (CREATE FUNCTION f RETURNS INT SONAME ...) has no body
    i = _close_paren(toks, opener)
    if i < len(toks) and words[i] == "RETURNS":
        i += 2
        if i < len(toks) and toks[i].text == "(":
            i = _close_paren(toks, i)
        while i < len(toks):
            if words[i] in _TYPE_WORDS:
                i += 1
            elif words[i] in ("CHARSET", "COLLATE"):
                i += 2
            elif words[i] == "CHARACTER" and i + 1 < len(toks) and words[i + 1] == "SET":
                i += 3
            else:
                break
    while i < len(toks):
        if words[i] == "COMMENT":
            i += 2
        elif words[i] in _CHARACTERISTICS:
            i += 1
        else:
            return i
    return None


class _Walker:
    def __init__(
        self, toks: list[Tok], statement: StatementOf, expression: ExpressionOf, variables: frozenset[str]
    ) -> None:
        self.toks, self.expression = toks, expression
        self.variables = set(variables)
        self.out: list[Statement] = []
        self.classify = statement

    def statement(self, part: list[Tok]) -> Statement:
        return self.classify(part, frozenset(self.variables))

    def up(self, i: int) -> str:
        return self.toks[i].up if i < len(self.toks) else ""

    def walk(self) -> list[Statement]:
        i = 0
        while i < len(self.toks):
            i = self.step(i)
        return self.out

    def step(self, i: int) -> int:
        toks, w = self.toks, self.up(i)
        if toks[i].text == ";":
            return i + 1
        if i + 1 < len(toks) and toks[i + 1].text == ":" and toks[i].kind in ("word", "ident"):
            return i + 2  # a label
        if w == "BEGIN":
            return i + (3 if self.up(i + 1) == "NOT" and self.up(i + 2) == "ATOMIC" else 1)
        if w == "END":  # END [IF | LOOP | WHILE | REPEAT | CASE] [label]
            return self.statement_end(i)
        if w in _SKIP_WORDS:
            return i + 1
        if w == "CASE":
            return self.condition(i + 1, "WHEN") if self.up(i + 1) != "WHEN" else i + 1
        if w in _CONDITION_END:
            return self.condition(i + 1, _CONDITION_END[w]) + 1
        if w == "DECLARE":
            return self.declare(i)
        if w == "FOR":  # MariaDB: FOR v IN [REVERSE] a .. b | cursor | (SELECT ...) DO ... END FOR
            return self.for_loop(i)
        end = self.statement_end(i)
        if w in _FLOW:
            return end
        if w == "RETURN":
            self.keep(self.expression(toks[i + 1 : end]))
        elif w == "SET":
            self.assignment(i, end)
        else:
            self.out.append(self.statement(toks[i:end]))
        return end

    def assignment(self, i: int, end: int) -> None:
        """SET: a statement of its own (PASSWORD, GLOBAL ...); a variable set from a subquery is
        judged by the expression it assigns (`SET v = (SELECT ...)`, `SET a = 1, b = f()`)."""
        try:
            self.out.append(self.statement(self.toks[i:end]))
        except MySQLSyntaxError:
            eq = next((j for j in range(i, end) if self.toks[j].text in ("=", ":=")), None)
            if eq is None:
                raise
            self.keep(self.expression(self.toks[eq + 1 : end]))

    def condition(self, i: int, stop: str) -> int:
        """Classify the expression from i up to the `stop` word (outside CASE ... END); return its index."""
        j = self.condition_end(i, stop)
        if j > i:
            self.keep(self.expression(self.toks[i:j]))
        return j

    def condition_end(self, i: int, stop: str) -> int:
        """Index of the `stop` word that ends the expression starting at i."""
        j, depth, cases = i, 0, 0
        while j < len(self.toks):
            t = self.toks[j]
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            elif depth == 0 and t.up == "CASE":
                cases += 1
            elif depth == 0 and t.up == "END" and cases:
                cases -= 1
            elif depth == 0 and not cases and t.up == stop:
                break
            j += 1
        else:
            raise MySQLSyntaxError(f"{stop} missing in a stored program", syntax=False)
        return j

    def for_loop(self, i: int) -> int:
        at = next((j for j in range(i, len(self.toks)) if self.up(j) == "IN"), None)
        if at is None:
            raise MySQLSyntaxError("FOR without IN in a stored program", syntax=False)
        self.variables.add(self.toks[i + 1].name)  # the loop variable (a number or a row)
        do = self.condition_end(at + 1, "DO")
        head = self.toks[at + 1 : do]
        while len(head) > 2 and head[0].text == "(" and head[-1].text == ")":
            head = head[1:-1]
        if head and head[0].up in ("SELECT", "WITH", "VALUES", "TABLE"):
            self.out.append(self.statement(head))
        elif any(t.up == "SELECT" for t in head):
            raise MySQLSyntaxError("FOR loop bounds not understood in a stored program", syntax=False)
        return do + 1

    def declare(self, i: int) -> int:
        end = self.statement_end(i)
        words = [t.up for t in self.toks[i:end]]
        if "HANDLER" in words:  # DECLARE ... HANDLER FOR conditions <statement>
            j = i + words.index("FOR") + 1
            while j < len(self.toks):
                if self.up(j) == "NOT" and self.up(j + 1) == "FOUND":
                    j += 2
                elif self.up(j) == "SQLSTATE":
                    j += 3 if self.up(j + 1) == "VALUE" else 2
                else:
                    j += 1
                if j < len(self.toks) and self.toks[j].text == ",":
                    j += 1
                else:
                    return j  # the handler's statement is walked next
            raise MySQLSyntaxError("DECLARE HANDLER without a statement", syntax=False)
        if "CURSOR" not in words and "CONDITION" not in words:  # DECLARE a, b INT [DEFAULT ...]
            j = i + 1
            while j < end and self.toks[j].kind in ("word", "ident"):
                self.variables.add(self.toks[j].name)
                if j + 1 < end and self.toks[j + 1].text == ",":
                    j += 2
                else:
                    break
        if "CURSOR" in words and "FOR" in words:
            self.out.append(self.statement(self.toks[i + words.index("FOR") + 1 : end]))
        elif "DEFAULT" in words:
            self.keep(self.expression(self.toks[i + words.index("DEFAULT") + 1 : end]))
        return end

    def statement_end(self, i: int) -> int:
        """Index of the `;` that ends the simple statement at i (compound parts never nest here)."""
        depth = 0
        for j in range(i, len(self.toks)):
            t = self.toks[j]
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            elif t.text == ";" and depth == 0:
                return j
        return len(self.toks)

    def keep(self, found: Classification) -> None:
        if found.error is not None:
            raise MySQLSyntaxError(f"in a stored program: {found.error}", syntax=False)
        for stmt in found.statements:
            if stmt.tables or stmt.functions or stmt.flags or stmt.inner or stmt.dynamic:
                self.out.append(stmt)


def body_statements(
    toks: list[Tok], statement: StatementOf, expression: ExpressionOf, variables: frozenset[str] = frozenset()
) -> list[Statement]:
    """Every statement a stored-program body (a single statement or a compound one) runs;
    `variables` are the program's parameters."""
    return _Walker(toks, statement, expression, variables).walk()
