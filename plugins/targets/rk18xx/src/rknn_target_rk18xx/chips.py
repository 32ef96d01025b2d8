"""RK1806, RK1808 and RK3399Pro: one NPU design, one compatibility family (``rk1808``).

Sources (facts), each line marked ``estimate`` where no public source was found:
- MACs per cycle 1920 int8 / 192 int16 / 64 fp16: Radxa wiki "ROCK Pi N10 NPU" (the RK3399Pro NPU
  feature list, wiki.radxa.com/RockpiN10/hardware/npu); RK1808's 3.0 TOPS int8 / 300 GOPS int16 /
  100 GFLOPS fp16 at 792 MHz (Rockchip RK1808 brief, quoted in issue 9) are the same array:
  1920 x 2 x 792 MHz = 3.04 TOPS.
- NPU 792 MHz and DDR 924 MHz (RK1808), NPU 792 MHz and DDR 934 MHz (RK3399Pro): the maximum clocks
  Rockchip's rknn_model_zoo/scaling_frequency.sh sets for its published benchmarks.
- DDR bus 32 bits: estimate (the boards use one 32-bit LPDDR3/DDR4 channel).
- NPU on-chip SRAM 512 KiB, 16 kernel lanes x 16 input lanes: estimates.
- CPU fallback throughput (fp32 NEON, all cores, ~1.5 MAC per cycle and core): RK1808/RK1806 2 x
  Cortex-A35 at 1.6 GHz (Rockchip RK1808 brief) -> 4800 MACs/us; RK3399Pro 2 x A72 + 4 x A53 -> 12000:
  estimates.
- Convolution N x N with N <= 11 x stride, max pooling 2x2/3x3, average pooling <= 11x11: the
  RK3399Pro NPU feature list (Radxa wiki above).
- RK1806: estimate; Rockchip's rknpu_ddk lists it with RK1808 (same NPU assumed).
- runtime base 18 MiB: the vendor guide's eval_memory example (mobilenet_v1 on RK1808: 22.65 MiB
  system peak with a 4.10 MiB model).
- Calibration: fitted by ``benchmarks/bench_chip.py`` (least squares on log latency) to every published
  row of this design in ``benchmarks/chip_published.py`` (rknn_model_zoo and Paddle-Lite).
  Leave-one-model-out cross-validation in the same benchmark measures how well it generalises.
"""

from __future__ import annotations

from rknn_targets.npu.chip import Calibration, Chip, NpuLimits
from rknn_targets.npu.constraints import standard_rules

FAMILY = "rk1808"
MACS = {"int8": 1920, "int16": 192, "fp16": 64}
# fitted by benchmarks/bench_chip.py on all published rows (benchmarks/chip_published.py)
CALIBRATION = Calibration(utilisation=0.588, depthwise_efficiency=0.00669, layer_overhead_cycles=41090,
                          bytes_per_cycle=5.35, tensor_per_cycle=256)
RULES = standard_rules()
COMMON = dict(family=FAMILY, macs_per_cycle=MACS, ddr_bus_bits=32, sram_kib=512, kernel_lanes=16, input_lanes=16,
              cpu_fallback_us=300.0, cpu_bytes_per_us=500.0, runtime_base_mib=18.0,
              calibration=CALIBRATION, rules=RULES, limits=NpuLimits())

CHIPS = (
    Chip("rk1806", npu_mhz=792, ddr_type="LPDDR3/DDR4", ddr_mhz=924, cpu_macs_per_us=4800.0, **COMMON,
         doc="RK1806 (estimate: the RK1808 NPU)"),
    Chip("rk1808", npu_mhz=792, ddr_type="LPDDR3/DDR4", ddr_mhz=924, cpu_macs_per_us=4800.0, **COMMON,
         doc="RK1808: 3.0 TOPS int8 NPU"),
    Chip("rk3399pro", npu_mhz=792, ddr_type="LPDDR3", ddr_mhz=934, cpu_macs_per_us=12000.0, **COMMON,
         doc="RK3399Pro: the RK1808's NPU beside an RK3399"),
)
