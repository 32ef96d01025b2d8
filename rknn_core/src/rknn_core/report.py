"""Tables printed by ``eval_perf`` and ``eval_memory``, in the vendor guide's layout."""

from __future__ import annotations

MIB = 1024 * 1024
RULE = "=" * 104


def format_perf(result: dict) -> str:
    """Layer ID, Name, Operation, Time(us), the bound each layer hits and the PC's own time; then Total
    Time(us) and FPS at the chip's NPU clock. Without a chip model the times are the PC's, and say so."""
    if set(result) == {"total_time"}:  # a device without perf_debug reports only its total, as the vendor's
        total = result["total_time"]
        return "\n".join([RULE, f"{'Performance (on the device)':^104}", RULE, f"Total Time(us): {total}",
                          f"FPS: {1e6 / total if total else float('inf'):.2f}", RULE])
    chip = result.get("chip")
    title = f"Performance (modelled NPU time on {chip})" if chip else "Performance (measured on this PC)"
    lines = [RULE, f"{title:^104}", RULE,
             f"{'Layer ID':<10}{'Name':<36}{'Operation':<28}{'Time(us)':>10}  {'Bound':<10}{'PC(us)':>8}"]
    for layer_id, layer in result.get("layers", {}).items():
        lines.append(f"{layer_id:<10}{layer['name'][:35]:<36}{layer.get('operation', '')[:27]:<28}"
                     f"{layer['time']:>10}  {layer.get('bound', '-'):<10}{layer.get('pc_time', layer['time']):>8}")
    total = result["total_time"]
    fps = 1e6 / total if total else float("inf")
    lines.append(f"Total Time(us): {total}")
    if chip:
        lines.append(f"FPS({result['npu_mhz']:g}MHz): {fps:.2f}")
        lines.append(f"Modelled for {chip} (NPU {result['npu_mhz']:g} MHz, DDR {result['ddr_mhz']:g} MHz, "
                     f"{result['dtype']} MACs); PC(us): this PC's own run time, not the chip's "
                     f"(total {result.get('pc_total_time', 0)} us)")
    else:
        lines.append(f"FPS(this PC): {fps:.2f}")
        lines.append("No installed target plugin models the model's chip: these are this PC's times")
    if result.get("operators"):
        lines += [RULE, f"{'Operator':<36}{'Layers':>8}{'Time(us)':>12}{'Ratio(%)':>10}"]
        for op, entry in result["operators"].items():
            lines.append(f"{op:<36}{entry['count']:>8}{entry['time']:>12}{entry['ratio']:>10.2f}")
    lines.append(RULE)
    return "\n".join(lines)


def format_memory(result: dict) -> str:
    """System, NPU and total memory in MiB, as the guide prints them, then the model-size line."""
    lines = ["=" * 64, f"{'Memory Profile Info Dump':^64}", "=" * 64]
    for key, title in (("system_memory", "System memory"), ("npu_memory", "NPU memory"), ("total_memory", "Total memory")):
        part = result.get(key, {})
        lines.append(f"{title}:")
        for field in ("maximum_allocation", "total_allocation"):
            if field in part:
                lines.append(f"    {field}: {part[field] / MIB:.2f} MiB")
    lines.append("=" * 64)
    if "model_size" in result:
        lines.append("INFO: When evaluating memory usage, we need consider")
        lines.append(f"the size of model, current model size is: {result['model_size'] / MIB:.2f} MiB")
    if result.get("estimate"):
        lines.append(f"(an estimate of the memory model for {result.get('chip')}, computed on this PC; "
                     f"a connected device measures it)")
    return "\n".join(lines)
