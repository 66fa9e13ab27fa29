"""The installed environment: timm on a CPU-only machine, and the venv's own Jupyter kernel."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import papermill as pm


def test_timm_imports_and_runs_efficientnet_b0():
    import timm
    import torch

    import aslkit  # noqa: F401  (installs the torchvision shim)
    from aslkit.compat.torchvision_shim import STATE

    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=7).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 64, 80))
    assert y.shape == (2, 7) and torch.isfinite(y).all()
    assert STATE["installed"]
    if STATE["patched"]:                           # CUDA torchvision on CPU torch: the ops fail as documented
        import pytest
        with pytest.raises(Exception):
            import torchvision
            torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_papermill_uses_the_venv_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("out = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import sys; open(out, 'w').write(sys.prefix)")]
    src = tmp_path / "probe.ipynb"
    nbformat.write(nb, src)
    marker = tmp_path / "prefix.txt"
    pm.execute_notebook(str(src), str(tmp_path / "probe_out.ipynb"), parameters={"out": str(marker)},
                        kernel_name="python3", progress_bar=False)
    assert Path(marker.read_text()).resolve() == Path(sys.prefix).resolve()
