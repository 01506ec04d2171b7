"""optuna-dashboard on a real search, seen in a headless Chromium: the screenshots in docs/sweeps.md.

The browser is Qt's WebEngine (Chromium, from pip), in a venv of its own, apart from the project's:

    python3 -m venv /work/venv-browser
    /work/venv-browser/bin/pip install PyQt6 PyQt6-WebEngine pillow

Then, from the repository root (``--python`` is the project's interpreter, with optuna-dashboard installed):

    /work/venv-browser/bin/python scripts/dashboard_screenshot.py --python .venv/bin/python [--storage URL]

Without ``--storage`` it first runs a short search on the tiny model (``hparams_search=inpainting``, 8 trials,
successive halving, 16 steps, validation every 4 steps, so that some trials are pruned) in a temporary
directory. It starts ``optuna-dashboard`` on the study's storage, loads the study's page and its list of trials
offscreen (``QT_QPA_PLATFORM=offscreen``), waits until the page's JavaScript has drawn them, and writes
``docs/images/optuna_dashboard.png`` and ``docs/images/optuna_dashboard_trials.png``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH = [
    "hparams_search=inpainting",
    "hydra.sweeper.n_trials=8",
    "hydra.sweeper.seed=0",
    "hydra.sweeper.pruner=successive_halving",
    "hydra.sweeper.pruner_args={min_resource: 4, reduction_factor: 3}",
    "optimizer.lr=tag(log, interval(1e-5, 1.0))",  # wide, so that some trials are clearly bad
    "trainer.max_steps=16",
    "trainer.batch_size=2",
    "scheduler.warmup_steps=0",
    "validation.every=4",
    "validation.sigmas=[0.5]",
    "validation_videos.enabled=false",
    "data.num_samples=12",
    "data.val_samples=2",
    "logger.mode=disabled",
]
# Both pages draw with JavaScript after the HTML arrives: the study page is ready when its plots hold points,
# the trial list when it names each trial's state.
READY = {
    "study": "document.querySelectorAll('.js-plotly-plot .point').length",
    "trials": "(document.body.innerText.match(/Complete|Pruned|Fail|Running/g) || []).length",
}


def run_search(python: str, out: Path) -> str:
    """Runs the short search; returns its storage URL."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT / "src")}
    args = [python, str(ROOT / "train.py"), *SEARCH, f"hydra.sweep.dir={out}/sweep", f"data.root={out}/data"]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the search failed:\n{done.stderr[-3000:]}")
    return f"sqlite:///{out}/sweep/optuna.db"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_study(base: str, server: subprocess.Popen, timeout: float = 60.0) -> int:
    """Waits until the dashboard answers; returns the first study's id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"optuna-dashboard exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/studies", timeout=5) as reply:
                studies = json.load(reply)["study_summaries"]
            if studies:
                return studies[0]["study_id"]
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"optuna-dashboard did not answer at {base} in {timeout:.0f} s")


@dataclass(frozen=True)
class Page:
    """One page to photograph: where, how to tell it is drawn (a key of READY), the window's size, the PNG."""

    url: str
    ready: str
    size: tuple[int, int]
    png: Path


def save_small(image: object, png: Path) -> None:
    """Saves a QImage as a PNG of 256 colours: a page of flat colours stays sharp (no dithering) and small."""
    from PIL import Image
    from PyQt6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    rgb = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(png, optimize=True)


def screenshot(pages: list[Page], timeout: float = 60.0) -> None:
    """Loads each page in one offscreen Chromium and saves it once its JavaScript has drawn it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # No GPU, no setuid sandbox in a container: Chromium then draws in software.
    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")
    from PyQt6.QtCore import QTimer, QUrl
    from PyQt6.QtWebEngineWidgets import QWebEngineView
    from PyQt6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    view = QWebEngineView()
    view.show()
    todo = list(pages)
    state = {"start": 0.0, "last": -1, "stable": 0, "error": ""}

    def load_next() -> None:
        if not todo:
            app.quit()
            return
        view.resize(*todo[0].size)
        state.update(start=time.monotonic(), last=-1, stable=0)
        view.load(QUrl(todo[0].url))
        QTimer.singleShot(1000, poll)

    def poll() -> None:
        view.page().runJavaScript(READY[todo[0].ready], check)

    def check(count: object) -> None:
        page = todo[0]
        count = int(count or 0)
        # Drawn once there is something and it stayed the same for two polls (the plots come in one by one).
        state["stable"] = state["stable"] + 1 if count and count == state["last"] else 0
        state["last"] = count
        if state["stable"] >= 2:
            page.png.parent.mkdir(parents=True, exist_ok=True)
            save_small(view.grab().toImage(), page.png)
            print(f"{page.png}: {page.url} ({count} drawn, {page.png.stat().st_size // 1024} KiB)")
            todo.pop(0)
            load_next()
        elif time.monotonic() - state["start"] > timeout:
            # An exception would not leave Qt's event loop: say why and stop it.
            state["error"] = f"{page.url} did not finish drawing in {timeout:.0f} s (READY gave {count})"
            app.quit()
        else:
            QTimer.singleShot(500, poll)

    load_next()
    app.exec()
    if state["error"]:
        raise SystemExit(state["error"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the project's interpreter (runs search, dashboard)")
    parser.add_argument("--storage", default=None, help="a study's storage (default: run the short search)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    args = parser.parse_args()

    storage = args.storage or run_search(args.python, Path(tempfile.mkdtemp(prefix="dashboard-search-")))
    port = free_port()
    dashboard = [args.python, "-c", "from optuna_dashboard._cli import main; main()", storage]
    server = subprocess.Popen(
        [*dashboard, "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        study = wait_for_study(base, server)
        # The study page is tall (history, importance, timeline, best trial, intermediate values): one window.
        study_page = Page(f"{base}/dashboard/studies/{study}", "study", (1280, 2150), args.out / "optuna_dashboard.png")
        trials = Page(
            f"{base}/dashboard/studies/{study}/trials", "trials", (1280, 720), args.out / "optuna_dashboard_trials.png"
        )
        screenshot([study_page, trials])
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
