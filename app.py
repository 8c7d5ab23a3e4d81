"""Interactive demo: ``python app.py [key=value ...]`` = ``python infer.py mode=app ...`` (Gradio on
http://127.0.0.1:7860; ``mode.port=``, ``mode.host=``, ``checkpoint=``, ``device=``, ``output_dir=`` as in infer.py).

Thin entry point: the same validation, config and pipeline as ``infer.py`` (:func:`albedogan.entry.run_infer`);
the page is :mod:`albedogan.inference.app`.
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    if not any(a.startswith("mode=") for a in sys.argv[1:]):
        sys.argv.insert(1, "mode=app")
    runpy.run_path(str(Path(__file__).with_name("infer.py")), run_name="__main__")
