"""One data-parallel training process, as started by `torchrun` (see `tasks.train.launch`).

`python -m torch.distributed.run --nproc_per_node N -m tasks.train.worker SPEC.json`
runs `pretrain_stage.pretrain` in N processes. Rank 0 prints each logged step as
one JSON line after LOG_PREFIX (the launcher turns them back into StepLogs) and
writes the result to the spec's `result_path`, and every rank leaves `done-rank<N>` once all
have finished; any rank that fails exits non-zero,
and torchrun then stops the others; a rank that raises also leaves
`error-rank<N>.json` (type and message) beside the result for the launcher.
"""

from __future__ import annotations

import faulthandler
import json
import sys
from pathlib import Path

from llmforge import atomic
from llmforge.config import PretrainConfig
from model import distributed
from model.train import StepLog
from tasks.train import pretrain as pretrain_stage

LOG_PREFIX = "LLMFORGE_STEP "


def done_marker(result_path: Path, rank: int) -> Path:
    """Written by a rank once every rank has passed the final barrier."""
    return result_path.with_name(f"done-rank{rank}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tasks.train.worker SPEC.json", file=sys.stderr)
        return 2
    # A rank that dies of a signal (an abort inside gloo, a segfault) prints where it was.
    faulthandler.enable()
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    config = PretrainConfig.model_validate(spec["config"])
    device_type = "cuda" if distributed.pick_device(config.device).startswith("cuda") else "cpu"
    info = distributed.init(device_type)
    try:
        def on_log(entry: StepLog) -> None:
            if info.is_main:
                print(LOG_PREFIX + json.dumps(vars(entry)), flush=True)

        try:
            result = pretrain_stage.pretrain(
                Path(spec["tokens_dir"]), Path(spec["tokenizer_path"]), Path(spec["checkpoint_dir"]), config,
                on_log=on_log, resume=bool(spec.get("resume", False)),
            )
        except Exception as exc:
            # torchrun's own report names only exit codes; leave the reason where the launcher looks.
            error_path = Path(spec["result_path"]).with_name(f"error-rank{info.rank}.json")
            atomic.write_text(error_path, json.dumps({"rank": info.rank, "type": type(exc).__name__, "message": str(exc)}))
            raise
        if info.is_main:
            atomic.write_text(Path(spec["result_path"]), json.dumps(result))
        # Nobody leaves before rank 0 has written the checkpoint and the result.
        distributed.barrier()
        # From here on the run is complete: what fails now fails closing the process group (see launch.py).
        atomic.write_text(done_marker(Path(spec["result_path"]), info.rank), "")
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
