"""Options and output shared by several commands."""

from __future__ import annotations


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_progress_option(parser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def format_metrics(metrics: dict) -> str:
    lines = []
    for name, result in sorted(metrics.items()):
        parts = ", ".join(f"{k} {v:.3f}" for k, v in (result.get("per_factor") or {}).items())
        lines.append(f"  {name}: {result['score']:.4f}" + (f"  ({parts})" if parts else ""))
    return "\n".join(lines)
