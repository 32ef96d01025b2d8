"""The facts of one NPU chip as data, its fitted physical parameters, and the Target record that carries it."""

from __future__ import annotations

import os
from typing import Any

import attrs

from rknn_core.errors import RknnError
from rknn_core.records import Target

DTYPES = ("int8", "int16", "fp16")  # the MAC array's rates; u8/i8 run at int8, dfp16 at int16, float at fp16


@attrs.frozen
class Calibration:
    """Physical parameters of one NPU design, fitted to published latencies by benchmarks/bench_chip.py.

    ``utilisation``: fraction of the MAC array's peak a convolution sustains once its channels are padded
    to the array's lanes; ``depthwise_efficiency``: fraction of that a depthwise convolution reaches (one
    input channel per output leaves the array's input lanes idle); ``layer_overhead_cycles``: NPU cycles
    to start one fused layer (command fetch, descriptor set-up, pipeline fill and drain);
    ``bytes_per_cycle``: bytes the NPU's memory port moves per NPU cycle (its DMA and bus run at the NPU
    clock, so a slower NPU clock also slows its transfers; capped by the DDR's peak);
    ``tensor_per_cycle``: elements per NPU cycle of the tensor unit that runs the layers without MACs
    (element-wise ops, SiLU's Sigmoid and Mul, pooling passes, resizing, concatenation copies).
    """

    utilisation: float
    depthwise_efficiency: float
    layer_overhead_cycles: float
    bytes_per_cycle: float
    tensor_per_cycle: float

    FIELDS = ("utilisation", "depthwise_efficiency", "layer_overhead_cycles", "bytes_per_cycle", "tensor_per_cycle")


@attrs.frozen
class NpuLimits:
    """Hardware limits the supported-op rules check (kernel sizes, strides, pools)."""

    max_kernel_per_stride: int = 11   # convolution N x N needs N <= 11 * stride
    max_stride: int = 16              # estimate: larger strides fall back to the CPU
    max_dilation: int = 32            # estimate
    max_pool_kernel: int = 3          # native max pooling 2x2 and 3x3; larger kernels are split into 3x3 passes
    max_avg_pool_kernel: int = 11     # local average pooling up to 11x11
    max_channels: int = 8192          # estimate: tensors with more channels fall back


@attrs.frozen
class Chip:
    """One chip: compute and memory facts (sources in the declaring plugin), its rules and calibration.

    Clocks are adjustable: ``with_clocks(npu_mhz=..., ddr_mhz=...)`` in code, or the environment
    variables ``RKNN_<CHIP>_NPU_MHZ`` / ``RKNN_<CHIP>_DDR_MHZ`` (``RKNN_RK1808_NPU_MHZ=600``) for
    eval_perf / eval_memory and the benchmarks.
    """

    name: str
    family: str
    macs_per_cycle: dict[str, int]   # int8 / int16 / fp16 multiply-accumulates per NPU cycle
    npu_mhz: float
    ddr_type: str
    ddr_mhz: float                   # DDR clock; two transfers per clock
    ddr_bus_bits: int
    sram_kib: int                    # on-chip buffer the NPU keeps activations and weight tiles in
    kernel_lanes: int                # output channels (kernels) computed in parallel: cout is padded to it
    input_lanes: int                 # input channels one step of the array consumes: cin is padded to it
    cpu_fallback_us: float           # switching a layer to the CPU and back (cache flush, format conversion)
    cpu_bytes_per_us: float          # CPU kernels' throughput on a fallback layer
    cpu_macs_per_us: float           # CPU multiply-accumulates per microsecond (fp32 NEON, all cores)
    runtime_base_mib: float          # system memory of the runtime library and driver before any model
    calibration: Calibration
    rules: dict[str, Any] = attrs.field(factory=dict)  # op -> OpRule (rknn_targets.npu.constraints)
    limits: NpuLimits = NpuLimits()
    doc: str = ""

    @property
    def ddr_bytes_per_us(self) -> float:
        """Peak DDR bandwidth: two transfers per clock over the bus width."""
        return self.ddr_mhz * 2 * self.ddr_bus_bits / 8

    @property
    def sram_bytes(self) -> int:
        return self.sram_kib * 1024

    def peak_tops(self, dtype: str = "int8") -> float:
        """Peak tera-operations per second (one MAC = two operations)."""
        return 2 * self.macs_per_cycle[dtype] * self.npu_mhz * 1e6 / 1e12

    def with_clocks(self, npu_mhz: float | None = None, ddr_mhz: float | None = None) -> Chip:
        """This chip at other clocks."""
        for label, value in (("NPU", npu_mhz), ("DDR", ddr_mhz)):
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < 10_000):
                raise RknnError(f"{self.name}: the {label} clock must be a positive number of MHz, got {value!r}")
        return attrs.evolve(self, npu_mhz=npu_mhz or self.npu_mhz, ddr_mhz=ddr_mhz or self.ddr_mhz)

    def from_environment(self) -> Chip:
        """This chip with the clocks ``RKNN_<CHIP>_NPU_MHZ`` / ``RKNN_<CHIP>_DDR_MHZ`` set, if any."""
        clocks = {}
        for key in ("npu", "ddr"):
            var = f"RKNN_{self.name.upper()}_{key.upper()}_MHZ"
            if var in os.environ:
                try:
                    clocks[f"{key}_mhz"] = float(os.environ[var])
                except ValueError:
                    raise RknnError(f"{var}='{os.environ[var]}' is not a clock in MHz") from None
        return self.with_clocks(**clocks)

    # the protocol the core and the simulator use (docs/plugins.md, rknn_targets -> Target.chip) ----------------
    def fallback_layers(self, graph: Any) -> list[tuple[str, str, str]]:
        """(layer name, op, reason) of every node that would run on the CPU of this chip."""
        from rknn_targets.npu.constraints import fallback_nodes

        return [(node.name, node.op, reason) for node, reason in fallback_nodes(graph, self)]

    def perf(self, model: Any, dtype: str | None = None) -> dict:
        """Modelled per-layer NPU time of ``model`` (``rknn_targets.npu.perf``); ``dtype`` overrides the build's."""
        from rknn_targets.npu.perf import model_perf

        return model_perf(model, self.from_environment(), dtype)

    def memory(self, model: Any) -> dict:
        """Estimated system and NPU memory of ``model`` (``rknn_targets.npu.memory``)."""
        from rknn_targets.npu.memory import model_memory

        return model_memory(model, self)

    def lower(self, model: Any) -> dict:
        """The pre-compiled program of ``model`` and its weights in this chip's layout (``rknn_targets.npu.program``)."""
        from rknn_targets.npu.program import compile_program

        return compile_program(model, self)


def chip_target(chip: Chip, doc: str = "") -> Target:
    """The Target record declaring ``chip``: it serves the chip's name in its family and runs nothing itself
    (running on a connected chip needs a device target plugin); the simulator models it."""
    return Target(chip.name, chip.family, (chip.name,), None,
                  doc=doc or f"Rockchip {chip.name.upper()}: NPU performance and memory modelled on the PC",
                  chip=chip)
