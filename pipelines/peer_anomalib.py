"""The peer of `ivadas bench --suite peer`: anomalib's PatchCore, trained and timed as its users run it.

Runs with the Python of a separate virtualenv that has anomalib installed (never a dependency of
IVADAS), so it imports nothing of IVADAS: only the standard library, anomalib and what anomalib
brings (torch, torchvision, PIL). Writes one JSON object with training time, peak resident memory of
training and single-image latency, for the bench to set against IVADAS on the same images.

    PEER/bin/python pipelines/peer_anomalib.py --train-dir DIR --queries FILE --output result.json

With `--serve` it times no queries of its own: after training it prints its training measurements on
one line and then answers the bench's timing requests on stdin, so that the bench can let IVADAS and
the peer take turns in blocks of queries and both share whatever else the machine is doing. Lines of
the exchange start with `PROTOCOL` (anomalib and Lightning print lines of their own):

    peer:  PROTOCOL {"train_s": ..., "peak_train_mb": ..., ...}     once trained
    bench: {"queries": [3, 4, 5]}                                     rows of --queries (modulo their count)
    peer:  PROTOCOL {"ms": [..., ..., ...]}                          each query's time
    bench: {"done": true}                                             or end of input: the peer exits
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import sys
import time
from pathlib import Path


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-dir", required=True, help="folder of normal training images")
    parser.add_argument("--queries", required=True, help="text file, one image path a line: the latency queries")
    parser.add_argument("--output", required=True, help="JSON file the measurements are written to")
    parser.add_argument("--workdir", required=True, help="folder for anomalib's checkpoints and logs")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--coreset-ratio", type=float, default=0.01)
    parser.add_argument("--backbone", default="wide_resnet50_2")
    parser.add_argument("--runs", type=int, default=60, help="timed queries")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help="after training, time the queries the bench asks for on stdin")
    return parser.parse_args(argv)


#: Start of every line of the exchange with the bench.
PROTOCOL = "IVADAS-PEER "


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(args) -> tuple[object, float]:
    """anomalib's PatchCore on every image of --train-dir through its Engine, as its documentation shows:
    random backbone weights (nothing can be downloaded), layers 2+3, the given coreset ratio, its own
    pre-processor at --image-size without a crop. No validation or test split: the time is that of
    building the memory bank (and Lightning's checkpoint), nothing else."""
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from anomalib.models import Patchcore

    model = Patchcore(backbone=args.backbone, layers=("layer2", "layer3"), pre_trained=False,
                      coreset_sampling_ratio=args.coreset_ratio, num_neighbors=9,
                      pre_processor=Patchcore.configure_pre_processor(image_size=(args.image_size, args.image_size)),
                      evaluator=False, visualizer=False)
    # num_workers=0: images are read in this process, as IVADAS reads them, so its peak memory is all of training
    datamodule = Folder(name="peer", normal_dir=args.train_dir, normal_split_ratio=0.0, test_split_mode="none",
                        val_split_mode="none", train_batch_size=32, num_workers=0)
    engine = Engine(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    default_root_dir=args.workdir, limit_val_batches=0)
    started = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    return model, time.perf_counter() - started


def predictor(model):
    """Single image, encoded bytes → score and anomaly map (the torch model always computes both)."""
    import numpy as np
    import torch
    from PIL import Image

    transform = model.pre_processor.transform
    torch_model = model.model.eval()

    def predict(data: bytes):
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        batch = transform(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0))
        with torch.inference_mode():
            output = torch_model(batch)
        return float(output.pred_score.max()), output.anomaly_map

    return predict


def timed_ms(predict, data: bytes) -> float:
    started = time.perf_counter()
    predict(data)
    return (time.perf_counter() - started) * 1000


def latency(predict, payloads: list[bytes], runs: int, warmup: int) -> dict:
    """p50 and p95 of `runs` queries after `warmup`, on their own."""
    import numpy as np

    for i in range(warmup):
        predict(payloads[i % len(payloads)])
    times = [timed_ms(predict, payloads[i % len(payloads)]) for i in range(runs)]
    return {"p50_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95)), "runs": runs}


def serve(predict, payloads: list[bytes], requests, answer) -> None:
    """Time the queries each request names until `{"done": true}` or the end of `requests` (lines of
    JSON); `answer` gets each request's `{"ms": [...]}`."""
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("done"):
            return
        answer({"ms": [timed_ms(predict, payloads[i % len(payloads)]) for i in request["queries"]]})


def _say(message: dict) -> None:
    print(PROTOCOL + json.dumps(message), flush=True)


def main(argv=None) -> int:
    import anomalib
    import torch

    args = _arguments(argv)
    model, train_s = train(args)
    training_peak = _peak_rss_mb()  # before any query: the peak of training alone
    payloads = [Path(line).read_bytes() for line in Path(args.queries).read_text().splitlines() if line.strip()]
    result = {"anomalib": anomalib.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "train_s": train_s, "train_images": sum(1 for p in Path(args.train_dir).iterdir() if p.is_file()),
              "bank": int(model.model.memory_bank.shape[0]), "peak_train_mb": training_peak}
    if args.serve:
        _say(result)
        serve(predictor(model), payloads, sys.stdin, _say)
        return 0
    result.update(latency(predictor(model), payloads, args.runs, args.warmup))
    Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
