"""Write small .tflite models with the flatbuffers builder and the ``tflite`` schema package (no tensorflow)."""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite

TYPES = {"float32": tflite.TensorType.FLOAT32, "float16": tflite.TensorType.FLOAT16, "int32": tflite.TensorType.INT32,
         "int64": tflite.TensorType.INT64, "uint8": tflite.TensorType.UINT8, "int8": tflite.TensorType.INT8}


class TfliteWriter:
    """Collects tensors (constants carry data) and builtin operators, then serializes subgraph 0."""

    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self.buffers: list[bytes] = [b""]
        self.ops: list[tuple] = []
        self.codes: list[tuple[int, str | None]] = []
        self.inputs: list[int] = []

    def tensor(self, shape, dtype: str = "float32", quant: dict | None = None, data: np.ndarray | None = None,
               name: str | None = None) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data, dtype=dtype).tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append({"shape": list(shape), "dtype": dtype, "quant": quant, "buffer": buffer,
                             "name": name or f"t{len(self.tensors)}"})
        return len(self.tensors) - 1

    def input(self, shape, dtype: str = "float32", quant: dict | None = None) -> int:
        index = self.tensor(shape, dtype, quant, name=f"input_{len(self.inputs)}")
        self.inputs.append(index)
        return index

    def const(self, data, dtype: str | None = None, quant: dict | None = None) -> int:
        data = np.asarray(data)
        return self.tensor(data.shape, dtype or str(data.dtype), quant, data)

    def op(self, code: str, inputs: list[int], outputs: list[int], options: str | None = None, **fields) -> None:
        self.ops.append(((getattr(tflite.BuiltinOperator, code), None), inputs, outputs, options, fields, None))

    def custom_op(self, custom_code: str, inputs: list[int], outputs: list[int], custom_options: bytes = b"") -> None:
        """A CUSTOM operator ``custom_code`` with its raw option bytes (flexbuffers, as TFLite writes them)."""
        self.ops.append(((tflite.BuiltinOperator.CUSTOM, custom_code), inputs, outputs, None, {}, custom_options))

    # ------------------------------------------------------------------ serialization
    def _vector(self, b: flatbuffers.Builder, start, offsets: list[int]) -> int:
        start(b, len(offsets))
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def _quant(self, b: flatbuffers.Builder, q: dict) -> int:
        scale = b.CreateNumpyVector(np.asarray(q["scale"], np.float32).reshape(-1))
        zero = b.CreateNumpyVector(np.asarray(q.get("zero_point", 0), np.int64).reshape(-1))
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scale)
        tflite.QuantizationParametersAddZeroPoint(b, zero)
        tflite.QuantizationParametersAddQuantizedDimension(b, int(q.get("axis", 0)))
        return tflite.QuantizationParametersEnd(b)

    def save(self, path: str, outputs: list[int]) -> str:
        b = flatbuffers.Builder(1024)
        buffers = []
        for data in self.buffers:
            vec = b.CreateNumpyVector(np.frombuffer(data, np.uint8)) if data else None
            tflite.BufferStart(b)
            if vec is not None:
                tflite.BufferAddData(b, vec)
            buffers.append(tflite.BufferEnd(b))
        tensors = []
        for t in self.tensors:
            name, shape = b.CreateString(t["name"]), b.CreateNumpyVector(np.asarray(t["shape"], np.int32))
            quant = self._quant(b, t["quant"]) if t["quant"] else None
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, TYPES[t["dtype"]])
            tflite.TensorAddBuffer(b, t["buffer"])
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensors.append(tflite.TensorEnd(b))
        ops = []
        for code, ins, outs, options, fields, custom_options in self.ops:
            if code not in self.codes:
                self.codes.append(code)
            opt = None
            if options:
                getattr(tflite, f"{options}Start")(b)
                for key, value in fields.items():
                    getattr(tflite, f"{options}Add{key}")(b, value)
                opt = getattr(tflite, f"{options}End")(b)
            in_vec = b.CreateNumpyVector(np.asarray(ins, np.int32))
            out_vec = b.CreateNumpyVector(np.asarray(outs, np.int32))
            custom_vec = b.CreateNumpyVector(np.frombuffer(custom_options, np.uint8)) if custom_options else None
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, self.codes.index(code))
            tflite.OperatorAddInputs(b, in_vec)
            tflite.OperatorAddOutputs(b, out_vec)
            if opt is not None:
                tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, options))
                tflite.OperatorAddBuiltinOptions(b, opt)
            if custom_vec is not None:
                tflite.OperatorAddCustomOptions(b, custom_vec)
            ops.append(tflite.OperatorEnd(b))
        codes = []
        for code, custom_code in self.codes:
            name = b.CreateString(custom_code) if custom_code else None
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            if name is not None:
                tflite.OperatorCodeAddCustomCode(b, name)
            codes.append(tflite.OperatorCodeEnd(b))
        t_vec = self._vector(b, tflite.SubGraphStartTensorsVector, tensors)
        o_vec = self._vector(b, tflite.SubGraphStartOperatorsVector, ops)
        i_vec = b.CreateNumpyVector(np.asarray(self.inputs, np.int32))
        out_vec = b.CreateNumpyVector(np.asarray(outputs, np.int32))
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, t_vec)
        tflite.SubGraphAddOperators(b, o_vec)
        tflite.SubGraphAddInputs(b, i_vec)
        tflite.SubGraphAddOutputs(b, out_vec)
        subgraph = tflite.SubGraphEnd(b)
        sg_vec = self._vector(b, tflite.ModelStartSubgraphsVector, [subgraph])
        code_vec = self._vector(b, tflite.ModelStartOperatorCodesVector, codes)
        buf_vec = self._vector(b, tflite.ModelStartBuffersVector, buffers)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, code_vec)
        tflite.ModelAddSubgraphs(b, sg_vec)
        tflite.ModelAddBuffers(b, buf_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        with open(path, "wb") as f:
            f.write(b.Output())
        return path
