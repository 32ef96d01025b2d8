"""Tables printed by ``eval_perf`` and ``eval_memory``, in the vendor guide's layout."""

from __future__ import annotations

MIB = 1024 * 1024


def format_perf(result: dict, clock_mhz: int = 800) -> str:
    """Layer ID, Name, Time(us) per layer, then Total Time(us) and FPS."""
    lines = ["=" * 64, f"{'Performance':^64}", "=" * 64, f"{'Layer ID':<10}{'Name':<44}{'Time(us)':>10}"]
    for layer_id, layer in result.get("layers", {}).items():
        name = f"{layer.get('operation', '')}.{layer['name']}".lstrip(".")
        lines.append(f"{layer_id:<10}{name[:43]:<44}{layer['time']:>10}")
    total = result["total_time"]
    lines.append(f"Total Time(us): {total}")
    fps = 1e6 / total if total else float("inf")
    lines.append(f"FPS({clock_mhz}MHz): {fps:.2f}")
    lines.append("=" * 64)
    return "\n".join(lines)


def format_memory(result: dict) -> str:
    """System, NPU and total memory in MiB, as the guide prints them."""
    lines = ["=" * 64, f"{'Memory Profile Info Dump':^64}", "=" * 64]
    for key, title in (("system_memory", "System memory"), ("npu_memory", "NPU memory"), ("total_memory", "Total memory")):
        part = result.get(key, {})
        lines.append(f"{title}:")
        for field in ("maximum_allocation", "total_allocation"):
            if field in part:
                lines.append(f"    {field}: {part[field] / MIB:.2f} MiB")
    lines.append("=" * 64)
    return "\n".join(lines)
