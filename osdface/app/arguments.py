"""The app's command line: ``python app.py --help`` (app.py parses it with ``parse_args``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from osdface.app.requests import DEFAULT_MAX_FACES, DEFAULT_MAX_MEGAPIXELS, StudioSettings
from osdface.commands.model_options import ModelOptions, add_model_arguments

# A password kept out of the shell's history: a Space's secret, or a file (one USER:PASSWORD a line).
ENV_AUTH = "OSDFACE_AUTH"


class CredentialsError(ValueError):
    """A credential that is not USER:PASSWORD (the message never repeats the password)."""


def parse_credentials(text: str, source: str) -> tuple[str, str]:
    """ "USER:PASSWORD" (the password may contain ':') -> (user, password)."""
    user, colon, password = text.strip().partition(":")
    if not colon or not user or not password:
        raise CredentialsError(f"{source}: expected USER:PASSWORD with both parts non-empty")
    return user, password


def read_credentials(auth: list[str], auth_file: Path | None, environ=None) -> tuple[tuple[str, str], ...]:
    """Every credential given: --auth (repeatable), the lines of --auth-file (blank lines and
    lines starting with '#' skipped), and the OSDFACE_AUTH environment variable."""
    environ = os.environ if environ is None else environ
    found = [parse_credentials(text, "--auth") for text in auth]
    if auth_file is not None:
        try:
            lines = Path(auth_file).read_text().splitlines()
        except OSError as exc:
            raise CredentialsError(f"--auth-file {auth_file}: cannot be read ({exc.strerror})") from exc
        for number, line in enumerate(lines, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(parse_credentials(line, f"--auth-file {auth_file}, line {number}"))
        if not found:
            raise CredentialsError(f"--auth-file {auth_file}: holds no USER:PASSWORD line")
    if environ.get(ENV_AUTH):
        found.append(parse_credentials(environ[ENV_AUTH], ENV_AUTH))
    return tuple(found)


@dataclass(frozen=True)
class LaunchSettings:
    """How the server runs (the models' settings are ``StudioSettings``).

    queue_size: requests waiting beyond this are refused with "queue is full".
    concurrency: restorations running at once (None: 1 on the CPU, 2 on a GPU).
    auth: (user, password) pairs; when any is set, the page and the API ask for one of them.
    """

    share: bool = False
    host: str | None = None
    port: int | None = None
    queue_size: int = 16
    concurrency: int | None = None
    max_file_size: str = "30mb"
    auth: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # no password in logs


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
    parser.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help=f"ask for this user and password on the page and the API (repeatable; also {ENV_AUTH})",
    )
    parser.add_argument(
        "--auth-file",
        type=Path,
        default=None,
        help="read USER:PASSWORD lines from this file (keeps the password out of the shell history)",
    )
    args = parser.parse_args(argv)
    try:
        auth = read_credentials(args.auth, args.auth_file)
    except CredentialsError as exc:
        parser.error(str(exc))
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
        auth=auth,
    )
    return studio, launch


def launch_message(local_url: str, share_url: str | None, share: bool, seconds: float, users: int = 0) -> str:
    """What the terminal shows once the page is up; ``users``: how many passwords are set."""
    lines = [f"* Running on local URL:  {local_url} (started in {seconds:.1f} s)"]
    password = (
        f"  A password is required ({users} user{'s' if users > 1 else ''}, set with --auth, --auth-file or {ENV_AUTH})."
        if users
        else f"  No password is set: protect it with --auth USER:PASSWORD (or --auth-file FILE, or {ENV_AUTH})."
    )
    if share and share_url:
        lines.append(
            f"* Running on public URL: {share_url}\n"
            "  This link is PUBLIC: anyone who has it can reach this app, for up to 1 week (Gradio's "
            "limit, best effort) or until you stop the app.\n" + password
        )
    elif share:
        lines.append("* The public link could not be created (see the message above); the app is local only.")
    else:
        lines.append("* Local only. To get a temporary public link (gradio.live), restart with --share.")
    return "\n".join(lines)
