"""Rendered systemd units: every setting, systemd's quoting, and `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chronosq import units

REPO = Path(__file__).resolve().parent.parent
CONTRIB = REPO / "contrib" / "systemd"
CONTRIB_ROOT = Path("/var/lib/chronosq")
CONTRIB_PYTHON = "/opt/chronosq/.venv/bin/python"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Parse unit file text into section -> key -> values, in file order."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            assert line[1:-1] not in sections, f"line {number}: section {line} repeated"
            current = sections.setdefault(line[1:-1], {})
            continue
        key, separator, value = line.partition("=")
        assert separator == "=", f"line {number}: {line!r} is not Key=value"
        assert current is not None, f"line {number}: {line!r} comes before any section"
        current.setdefault(key, []).append(value)
    return sections


def single(unit: Unit, section: str, key: str) -> str:
    """Return the one value of `key` in `section`."""
    values = unit.get(section, {}).get(key)
    assert values is not None, f"[{section}] has no {key}="
    assert len(values) == 1, f"[{section}] sets {key}= {len(values)} times: {values}"
    return values[0]


def split_words(value: str) -> list[str]:
    """Split a value into words the way systemd does: quotes and backslash escapes."""
    words: list[str] = []
    word: list[str] | None = None
    quote: str | None = None
    chars = iter(value)
    for char in chars:
        if char == "\\":
            word = word if word is not None else []
            word.append(next(chars))
        elif quote is not None:
            if char == quote:
                quote = None
            else:
                word.append(char)
        elif char in "\"'":
            word = word if word is not None else []
            quote = char
        elif char.isspace():
            if word is not None:
                words.append("".join(word))
            word = None
        else:
            word = word if word is not None else []
            word.append(char)
    assert quote is None, f"unterminated quote in {value!r}"
    if word is not None:
        words.append("".join(word))
    return words


def resolve_specifiers(word: str) -> str:
    """Resolve "%%" to "%", the one specifier that may appear in a rendered path."""
    return word.replace("%%", "%")


def command_argv(value: str) -> tuple[str, list[str]]:
    """Return the program path and argv that systemd runs for a command line."""
    words = [resolve_specifiers(word) for word in split_words(value)]
    program = words[0]
    if program.startswith("@"):
        program, arguments = program[1:], words[1:]
    else:
        arguments = words
    # systemd expands "$" in the arguments, argv[0] included, but not in the path.
    return program, [argument.replace("$$", "$") for argument in arguments]


def sandbox_checks(unit: Unit, root: str) -> None:
    assert single(unit, "Service", "ProtectSystem") == "strict"
    assert single(unit, "Service", "ProtectHome") == "read-only"
    assert single(unit, "Service", "PrivateTmp") == "yes"
    assert single(unit, "Service", "NoNewPrivileges") == "yes"
    read_write = [resolve_specifiers(word)
                  for word in split_words(single(unit, "Service", "ReadWritePaths"))]
    assert read_write == [root]
    environment = [resolve_specifiers(word)
                   for word in split_words(single(unit, "Service", "Environment"))]
    assert environment == [f"CHRONOSQ_ROOT={root}"]


def test_service_unit_settings() -> None:
    unit = parse_unit(units.service_unit(CONTRIB_ROOT, CONTRIB_PYTHON))
    assert set(unit) == {"Unit", "Service", "Install"}
    assert "/var/lib/chronosq" in single(unit, "Unit", "Description")
    assert single(unit, "Unit", "After") == "local-fs.target"
    assert single(unit, "Unit", "StartLimitIntervalSec") == "300"
    assert single(unit, "Unit", "StartLimitBurst") == "5"
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "NotifyAccess") == "main"
    assert single(unit, "Service", "ExecStart") == (
        "/opt/chronosq/.venv/bin/python -m chronosq supervise --root /var/lib/chronosq")
    assert single(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert single(unit, "Service", "WatchdogSec") == "30"
    assert single(unit, "Service", "KillMode") == "mixed"
    assert single(unit, "Service", "KillSignal") == "SIGTERM"
    assert single(unit, "Service", "TimeoutStopSec") == "30"
    assert single(unit, "Service", "Restart") == "on-failure"
    assert single(unit, "Service", "RestartSec") == "2"
    sandbox_checks(unit, "/var/lib/chronosq")
    assert single(unit, "Install", "WantedBy") == "multi-user.target"


def test_service_start_limits_not_in_service_section() -> None:
    unit = parse_unit(units.service_unit(CONTRIB_ROOT, CONTRIB_PYTHON))
    assert "StartLimitIntervalSec" not in unit["Service"]
    assert "StartLimitBurst" not in unit["Service"]


@pytest.mark.parametrize(("grace", "expected"), [(10, "30"), (0, "20"), (42.5, "62.5"),
                                                  (5.25, "25.25")])
def test_service_stop_timeout_follows_grace(grace: float, expected: str) -> None:
    unit = parse_unit(units.service_unit(CONTRIB_ROOT, CONTRIB_PYTHON, stop_grace_seconds=grace))
    assert single(unit, "Service", "TimeoutStopSec") == expected


@pytest.mark.parametrize("grace", [-1, float("nan"), float("inf")])
def test_service_invalid_grace_rejected(grace: float) -> None:
    with pytest.raises(ValueError, match="stop_grace_seconds"):
        units.service_unit(CONTRIB_ROOT, CONTRIB_PYTHON, stop_grace_seconds=grace)


def test_worker_template_settings() -> None:
    unit = parse_unit(units.worker_template(CONTRIB_ROOT, CONTRIB_PYTHON))
    assert set(unit) == {"Unit", "Service", "Install"}
    assert "%i" in single(unit, "Unit", "Description")
    assert single(unit, "Unit", "PartOf") == "chronosq.service"
    assert single(unit, "Unit", "After") == "chronosq.service"
    assert single(unit, "Service", "EnvironmentFile") == "-/etc/chronosq/worker-%i.env"
    assert single(unit, "Service", "ExecStart") == (
        "/opt/chronosq/.venv/bin/python -m chronosq worker --root /var/lib/chronosq "
        "--worker-id %i --type ${CHRONOSQ_TYPES} --handler ${CHRONOSQ_HANDLER}")
    assert single(unit, "Service", "Restart") == "on-failure"
    assert single(unit, "Service", "KillMode") == "mixed"
    assert single(unit, "Service", "KillSignal") == "SIGTERM"
    assert single(unit, "Service", "TimeoutStopSec") == "60"
    sandbox_checks(unit, "/var/lib/chronosq")


def test_worker_template_documents_env_file() -> None:
    text = units.worker_template(CONTRIB_ROOT, CONTRIB_PYTHON)
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert any("/etc/chronosq/worker-%i.env" in line for line in comments)
    assert any("CHRONOSQ_TYPES=" in line for line in comments)
    assert any("CHRONOSQ_HANDLER=" in line for line in comments)


@pytest.mark.parametrize("root", ["/srv/chronosq queue", "/srv/queue 50% $HOME \"q\" 'a' \\x"])
def test_units_quote_root_path(root: str) -> None:
    python = "/opt/chronosq env/bin/python 3%"
    service = parse_unit(units.service_unit(Path(root), python))
    program, argv = command_argv(single(service, "Service", "ExecStart"))
    assert program == python
    assert argv == [python, "-m", "chronosq", "supervise", "--root", root]
    assert root in resolve_specifiers(single(service, "Unit", "Description"))
    sandbox_checks(service, root)

    worker = parse_unit(units.worker_template(Path(root), python))
    program, argv = command_argv(single(worker, "Service", "ExecStart"))
    assert program == python
    assert argv == [python, "-m", "chronosq", "worker", "--root", root, "--worker-id", "%i",
                    "--type", "${CHRONOSQ_TYPES}", "--handler", "${CHRONOSQ_HANDLER}"]
    sandbox_checks(worker, root)


def test_units_python_with_dollar() -> None:
    python = "/opt/$chronosq/bin/python"
    unit = parse_unit(units.service_unit(CONTRIB_ROOT, python))
    program, argv = command_argv(single(unit, "Service", "ExecStart"))
    assert program == python
    assert argv[0] == python
    assert argv[1:] == ["-m", "chronosq", "supervise", "--root", "/var/lib/chronosq"]


@pytest.mark.parametrize(
    ("root", "python", "message"),
    [
        ("relative/root", CONTRIB_PYTHON, "root 'relative/root' is not an absolute path"),
        ("/var/lib/chronosq", "python3", "python 'python3' is not an absolute path"),
        ("/var/lib/new\nline", CONTRIB_PYTHON, "control character"),
        ("/var/lib/chronosq", "/opt/tab\there/python", "control character"),
        ("/var/lib/chronosq", "/opt/\"quoted\"/python", "quote or backslash"),
        ("/var/lib/chronosq", "/opt/back\\slash/python", "quote or backslash"),
    ],
)
def test_units_invalid_paths_rejected(root: str, python: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        units.service_unit(Path(root), python)
    with pytest.raises(ValueError, match=message):
        units.worker_template(Path(root), python)


def test_contrib_units_match_rendered() -> None:
    service = (CONTRIB / "chronosq.service").read_text()
    worker = (CONTRIB / "chronosq-worker@.service").read_text()
    assert service == units.service_unit(CONTRIB_ROOT, CONTRIB_PYTHON)
    assert worker == units.worker_template(CONTRIB_ROOT, CONTRIB_PYTHON)


def unit_content_errors(output: str) -> list[str]:
    """Return the lines of verify output that are about the units under test."""
    names = (units.SERVICE_NAME, "chronosq-worker@")
    return [line for line in output.splitlines() if any(name in line for name in names)]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze(tmp_path: Path) -> None:
    # Spaces, "%" and "$" in both paths exercise the quoting. verify reports a
    # program path it cannot run, so the interpreter must really exist there.
    root = tmp_path / "queue root 50% $HOME"
    root.mkdir()
    bin_dir = tmp_path / "bin dir 7% $x"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    service = unit_dir / units.SERVICE_NAME
    service.write_text(units.service_unit(root, str(python)))
    worker = unit_dir / units.WORKER_TEMPLATE_NAME
    worker.write_text(units.worker_template(root, str(python)))

    result = subprocess.run(
        ["systemd-analyze", "verify", str(service), str(worker)],
        capture_output=True, text=True, timeout=120, cwd=unit_dir,
    )
    # Only lines that name these units count, because verify may also complain
    # about the machine, such as a container without a running systemd.
    errors = unit_content_errors(result.stdout + result.stderr)
    assert errors == [], "\n".join(errors)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_catches_bad_unit(tmp_path: Path) -> None:
    # A missing program and an unquoted path with a space must produce lines
    # that unit_content_errors() keeps, or the test above could never fail.
    unit = tmp_path / units.SERVICE_NAME
    unit.write_text("[Service]\nExecStart=/nonexistent/chronosq-python\n"
                    f"ReadWritePaths={tmp_path}/a b\n")
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    errors = unit_content_errors(result.stdout + result.stderr)
    assert any("not executable" in line for line in errors), result.stderr
    assert any("ReadWritePaths" in line for line in errors), result.stderr


def test_units_make_outside_files_writable(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chronosq.cli import app

    root = tmp_path / "root"
    runner = CliRunner()
    runner.invoke(app, ["init", "--root", str(root)])
    config = root / "chronosq.toml"
    config.write_text(config.read_text().replace('textfile = ""',
                                                 'textfile = "/var/lib/prom/cq.prom"'))
    out_dir = tmp_path / "units"

    result = runner.invoke(app, ["systemd", "--root", str(root), "--output-dir", str(out_dir),
                                 "--python", "/usr/bin/python3"])

    assert result.exit_code == 0, result.output
    service = parse_unit((out_dir / units.SERVICE_NAME).read_text())["Service"]
    worker = parse_unit((out_dir / units.WORKER_TEMPLATE_NAME).read_text())["Service"]
    assert service["ReadWritePaths"] == [f"{root} /var/lib/prom"]
    assert worker["ReadWritePaths"] == [str(root)]
