"""The app's command line: ``python app.py --help`` (app.py parses it with ``parse_args``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from osdface.app.requests import DEFAULT_MAX_FACES, DEFAULT_MAX_MEGAPIXELS, StudioSettings
from osdface.cli_options import ModelOptions, add_model_arguments


@dataclass(frozen=True)
class LaunchSettings:
    """How the server runs (the models' settings are ``StudioSettings``).

    queue_size: requests waiting beyond this are refused with "queue is full".
    concurrency: restorations running at once (None: 1 on the CPU, 2 on a GPU).
    """

    share: bool = False
    host: str | None = None
    port: int | None = None
    queue_size: int = 16
    concurrency: int | None = None
    max_file_size: str = "30mb"


def parse_args(argv: Sequence[str] | None = None) -> tuple[StudioSettings, LaunchSettings]:
    parser = argparse.ArgumentParser(
        description="OSDFace Studio: the Gradio app for one-step diffusion face restoration."
    )
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument(
        "--host", default=None, help="address to listen on (default: 127.0.0.1, or GRADIO_SERVER_NAME)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860, or GRADIO_SERVER_PORT)")
    add_model_arguments(parser)
    parser.add_argument(
        "--queue-size", type=int, default=16, help="requests that may wait; more are refused (default: 16)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="restorations at once (default: 1 on CPU, 2 on GPU)"
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"refuse larger images (default: {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    parser.add_argument(
        "--max-faces",
        type=int,
        default=DEFAULT_MAX_FACES,
        help=f"restore at most this many faces per photo, the largest (default: {DEFAULT_MAX_FACES})",
    )
    parser.add_argument("--max-file-size", default="30mb", help="largest upload, e.g. 30mb (default: 30mb)")
    args = parser.parse_args(argv)
    if args.queue_size < 1:
        parser.error(f"--queue-size must be at least 1, got {args.queue_size}")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.max_megapixels <= 0:
        parser.error(f"--max-megapixels must be > 0, got {args.max_megapixels}")
    if args.max_faces < 1:
        parser.error(f"--max-faces must be at least 1, got {args.max_faces}")
    studio = StudioSettings(
        model=ModelOptions.from_namespace(args),
        max_megapixels=args.max_megapixels,
        max_faces=args.max_faces,
        zero_gpu=os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"),
    )
    launch = LaunchSettings(
        share=args.share,
        host=args.host,
        port=args.port,
        queue_size=args.queue_size,
        concurrency=args.concurrency,
        max_file_size=args.max_file_size,
    )
    return studio, launch


def launch_message(local_url: str, share_url: str | None, share: bool, seconds: float) -> str:
    """What the terminal shows once the page is up."""
    lines = [f"* Running on local URL:  {local_url} (started in {seconds:.1f} s)"]
    if share and share_url:
        lines.append(
            f"* Running on public URL: {share_url}\n"
            "  This link is PUBLIC: anyone who has it can use this app, for up to 1 week (Gradio's "
            "limit, best effort) or until you stop the app."
        )
    elif share:
        lines.append("* The public link could not be created (see the message above); the app is local only.")
    else:
        lines.append("* Local only. To get a temporary public link (gradio.live), restart with --share.")
    return "\n".join(lines)
