"""DIR/compare.json: what a compare directory holds and how each run stands.

Rewritten (atomically) when compare starts and after every finished run, so
an interrupted comparison still says which runs are done.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from ..errors import DisbenchError
from ..io import atomic_write_json, read_json
from .plan import RunJob, read_status

COMPARE_NAME = "compare.json"


def run_entry(compare_dir: Path, job: RunJob, outcome: dict | None = None) -> dict:
    """One run's line in compare.json: its planned action, its status on disk now, and the
    error of its last outcome unless the disk has moved past it."""
    results = read_status(job.run_dir) or {}
    entry = {"model": job.model, **({"point": job.point.name, "label": job.label} if job.point.name else {}),
             "seed": job.seed,
             "run_dir": str(Path(job.run_dir).relative_to(compare_dir)),
             "action": job.action, "status": results.get("status", "missing"),
             "steps": results.get("steps"), "fingerprint": results.get("protocol_fingerprint"),
             "error": results.get("error") if results.get("status") == "failed" else None}
    if outcome:
        # what the disk says wins: a run another process held and finished is complete, not an error
        left_to_another = outcome.get("locked") and entry["status"] == "complete"
        entry["error"] = entry["error"] if left_to_another else outcome.get("error") or entry["error"]
        entry.update({k: outcome[k] for k in ("seconds", "worker", "locked") if k in outcome})
    return entry


def write_manifest(compare_dir: Path, header: dict, entries: list[dict]) -> dict:
    fingerprints = sorted({e["fingerprint"] for e in entries if e.get("fingerprint")})
    manifest = {**header, "fingerprint": fingerprints[0] if len(fingerprints) == 1 else None,
                "runs": entries, "updated": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    atomic_write_json(Path(compare_dir) / COMPARE_NAME, manifest)
    return manifest


def read_manifest(compare_dir: Path) -> dict | None:
    path = Path(compare_dir) / COMPARE_NAME
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise DisbenchError(f"{path} cannot be read: {exc}") from None
