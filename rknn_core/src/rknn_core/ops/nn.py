"""TODO."""

from rknn_core.records import OpDef

OPS: list[OpDef] = []
