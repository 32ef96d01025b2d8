"""Quantization: parameters, fixed-point requantization, calibration data and ranges, graph quantization."""
