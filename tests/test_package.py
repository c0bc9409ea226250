"""The package as a user gets it: every console script answers --help, the README's Python example
runs, and a wheel installed into a fresh environment outside the repository trains and evaluates."""

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import soundfile

from asr.audio import load_audio
from asr.errors import UserError
from tests.conftest import TINY_MODEL, cli

REPO = Path(__file__).parents[1]
SCRIPTS = re.findall(r"^([a-z-]+) = \"asr[\w.]*:main\"$", (REPO / "pyproject.toml").read_text(), re.MULTILINE)
OPTION = re.compile(r"^\s+[a-z_.]+=\S*", re.MULTILINE)
"""A line of --help that documents an option: ``  key=default  description``."""


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_console_script_answers_help_with_its_options(script):
    result = cli(script, "--help")
    assert result.returncode == 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
    if script == "asr":  # the dispatcher lists the commands, each of which is tested here
        commands = [name.removeprefix("asr-") for name in SCRIPTS if name != "asr"]
        assert all(re.search(rf"^\s+{c}\b", result.stdout, re.MULTILINE) for c in commands), result.stdout
        assert cli("asr", "eval", "--help").stdout == cli("asr-eval", "--help").stdout
    else:
        assert len(OPTION.findall(result.stdout)) >= 2, result.stdout


def test_a_wrong_key_names_the_nearest_valid_one(tmp_path):
    result = cli("asr-eval", "modle=best.pt", "manifest=x.jsonl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "did you mean model" in result.stderr, result.stderr
    result = cli("asr-train", "trainer.max_step=3", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "trainer.max_steps" in result.stderr, result.stderr


def test_the_built_in_corpus_settings_are_options_too():
    """``data.synthetic`` is None in the schema until ``data=synthetic`` sets it; its keys are
    still options (they were refused as unknown)."""
    from asr.train.cli import check_overrides

    check_overrides(["data.synthetic.root=data/other", "data.synthetic.train_utterances_per_speaker=50"])
    with pytest.raises(UserError, match="did you mean data.synthetic.root"):
        check_overrides(["data.synthetic.rot=x"])


def readme_block(marker: str) -> str:
    """The fenced code block after ``<!-- marker -->`` in the README."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)```", text, re.DOTALL)
    assert found, f"README has no block marked <!-- {marker} -->"
    return found.group(1)


def test_readme_python_example_runs(trained, tiny_corpus, tmp_path):
    """The example as written, in a folder holding what it names: a checkpoint and speech.wav."""
    (tmp_path / "runs/demo/checkpoints").mkdir(parents=True)
    shutil.copy(trained / "checkpoints/best.pt", tmp_path / "runs/demo/checkpoints/best.pt")
    flac = sorted((tiny_corpus / "test").rglob("*.flac"))[0]
    soundfile.write(tmp_path / "speech.wav", load_audio(flac, 16000), 16000)
    result = subprocess.run(
        [sys.executable, "-c", readme_block("api-example")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    plain = cli("asr-transcribe", "model=runs/demo/checkpoints/best.pt", "speech.wav", cwd=tmp_path)
    text = plain.stdout.split("\t", 1)[1].strip()
    lines = result.stdout.splitlines()
    assert lines[0] == text, "the API and the command line transcribe alike"
    words = [line.split() for line in lines[1:]]
    assert [w[2] for w in words] == text.split()
    starts = [float(w[0]) for w in words]
    assert starts == sorted(starts) and all(float(w[0]) <= float(w[1]) for w in words)


@pytest.mark.slow
def test_wheel_installs_trains_and_evaluates_outside_the_repository(tiny_corpus, tmp_path):
    """A built wheel in a fresh venv: the configs come from inside the package. The venv sees the
    dependencies of this one through a .pth line (torch is not installed twice), but not its
    editable ``asr``: .pth files of an added directory are not executed."""
    dist, source = tmp_path / "dist", tmp_path / "source"  # a copy: building writes build/ into it
    top_level = {".git", ".venv", "data", "runs", "build", "outputs", "exp"}  # asr/data is a package: keep it
    anywhere = shutil.ignore_patterns("*.egg-info", "__pycache__", ".*_cache", ".hypothesis")

    def skip(folder: str, names: list[str]) -> set[str]:
        return anywhere(folder, names) | (top_level & set(names) if Path(folder) == REPO else set())

    shutil.copytree(REPO, source, ignore=skip)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("asr-*.whl")
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    (site,) = env.glob("lib/python*/site-packages")
    (site / "deps.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", env / "bin/python", "install", "--no-deps", "-q", wheel],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, cwd=work, timeout=600)

    where = run(env / "bin/python", "-c", "import asr; print(asr.__file__)")
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    job = run(env / "bin/asr-train", "--cfg", "job")
    assert job.returncode == 0 and "train_manifest:" in job.stdout, job.stderr
    manifests = tiny_corpus / "manifests"
    trained = run(
        env / "bin/asr-train", "data=manifest", f"data.train_manifest={manifests}/train.jsonl",
        f"data.dev_manifest={manifests}/dev.jsonl", "data.batch_size=4", "trainer.max_steps=2",
        "trainer.progress=false", *TINY_MODEL, "hydra.run.dir=run",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    evaluated = run(
        env / "bin/asr-eval",
        "model=run/checkpoints/best.pt",
        f"manifest={manifests}/test.jsonl",
        "output=eval.json",
    )
    assert evaluated.returncode == 0 and re.search(r"WER \d+\.\d+%", evaluated.stdout), evaluated.stderr
