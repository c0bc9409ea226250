"""``asr-train``: train a model. A Hydra app: pick config groups (``model=small``, ``data=manifest``,
``+experiment=librispeech_ds2``) and set any option with ``key=value``; the run directory
(``hydra.run.dir``, default ``runs/<date>_<time>``) gets the checkpoints, logs and metrics.

    asr-train                                             # built-in corpus, small model, CPU
    asr-train data=manifest data.train_manifest=train.jsonl data.dev_manifest=dev.jsonl
    asr-train trainer.max_time_minutes=30 hydra.run.dir=runs/mine
    asr-train --cfg job                                   # print the resolved config
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from asr.cli import field_docs, help_text, suggest
from asr.configs import CONFIG_DIR
from asr.errors import UserError
from asr.models import MODELS
from asr.train.config import TrainConfig, register_schema


def _train(cfg: DictConfig) -> None:
    from asr.train.loop import run

    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def groups() -> dict[str, list[str]]:
    """Config groups and their choices (``asr/configs/<group>/<choice>.yaml``)."""
    folders = sorted(p for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and not p.name.startswith("_"))
    return {folder.name: sorted(p.stem for p in folder.glob("*.yaml")) for folder in folders}


def model_options() -> dict[str, list[str]]:
    """``model.<field>`` names of each registered model."""
    return {name: [f"model.{f.name}" for f in dataclasses.fields(cls.Dims)] for name, cls in MODELS.items()}


def train_help() -> str:
    text = help_text("asr-train", __doc__, TrainConfig).replace("usage: asr-train key=value ...", (
        "usage: asr-train [group=choice ...] [key=value ...]"))  # fmt: skip
    lines = ["", "config groups (group=choice):"]
    lines += [f"  {group}: {' | '.join(choices)}" for group, choices in groups().items()]
    for name, cls in MODELS.items():
        docs = field_docs(cls.Dims)
        lines += ["", f"model.* of model.name={name} ({cls.__module__}):"]
        for field in dataclasses.fields(cls.Dims):
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            lines.append(f"  model.{field.name}={str(default).replace(' ', '')}")
            if field.name in docs:
                lines.append(f"      {docs[field.name]}")
    return text + "\n".join(lines) + "\n"


def check_overrides(argv: list[str]) -> None:
    """A ``key=value`` whose key is no option (``trainer.max_epoch=3``) is a one-line error naming
    the nearest; group choices, ``+``/``~`` overrides and ``hydra.*`` are Hydra's business."""
    from asr.cli import options

    known = [option.name for option in options(TrainConfig)]
    known += [name for names in model_options().values() for name in names] + ["model.name"]
    for argument in argv:
        if "=" not in argument or argument.startswith(("-", "+", "~", "hydra.", "hydra/")):
            continue
        key = argument.split("=", 1)[0]
        if key in groups() or key in known:
            continue
        raise UserError(
            f"unknown option {key!r}{suggest(key, known + list(groups()))} (asr-train --help lists them)"
        )


def main() -> None:
    """Under ``torchrun``, ranks other than 0 write nothing: no Hydra run directory or log file
    (they take rank 0's run directory once the process group is up)."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(train_help(), end="")
        return
    try:
        check_overrides(sys.argv[1:])
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    register_schema()
    if int(os.environ.get("RANK", 0)) > 0:
        sys.argv = [arg for arg in sys.argv if not arg.startswith("hydra.run.dir=")]
        sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")(_train)()


if __name__ == "__main__":
    main()
