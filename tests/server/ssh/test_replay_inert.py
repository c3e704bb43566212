"""`hoop replay` of a real terminal session whose output carries sequences that act outside the
screen: the replay draws the screen (colours kept) and sends none of them to the approver."""

from __future__ import annotations

from pathlib import Path

from _pty import Term
from support.inert import active_characters
from support.waiting import eventually

# The payloads are put together by the shell, so the echo of the typed line does not hold them.
PRINTF = (
    r't=pwned c=ZWNobyBw; printf "\033]52;c;${c}d25lZA==\007\033]0;$t-title\007'
    r'\033P1\$qm\033\\\\\033[31mred\033[0m done-%s\n" 42'
)


def test_replay_of_a_terminal_session_is_inert(gateway):
    t = Term(gateway.ssh_args("alice+web1", "-t"), cols=100, rows=20)
    try:
        t.expect(r"[#$] ")
        t.send(PRINTF + "\r")
        t.expect(r"done-42")
        t.send("exit\r")
        t.wait()
    finally:
        t.close()
    assert b"\x1b]52;c;ZWNobyBwd25lZA==\x07" in t.raw, "the target really sent the clipboard sequence"

    def recorded() -> Path:
        casts = sorted(gateway.recordings.glob("*.cast"), key=lambda p: int(p.stem))
        assert casts and "done-42" in casts[-1].read_text()
        return casts[-1]

    cast = eventually(recorded)
    replay = gateway.run_hoop("replay", cast.stem)
    assert replay.returncode == 0, replay.stderr
    played = replay.stdout
    assert "\x1b]" not in played and "\x1bP" not in played and "\x07" not in played
    assert "pwned-title" not in played and "ZWNobyBwd25lZA==" not in played
    assert active_characters(played, keep="\n\r\t\x08\x1b") == []
    assert "\x1b[31mred\x1b[0m done-42" in played, "the screen is drawn, colours included"
    text = gateway.run_hoop("replay", cast.stem, "--text").stdout
    assert active_characters(text, keep="\n\t") == [] and "red done-42" in text and "pwned-title" not in text
