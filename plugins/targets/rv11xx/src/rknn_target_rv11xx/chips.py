"""RV1109 and RV1126: one NPU design, one compatibility family (``rv1126``).

Sources (facts), each line marked ``estimate`` where no public source was found:
- RV1126 2.0 TOPS int8 at 934 MHz, RV1109 1.2 TOPS at 594 MHz (Rockchip product briefs, quoted in
  issue 9): 1024 int8 MACs per cycle fits both (1024 x 2 x 934 MHz = 1.91 TOPS, x 594 MHz = 1.22 TOPS).
- int16 96 and fp16 32 MACs per cycle: estimates (the RK1808 NPU's int8 : int16 : fp16 ratio, 30:3:1;
  Rockchip states only that the NPU computes 8 and 16 bit).
- NPU 934 / 594 MHz and DDR 924 MHz: Rockchip's rknn_model_zoo/scaling_frequency.sh.
- DDR bus 32 bits: estimate (one 32-bit DDR3/DDR4/LPDDR4 channel).
- NPU on-chip SRAM 512 KiB, 16 kernel lanes x 16 input lanes: estimates.
- CPU fallback throughput (fp32 NEON, ~1 MAC per cycle and core): RV1126 4 x Cortex-A7 at 1.5 GHz ->
  6000 MACs/us, RV1109 2 x Cortex-A7 at 1.5 GHz -> 3000 (core counts: Rockchip product briefs): estimates.
- Kernel, stride and pooling limits: the same NPU generation as RK1808 (estimate).
- runtime base 16 MiB: estimate.
- Calibration: fitted by ``benchmarks/bench_chip.py`` (least squares on log latency) to every published
  row of this design in ``benchmarks/chip_published.py`` (rknn_model_zoo and Paddle-Lite) -- one
  NPU design, so one set of parameters for RV1109 and RV1126, which differ in NPU clock and CPU.
  Leave-one-model-out cross-validation in the same benchmark measures how well it generalises.
"""

from __future__ import annotations

from rknn_targets.npu.chip import Calibration, Chip, NpuLimits
from rknn_targets.npu.constraints import standard_rules

FAMILY = "rv1126"
MACS = {"int8": 1024, "int16": 96, "fp16": 32}
# fitted by benchmarks/bench_chip.py on all published rows (benchmarks/chip_published.py)
CALIBRATION = Calibration(utilisation=0.546, depthwise_efficiency=0.171, layer_overhead_cycles=33590,
                          bytes_per_cycle=3.34, tensor_per_cycle=256)
RULES = standard_rules()
COMMON = dict(family=FAMILY, macs_per_cycle=MACS, ddr_type="LPDDR4/DDR4", ddr_mhz=924, ddr_bus_bits=32,
              sram_kib=512, kernel_lanes=16, input_lanes=16, cpu_fallback_us=250.0,
              cpu_bytes_per_us=800.0, runtime_base_mib=16.0, calibration=CALIBRATION, rules=RULES,
              limits=NpuLimits())

CHIPS = (
    Chip("rv1109", npu_mhz=594, cpu_macs_per_us=3000.0, **COMMON, doc="RV1109: 1.2 TOPS int8 NPU"),
    Chip("rv1126", npu_mhz=934, cpu_macs_per_us=6000.0, **COMMON, doc="RV1126: 2.0 TOPS int8 NPU"),
)
