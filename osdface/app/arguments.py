"""The app's command line: ``python app.py --help`` (app.py parses it with ``parse_args``)."""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from osdface.app.requests import DEFAULT_MAX_FACES, DEFAULT_MAX_MEGAPIXELS, StudioSettings
from osdface.commands.model_options import ModelOptions, add_model_arguments
from osdface.runtime.cuda_diagnosis import CudaUnavailableError, check_requested_device

# A password kept out of the shell's history: a Space's secret, or a file (one USER:PASSWORD a line).
ENV_AUTH = "OSDFACE_AUTH"
# The MCP server without a command line (a Space's variable); Gradio's own switch is honoured too,
# read here so that it cannot open the endpoint behind the password check below.
ENV_MCP = "OSDFACE_MCP"
GRADIO_ENV_MCP = "GRADIO_MCP_SERVER"
MCP_PATH = "/gradio_api/mcp/"


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
    mcp: also serve the endpoints as MCP tools (never with ``auth``: see ``mcp_and_password``).
    """

    share: bool = False
    host: str | None = None
    port: int | None = None
    queue_size: int = 16
    concurrency: int | None = None
    max_file_size: str = "30mb"
    auth: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # no password in logs
    mcp: bool = False


def build_parser() -> argparse.ArgumentParser:
    """``python app.py``'s options (``parse_args`` checks them and makes the settings)."""
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
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="no quality metrics under the results (they load on first use; their weights are fetched then)",
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
    parser.add_argument(
        "--mcp",
        action="store_true",
        help=f"also serve the API as MCP tools at {MCP_PATH} (also {ENV_MCP}=1; not with a password)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[StudioSettings, LaunchSettings]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        auth = read_credentials(args.auth, args.auth_file)
    except CredentialsError as exc:
        parser.error(str(exc))
    mcp_source = mcp_requested(args.mcp)
    if mcp_source and auth:
        parser.error(mcp_and_password(mcp_source, auth_sources(args.auth, args.auth_file)))
    if mcp_source and (problem := mcp_missing()):
        parser.error(f"{mcp_source}: {problem}")
    if args.queue_size < 1:
        parser.error(f"--queue-size must be at least 1, got {args.queue_size}")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.max_megapixels <= 0:
        parser.error(f"--max-megapixels must be > 0, got {args.max_megapixels}")
    if args.max_faces < 1:
        parser.error(f"--max-faces must be at least 1, got {args.max_faces}")
    zero_gpu = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
    if args.device is not None:
        check_device(parser, args.device, zero_gpu)
    studio = StudioSettings(
        model=ModelOptions.from_namespace(args),
        max_megapixels=args.max_megapixels,
        max_faces=args.max_faces,
        zero_gpu=zero_gpu,
        metrics=not args.no_metrics,
    )
    launch = LaunchSettings(
        share=args.share,
        host=args.host,
        port=args.port,
        queue_size=args.queue_size,
        concurrency=args.concurrency,
        max_file_size=args.max_file_size,
        auth=auth,
        mcp=bool(mcp_source),
    )
    return studio, launch


def check_device(parser: argparse.ArgumentParser, device: str, zero_gpu: bool) -> None:
    """Refuse now, before the models load, ``--device cuda`` where CUDA cannot serve (later it
    would be torch's traceback after a minute of loading); a name that is no device was refused
    already by the shared --device type. On ZeroGPU CUDA is deferred by design: "cuda" is not
    checked there."""
    if not zero_gpu:
        try:
            check_requested_device(device)
        except CudaUnavailableError as exc:
            parser.error(str(exc))


def mcp_requested(flag: bool, environ=None) -> str | None:
    """What asked for the MCP server (``--mcp``, ``OSDFACE_MCP`` or Gradio's ``GRADIO_MCP_SERVER``),
    or None. Gradio's variable is read with Gradio's own rule ("true", any case)."""
    environ = os.environ if environ is None else environ
    if flag:
        return "--mcp"
    if environ.get(ENV_MCP, "").strip().lower() in ("1", "true", "yes", "on"):
        return ENV_MCP
    if environ.get(GRADIO_ENV_MCP, "").strip().lower() == "true":
        return GRADIO_ENV_MCP
    return None


def auth_sources(auth: list[str], auth_file: Path | None, environ=None) -> str:
    """Where the password came from, for messages: "--auth", "--auth-file" and/or OSDFACE_AUTH."""
    environ = os.environ if environ is None else environ
    given = [
        ("--auth", bool(auth)),
        ("--auth-file", auth_file is not None),
        (ENV_AUTH, bool(environ.get(ENV_AUTH))),
    ]
    return " and ".join(name for name, present in given if present)


def mcp_and_password(mcp_source: str, auth_source: str) -> str:
    """Why the app refuses MCP with a password. Gradio 6.31 mounts its MCP app beside the routes
    that check the login (gradio/routes.py, ``launch_mcp_on_sse``; gradio/mcp.py, ``app.mount``):
    the tools are listed to anyone, calls to unqueued events skip the login altogether, and
    queued ones fail because Gradio's own loopback client never logs in. So a password would
    protect the page while leaving a side door that also does not work for the people who have it."""
    return (
        f"{mcp_source} (the MCP server) and a password ({auth_source}) cannot be combined: Gradio's "
        f"MCP endpoint ({MCP_PATH}) does not ask for the password (it lists the tools to anyone who "
        "reaches the app), and behind a password its own calls to the tools are refused, so agents "
        f"could not use it either. Either remove {auth_source} to serve MCP (keep the app local, the "
        "default, or put it behind a proxy that checks a password), or remove "
        f"{mcp_source} to keep the password (the page and gradio_client's Client(url, auth=(USER, "
        "PASSWORD)) still work)."
    )


def mcp_missing() -> str | None:
    """None when the ``mcp`` package imports, else what to install (Gradio would stop at launch,
    after the models have loaded, with a traceback)."""
    try:
        importlib.import_module("mcp")
    except ImportError as exc:
        return (
            f"the MCP server needs the mcp package, which cannot be imported ({exc}): "
            'pip install "gradio[mcp]" (or pip install -r requirements.txt)'
        )
    return None


def launch_message(
    local_url: str,
    share_url: str | None,
    share: bool,
    seconds: float,
    users: int = 0,
    mcp: bool = False,
    host: str | None = None,
    port: int | None = None,
) -> str:
    """What the terminal shows once the page is up; ``users``: how many passwords are set;
    ``mcp``: the MCP server is on (so no password can be); ``host`` and ``port``: where the
    server listens (a host beyond the loopback serves the network, so the password hint is given)."""
    lines = [f"* Running on local URL:  {local_url} (started in {seconds:.1f} s)"]
    password = "  " + password_line(users, mcp)
    if share and share_url:
        lines.append(
            f"* Running on public URL: {share_url}\n"
            "  This link is PUBLIC: anyone who has it can reach this app, for up to 1 week (Gradio's "
            "limit, best effort) or until you stop the app.\n" + password
        )
    elif share:
        lines.append("* The public link could not be created (see the message above); the app is local only.")
    if host is not None and not is_loopback(host):
        any_interface = host.strip("[]") in ("0.0.0.0", "::")
        where = f"on every network interface ({host})" if any_interface else f"at {host}"
        lines.append(
            f"* Reachable from the network {where}, port {port}: anyone who can reach this machine "
            "can use this app." + ("" if share and share_url else "\n" + password)
        )
    elif not share:
        lines.append("* Local only. To get a temporary public link (gradio.live), restart with --share.")
    if mcp:
        lines.append(
            f"* MCP server (the API's endpoints as tools): {(share_url or local_url).rstrip('/')}{MCP_PATH}\n"
            "  It takes no password (Gradio's MCP endpoint cannot ask for one): anyone who reaches the app can use it."
        )
    return "\n".join(lines)


def password_line(users: int, mcp: bool) -> str:
    """Whether a password protects the app, for the lines of an app others can reach."""
    if users:
        return f"A password is required ({users} user{'s' if users > 1 else ''}, set with --auth, --auth-file or {ENV_AUTH})."
    if mcp:
        return "No password is set, and none can be while --mcp is on."
    return f"No password is set: protect it with --auth USER:PASSWORD (or --auth-file FILE, or {ENV_AUTH})."


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, "[::1]", or a name) serves this machine only. A name other
    than localhost is taken as the network's: it is there to be reached from elsewhere."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name
        return False
