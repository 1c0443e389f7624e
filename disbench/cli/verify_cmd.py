"""``disbench verify RUN_DIR``: replay a run's first steps and check it reproduces
(see :mod:`disbench.verify`).

Exit status: 0 when the replay reproduced the run bit for bit, or when this
process executes it differently (the drift is reported); 1 when the same
execution gave other numbers; 2 for bad input.
"""

from __future__ import annotations

from pathlib import Path

from ..execution import check_threads
from ..verify import verify_run
from .common import add_progress_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="replay a run's first steps and check that it reproduces bit for bit",
        description="Replay RUN_DIR's first steps from its own config.gin and seed, with the execution it "
                    "recorded (threads, device type), in a temporary folder; compare every row of scalars.jsonl "
                    "and, at a checkpoint step, every tensor of the checkpoint. Where this machine executes the "
                    "run differently (CPU kernels, device, torch, --threads, a fused group replayed alone), the "
                    "settings that differ and the largest relative difference are reported instead.")
    p.add_argument("run_dir", help="a run directory (of `disbench train`, or runs/MODEL/seedS of a compare)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="steps to replay (default: to the run's checkpoint if it is at step <= 200, else to its "
                        "first checkpoint, at most 200)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for the replay (default: the thread count the run recorded)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the device type the run recorded, if here)")
    add_progress_option(p)
    p.set_defaults(func=run_verify)


def run_verify(args) -> int:
    threads = check_threads(args.threads) if args.threads is not None else None
    verification = verify_run(Path(args.run_dir), steps=args.steps, threads=threads, device=args.device,
                              progress=False if args.no_progress else None)
    print(verification.report())
    return 0 if verification.passed else 1
