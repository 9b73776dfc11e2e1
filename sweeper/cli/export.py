"""`sweeper export SWEEP (--best | --trial T --epoch E) --out DIR [--store STORE]`.

Writes one model of a sweep as safetensors weights, its open_clip model config and a model
card (`sweeper.model_export`), so open_clip alone loads it. Exit 0 with the folder written, 2 with
one line naming the problem and its fix, and nothing in DIR.
"""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a sweep's best cleaned model (or any kept epoch) for open_clip",
        description="Export a model of a sweep: safetensors weights, its open_clip config and "
        "a model card (accuracy, ASR, relative change, sweep, trial, epoch, spec, sha256). "
        'Load it with open_clip.add_model_config("DIR/<model>.json") and '
        'open_clip.create_model("<model>", pretrained="DIR/open_clip_model.safetensors").',
    )
    p.add_argument("sweep", help="sweep id or sweep directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--best",
        action="store_true",
        help="the best cleaned candidate: highest accuracy at ASR <= the sweep's success_asr",
    )
    which.add_argument("--trial", metavar="T", help="a trial id (with --epoch)")
    p.add_argument("--epoch", type=int, metavar="E", help="an epoch of --trial (0 = its start)")
    p.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder")
    p.add_argument(
        "--store",
        default=os.environ.get("SWEEPER_STORE", "sweeps"),
        help="results store (default ./sweeps)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweeper.errors import ExportError
    from sweeper.model_export import CARD_JSON, export

    if args.trial is not None and args.epoch is None:
        raise ExportError(f"--trial {args.trial} needs --epoch E (0 is the trial's start model)")
    if args.best and args.epoch is not None:
        raise ExportError("--epoch goes with --trial, not --best: pass one of the two")
    out = export(args.store, args.sweep, args.out, trial=args.trial, epoch=args.epoch)
    print(f"exported: {out} ({CARD_JSON}, README.md, weights and open_clip config)")
    return 0
