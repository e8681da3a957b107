"""Stock trafilatura vs the accelerator (``tasks/data/accel/``): time, and identity of every output.

    .venv/bin/python benchmarks/extraction_speed.py              # from the repository root
    .venv/bin/python benchmarks/extraction_speed.py --rounds 3   # best of 3 per side

Input: every shared HTML page (``html/*/*/*.html.gz``, raw bytes, as the extraction quality
benchmark passes them) and every HTML document of the shared WARCs (decoded text, as the data
stage passes it). Each document is extracted in this process with ``extract_main_text`` and
``ExtractionConfig(accelerate="off")`` (stock trafilatura) and ``accelerate="on"`` (with
``tasks/data/accel/``; a failed guard stops the script), one after the other, the order
alternating per document so that both sides run under the same machine load; the two texts
must be equal for every
document (the script exits 1 otherwise). Times are CPU seconds of this process
(``time.process_time``) summed per side; with ``--rounds`` the best round per side.
Not a test: it asserts identity, nothing about speed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from llmforge.config import ExtractionConfig  # noqa: E402
from tasks.data import accel  # noqa: E402
from tasks.data.extract import extract_main_text  # noqa: E402
from tasks.data.warc_reader import HtmlDocument, iter_warc  # noqa: E402


def shared_data_dir() -> Path:
    configured = os.environ.get("LLMFORGE_SHARED_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def load_documents(data: Path) -> list[tuple[str, str | bytes]]:
    """(name, html) for every shared HTML page and WARC HTML document."""
    docs: list[tuple[str, str | bytes]] = []
    for path in sorted(data.glob("html/*/*/*.html.gz")):
        docs.append((str(path.relative_to(data)), gzip.decompress(path.read_bytes())))
    for path in sorted(data.glob("warc/*.warc.gz")):
        try:
            for item in iter_warc(path):
                if isinstance(item, HtmlDocument):
                    docs.append((f"{path.name}#{item.record_index}", item.html))
        except Exception as err:  # noqa: BLE001 - a damaged file ends its own documents only
            print(f"  ({path.name}: reading stopped: {type(err).__name__})")
    return docs


def run_interleaved(docs: list[tuple[str, str | bytes]], configs: dict[str, ExtractionConfig]) -> tuple[dict[str, float], dict[str, list[str | None]]]:
    """Extract every document with each config in turn (the order alternating per
    document), so that both sides see the same machine load: (CPU seconds, outputs) per side."""
    seconds = dict.fromkeys(configs, 0.0)
    outputs: dict[str, list[str | None]] = {side: [] for side in configs}
    sides = list(configs)
    for i, (_name, html) in enumerate(docs):
        for side in sides if i % 2 == 0 else sides[::-1]:
            cfg = configs[side]
            accel.configure(cfg.accelerate)  # switching (the guards are evaluated each time) is not timed
            start = time.process_time()
            try:
                text = extract_main_text(html, cfg)
            except Exception as err:  # noqa: BLE001 - compared like an output
                text = f"<error {type(err).__name__}: {err}>"
            seconds[side] += time.process_time() - start
            outputs[side].append(text)
    return seconds, outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="rounds over all documents (the best is reported)")
    args = parser.parse_args()
    data = shared_data_dir()
    docs = load_documents(data)
    n_pages = sum(1 for name, _ in docs if name.startswith("html/"))
    print(f"documents: {len(docs)} ({n_pages} HTML pages + {len(docs) - n_pages} WARC HTML records)")
    configs = {"stock": ExtractionConfig(accelerate="off"), "fast": ExtractionConfig(accelerate="on")}
    try:
        for cfg in configs.values():  # imports, the fast paths' construction, warm caches: not timed
            extract_main_text("<html><body><p>warm-up</p></body></html>", cfg)
    except accel.AcceleratorGuardFailed as err:
        print(err)
        return 1
    best: dict[str, float] = {}
    all_identical = True
    identical = 0
    for round_ in range(args.rounds):
        seconds, outputs = run_interleaved(docs, configs)
        identical = sum(a == b for a, b in zip(outputs["stock"], outputs["fast"], strict=True))
        all_identical &= identical == len(docs)
        print(f"  round {round_ + 1}: stock {seconds['stock']:.2f} CPU s, fast {seconds['fast']:.2f} CPU s, "
              f"{seconds['stock'] / seconds['fast']:.2f}x, identical {identical} / {len(docs)}")
        for side, value in seconds.items():
            best[side] = min(best.get(side, value), value)
        for (name, _), a, b in zip(docs, outputs["stock"], outputs["fast"], strict=True):
            if a != b:
                print(f"  DIFFERS: {name}")
    print(f"stock: {best['stock']:.2f} CPU s ({1000 * best['stock'] / len(docs):.1f} ms/document)")
    print(f"fast:  {best['fast']:.2f} CPU s ({1000 * best['fast'] / len(docs):.1f} ms/document)")
    print(f"speed-up: {best['stock'] / best['fast']:.2f}x")
    print(f"identical outputs: {identical} / {len(docs)}" + ("" if args.rounds == 1 else " (last round; every round checked)"))
    return 0 if all_identical else 1


if __name__ == "__main__":
    sys.exit(main())
