"""A vendor-style script for an already-quantized (uint8 in/out) classifier: the config the vendor's
examples set for it (channel_mean_value from the command line, '128 128 128 128' by default), build
with a dataset, export, run each picture listed in images.txt and print top-5 after a softmax of the
float outputs. The outputs go to outputs.npy."""

import sys

import numpy as np
from PIL import Image

from rknn.api import RKNN


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def show_top5(name, output):
    probs = softmax(np.array(output[0], dtype=np.float32))
    order = np.argsort(probs)[::-1][:5]
    print(f"{name}: " + " ".join(f"[{i}]: {probs[i]:.5f}" for i in order))


if __name__ == "__main__":
    rknn = RKNN()
    print("--> config model")
    mean = sys.argv[1] if len(sys.argv) > 1 else "128 128 128 128"
    rknn.config(channel_mean_value=mean, reorder_channel="0 1 2")
    print("--> Loading model")
    ret = rknn.load_tflite(model="./model.tflite")
    if ret != 0:
        print("Load model failed!")
        exit(ret)
    print("--> Building model")
    ret = rknn.build(do_quantization=True, dataset="./dataset.txt")
    if ret != 0:
        print("Build model failed!")
        exit(ret)
    ret = rknn.export_rknn("./model.rknn")
    if ret != 0:
        print("Export model failed!")
        exit(ret)
    ret = rknn.init_runtime()
    if ret != 0:
        print("Init runtime environment failed")
        exit(ret)
    results = []
    for name in open("images.txt").read().split():
        img = np.asarray(Image.open(name).convert("RGB"))
        outputs = rknn.inference(inputs=[img])
        show_top5(name, outputs[0])
        results.append(outputs[0])
    np.save("outputs.npy", np.concatenate(results))
    rknn.release()
