"""Run the PP-OCRv4 text detector (rapidocr-onnxruntime's ONNX model) over frames in an .npz.

Runs in the separate benchmark environment that has ``rapidocr-onnxruntime`` (never a project
dependency): ``python ppocr_det.py FRAMES.npz THREADS`` prints JSON with the seconds spent and
each frame's axis-aligned boxes. Pre- and post-processing are rapidocr's own (DB, thresholds
0.3 / 0.5, unclip 1.6, shorter side scaled to at least 736), as the library uses the model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import rapidocr_onnxruntime
from rapidocr_onnxruntime.ch_ppocr_det import TextDetector


def main() -> None:
    frames_path, threads = Path(sys.argv[1]), int(sys.argv[2])
    model = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    det = TextDetector({
        "model_path": str(model), "intra_op_num_threads": threads, "inter_op_num_threads": 1,
        "use_cuda": False, "use_dml": False, "limit_side_len": 736, "limit_type": "min",
        "std": [0.5, 0.5, 0.5], "mean": [0.5, 0.5, 0.5], "thresh": 0.3, "box_thresh": 0.5,
        "max_candidates": 1000, "unclip_ratio": 1.6, "use_dilation": True, "score_mode": "fast",
    })
    data = np.load(frames_path)
    frames = [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]
    bgr = [np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f[..., ::-1].copy()
           for f in frames]
    det(bgr[0])  # warm-up
    out, start = [], time.perf_counter()
    for img in bgr:
        quads, _ = det(img)
        boxes = []
        for q in ([] if quads is None else quads):
            q = np.asarray(q)
            boxes.append([int(np.floor(q[:, 0].min())), int(np.floor(q[:, 1].min())),
                          int(np.ceil(q[:, 0].max())) + 1, int(np.ceil(q[:, 1].max())) + 1])
        out.append(boxes)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "boxes": out}))


if __name__ == "__main__":
    main()
