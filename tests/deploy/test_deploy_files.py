"""The files under deploy/ are accepted by the tools that read them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.servers import missing

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = "/opt/hoop/bin/hoop"  # where the unit expects the installed command


def test_systemd_unit_is_accepted_by_systemd_analyze(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze is not installed")
    unit = (ROOT / "deploy" / "hoop.service").read_text()
    assert f"ExecStart={INSTALLED} serve -c /etc/hoop/hoop.toml" in unit
    # verify checks that each command exists: point it at a stand-in for the installed one.
    stand_in = tmp_path / "hoop"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    (tmp_path / "hoop.service").write_text(unit.replace(INSTALLED, str(stand_in)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "hoop.service")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "hoop.service" not in result.stderr, result.stderr  # no warning about the unit itself


def test_container_file_runs_the_gateway() -> None:
    text = (ROOT / "deploy" / "Containerfile").read_text()
    assert 'ENTRYPOINT ["hoop"]' in text and 'CMD ["serve", "-c", "/etc/hoop/hoop.toml"]' in text
    for copied in ("pyproject.toml", "README.md", "LICENSE", "hoop"):
        assert (ROOT / copied).exists(), copied


def test_license_is_the_apache_license() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
