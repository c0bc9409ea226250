"""``asr-train``: Hydra entry point. Parses ``key=value`` overrides and calls ``loop.run``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from asr.errors import UserError
from asr.train.config import CONFIG_DIR, register_schema


def _train(cfg: DictConfig) -> None:
    from asr.train.loop import run

    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Under ``torchrun``, ranks other than 0 write nothing: no Hydra run directory or log file
    (they take rank 0's run directory once the process group is up)."""
    register_schema()
    if int(os.environ.get("RANK", 0)) > 0:
        sys.argv = [arg for arg in sys.argv if not arg.startswith("hydra.run.dir=")]
        sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")(_train)()


if __name__ == "__main__":
    main()
