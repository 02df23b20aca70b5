"""Every Makefile target's commands resolve: the programs exist, the modules import, the scripts
are there and parse, and an ``ihdm_core`` subcommand answers --help. ``make -n`` prints the
commands exactly as make would run them."""

import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("setup", "book", "test", "lab", "clean-book")


def _commands(target: str) -> list[list[str]]:
    proc = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"make -n {target}: {proc.stderr}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip() and not ln.startswith("make")]
    return [shlex.split(ln) for ln in lines]


def _program(word: str) -> Path | None:
    """A program as the Makefile names it. ``.venv/bin/X`` is the environment scripts/setup.sh
    makes; where the checkout has none (tests run from another environment), the same program
    of the environment running the tests stands in for it."""
    if word.startswith(".venv/bin/"):
        mine = ROOT / word
        return mine if mine.exists() else _in_env(Path(word).name)
    found = shutil.which(word)
    return Path(found) if found else None


def _in_env(name: str) -> Path | None:
    path = Path(sys.executable).parent / name
    return path if path.exists() else None


def _check(cmd: list[str]) -> None:
    exe = _program(cmd[0])
    assert exe is not None, f"{cmd[0]} does not exist ({shlex.join(cmd)})"
    args = cmd[1:]
    if Path(cmd[0]).name.startswith("python"):
        assert args[0] == "-m", shlex.join(cmd)
        module = args[1]
        assert importlib.util.find_spec(module) is not None, (
            f"no module {module}: {shlex.join(cmd)}"
        )
        if module == "ihdm_core":  # the subcommand must exist and parse its options
            sub = args[2]
            proc = subprocess.run(
                [str(exe), "-m", "ihdm_core", sub, "--help"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, f"{shlex.join(cmd)}: {proc.stderr[-500:]}"
            for opt in (a for a in args[3:] if a.startswith("--")):
                assert opt in proc.stdout, f"{shlex.join(cmd)}: {sub} has no option {opt}"
    elif Path(cmd[0]).name == "bash":
        script = ROOT / args[0]
        assert script.exists(), f"{script} is missing"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, (
            f"{script} does not parse"
        )
        # Modules the script runs with `python -m` must exist too.
        for line in script.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if len(words) >= 3 and words[0] == "python" and words[1] == "-m":
                assert importlib.util.find_spec(words[2]) is not None, f"{script}: {line}"
    elif Path(cmd[0]).name == "jupyter":
        proc = subprocess.run(
            [str(exe), args[0], "--help"], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{shlex.join(cmd)}: {proc.stderr[-500:]}"
        for opt in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
            assert opt in proc.stdout, f"{shlex.join(cmd)}: jupyter {args[0]} has no option {opt}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_every_target_command_resolves(target):
    cmds = _commands(target)
    assert cmds, f"make {target} runs nothing"
    for cmd in cmds:
        _check(cmd)


def test_the_check_catches_a_moved_module():
    # What `make book` called before: the pipeline moved to ihdm_core.book.pipeline.
    with pytest.raises(AssertionError, match="no module ihdm_core.pipeline"):
        _check([".venv/bin/python", "-m", "ihdm_core.pipeline", "--profile", "quick"])
    with pytest.raises(AssertionError, match="has no option --nonsense"):
        _check([".venv/bin/python", "-m", "ihdm_core", "book", "--nonsense"])
