"""The matting workbench web app: ``python app.py`` serves it on http://127.0.0.1:7860.

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address (Hugging Face Spaces sets them).
Checkpoints that are not on this machine are downloaded on first use, with their progress in the app,
unless MATTING_OFFLINE=1 (or HF_HUB_OFFLINE=1, or MATTING_AUTO_FETCH=0) is set. On a Space (SPACE_ID is
set) photos are limited to 4 megapixels unless MATTING_MAX_PIXELS says otherwise. The page opens with an
example result (U²-NetP → closed-form on the astronaut), computed in the background at start-up.
MATTING_APP_WORKERS sets how many method runs may go at once (default 2).
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if os.environ.get("SPACE_ID"):
    os.environ.setdefault("MATTING_MAX_PIXELS", "4000000")  # a shared CPU Space: keep runs to seconds

from matting.paths import cache_dir  # noqa: E402
from matting.ui import build_demo, first_look, launch_options, workers  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    first_look.warm()
    demo.queue(default_concurrency_limit=workers(), max_size=64).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        allowed_paths=[str(cache_dir() / "examples")],
        **launch_options(),
    )
