"""The notebook test run by `make test`: executes notebooks/technical_evaluation.ipynb through
the evcxr kernel with fast settings (1 epoch, one batch size, seconds of pre-training) and
checks what a reader relies on: no cell errored, the chart cells hold image/svg+xml, the
results tables hold text/html, the progress bar and the conclusions were printed.

    JUPYTER_PATH=.venv/share/jupyter .venv/bin/python scripts/test_notebook.py
"""
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAST = {"EPOCHS": "1", "SWEEP_BATCH_SIZES": "32", "SWEEP_EPOCHS": "1", "SWEEP_FOLDS": "2", "PRETRAIN_MINUTES": "0.25", "PRETRAIN_STEPS": "3",
        "TRAIN_SIZE": "64", "MAX_LEN": "32"}


def main():
    for k, v in FAST.items():
        os.environ.setdefault(k, v)
    nb = nbformat.read(ROOT / "notebooks/technical_evaluation.ipynb", as_version=4)
    t0 = time.time()
    client = NotebookClient(nb, timeout=3600, kernel_name="rust", resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    failures = []
    svg_cells = html_cells = 0
    chartless = []
    chart_cells = sum(1 for c in nb.cells if c.cell_type == "code" and ".evcxr_display();" in c.source)
    text = ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        # Every cell that displays a chart must carry it as a true SVG.
        if ".evcxr_display();" in cell.source and not any(
                o.get("data", {}).get("image/svg+xml", "").lstrip().startswith("<svg") for o in cell.get("outputs", [])):
            chartless.append(i)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                failures.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            if out.get("name") == "stderr" and "panicked" in out.get("text", ""):
                failures.append(f"cell {i}: panic: {out['text'][-500:]}")
            data = out.get("data", {})
            svg_cells += "image/svg+xml" in data and data["image/svg+xml"].lstrip().startswith("<svg")
            html_cells += "text/html" in data and "<table" in data["text/html"]
            text += out.get("text", "") + data.get("text/html", "")
    expect = [("no cell errored", not failures),
              (f"every chart cell holds image/svg+xml (cells without: {chartless}); {svg_cells} charts in {chart_cells} chart cells",
               not chartless and chart_cells >= 8 and svg_cells >= chart_cells),
              (f"at least 5 HTML tables (found {html_cells})", html_cells >= 5),
              ("a progress bar was printed", "epoch 1/1" in text),
              ("the sweep's conclusions were printed", "Design:" in text and "TF-IDF + LR" in text),
              ("the report table shows intervals", "± " in text and "(n=2)" in text),
              ("the compute table was printed", "pre-training (MLM)" in text)]
    out_dir = ROOT / "notebooks/out"
    out_dir.mkdir(exist_ok=True)
    nbformat.write(nb, out_dir / "test_run.ipynb")
    print(f"notebook executed in {time.time() - t0:.0f} s (written to notebooks/out/test_run.ipynb)")
    for f in failures:
        print("  " + f)
    ok = True
    for what, passed in expect:
        print(f"  [{'ok' if passed else 'FAIL'}] {what}")
        ok &= passed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
