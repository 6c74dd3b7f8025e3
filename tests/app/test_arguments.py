"""A password for the app (issue 22, item 3): ``--auth USER:PASSWORD``, ``--auth-file`` or
``OSDFACE_AUTH`` protect the page and the API alike; the terminal says whether one is set. The
running app refusing a client without it is tested in test_app.py (beside ``RunningApp``).

The MCP server (issue 22, item 2): ``--mcp``, ``OSDFACE_MCP`` or Gradio's ``GRADIO_MCP_SERVER``,
never with a password; the running server is tested in test_app_mcp.py."""

from __future__ import annotations

import sys

import pytest

from osdface.app.arguments import (
    ENV_AUTH,
    ENV_MCP,
    GRADIO_ENV_MCP,
    CredentialsError,
    launch_message,
    parse_args,
    read_credentials,
)

SECRET = "correct horse:battery"  # a ':' inside the password is kept


def test_credentials_from_the_flag_the_file_and_the_environment(tmp_path):
    file = tmp_path / "auth.txt"
    file.write_text("# who may use the app\nann:one\n\nbob:two:three\n")
    found = read_credentials(["cy:four"], file, environ={ENV_AUTH: f"dee:{SECRET}"})
    assert found == (("cy", "four"), ("ann", "one"), ("bob", "two:three"), ("dee", SECRET))
    assert read_credentials([], None, environ={}) == ()


@pytest.mark.parametrize("bad", ["no-colon-here", ":password-without-user", "user-without-password:"])
def test_a_bad_credential_is_refused_without_repeating_it(bad, tmp_path, capsys):
    with pytest.raises(CredentialsError) as raised:
        read_credentials([bad], None, environ={})
    assert "USER:PASSWORD" in str(raised.value) and bad not in str(raised.value)
    with pytest.raises(SystemExit):
        parse_args(["--auth", bad])
    error = capsys.readouterr().err
    assert "--auth: expected USER:PASSWORD" in error and bad not in error


def test_an_unreadable_or_empty_file_is_named(tmp_path):
    with pytest.raises(CredentialsError, match="cannot be read"):
        read_credentials([], tmp_path / "missing.txt", environ={})
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(CredentialsError, match="holds no USER:PASSWORD line"):
        read_credentials([], tmp_path / "empty.txt", environ={})


def test_the_settings_keep_the_password_out_of_their_repr(monkeypatch):
    monkeypatch.delenv(ENV_AUTH, raising=False)
    _, launch = parse_args(["--auth", f"ann:{SECRET}"])
    assert launch.auth == (("ann", SECRET),) and SECRET not in repr(launch)


@pytest.mark.parametrize("name", ["gpu", "cuda0", "cuda:x", "CPU", ""])
def test_a_device_that_is_not_a_torch_device_is_refused_with_the_choices(name, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--device", name])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    # the shared --device type of every command (osdface.commands.model_options) refuses it
    assert f"--device: unknown device {name!r}: use cpu, cuda, cuda:N" in error


def test_an_explicit_cuda_without_cuda_is_refused_before_the_models_load(monkeypatch, tmp_path, capsys):
    """The refusal comes from parse_args, so nothing has loaded when it is printed."""
    import torch

    from osdface.runtime import cuda_diagnosis

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(cuda_diagnosis, "PROC_DRIVER_VERSION", tmp_path / "none")
    monkeypatch.setattr(cuda_diagnosis, "DEV_DIR", tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cpu", "mps"):
        assert parse_args(["--device", name])[0].model.device == name
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--device", "cuda"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--device cuda: CUDA is not available here: no NVIDIA GPU" in error
    assert "Fix: --device cpu, or leave --device out" in error
    # On ZeroGPU CUDA is deferred by design: "cuda" is what the Space asks for.
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert parse_args(["--device", "cuda"])[0].model.device == "cuda"


def test_the_share_message_says_whether_a_password_is_set():
    url, public = "http://127.0.0.1:7860/", "https://abc.gradio.live"
    open_link = launch_message(url, public, True, 3.2)
    assert "PUBLIC" in open_link and "No password is set: protect it with --auth USER:PASSWORD" in open_link
    protected = launch_message(url, public, True, 3.2, users=2)
    assert "A password is required (2 users" in protected and "No password" not in protected


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "myhost.example"])
def test_a_host_beyond_the_loopback_is_said_to_be_reachable_with_the_password_hint(host):
    url = "http://localhost:7860/"
    exposed = launch_message(url, None, False, 3.2, host=host, port=7860)
    assert "Local only" not in exposed
    where = f"on every network interface ({host})" if host in ("0.0.0.0", "::") else f"at {host}"
    assert f"* Reachable from the network {where}, port 7860: anyone who can reach this machine" in exposed
    assert "No password is set: protect it with --auth USER:PASSWORD" in exposed
    protected = launch_message(url, None, False, 3.2, users=1, host=host, port=7860)
    assert "A password is required (1 user," in protected and "No password" not in protected
    # With a public link too: both said, the password line once.
    shared = launch_message(url, "https://abc.gradio.live", True, 3.2, host=host, port=7860)
    assert "PUBLIC" in shared and "Reachable from the network" in shared
    assert shared.count("No password is set") == 1


@pytest.mark.parametrize("host", [None, "127.0.0.1", "localhost", "::1", "[::1]", "127.0.1.1"])
def test_a_loopback_host_is_local_only(host):
    local = launch_message("http://127.0.0.1:7860/", None, False, 3.2, host=host, port=7860)
    assert "Local only" in local and "Reachable" not in local


@pytest.fixture
def clean_environment(monkeypatch):
    for name in (ENV_AUTH, ENV_MCP, GRADIO_ENV_MCP):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("argv", "environ"),
    [(["--mcp"], {}), ([], {ENV_MCP: "1"}), ([], {ENV_MCP: "True"}), ([], {GRADIO_ENV_MCP: "true"})],
    ids=["flag", "osdface-1", "osdface-true", "gradio"],
)
def test_the_mcp_server_is_asked_for_by_the_flag_or_either_variable(argv, environ, clean_environment):
    for name, value in environ.items():
        clean_environment.setenv(name, value)
    assert parse_args(argv)[1].mcp


@pytest.mark.parametrize("environ", [{}, {ENV_MCP: "0"}, {ENV_MCP: ""}, {GRADIO_ENV_MCP: "1"}])
def test_without_the_flag_or_a_true_variable_there_is_no_mcp_server(environ, clean_environment):
    """GRADIO_MCP_SERVER is read by Gradio's rule: only "true" turns it on."""
    for name, value in environ.items():
        clean_environment.setenv(name, value)
    assert not parse_args([])[1].mcp


@pytest.mark.parametrize(
    ("argv", "environ", "sources"),
    [
        (["--mcp", "--auth", f"ann:{SECRET}"], {}, ("--mcp", "--auth")),
        (["--auth-file", "AUTH_FILE"], {ENV_MCP: "1"}, (ENV_MCP, "--auth-file")),
        ([], {GRADIO_ENV_MCP: "true", ENV_AUTH: f"ann:{SECRET}"}, (GRADIO_ENV_MCP, ENV_AUTH)),
    ],
    ids=["flags", "variable-and-file", "gradio-variable-and-secret"],
)
def test_mcp_with_a_password_is_refused_with_the_reason_and_the_way_out(
    argv, environ, sources, clean_environment, tmp_path, capsys
):
    """Gradio's MCP endpoint does not check the password (test_app_mcp.py shows it), so the two
    are not combined: the message names where each came from, why, and what to remove."""
    auth_file = tmp_path / "auth.txt"
    auth_file.write_text(f"ann:{SECRET}\n")
    argv = [str(auth_file) if word == "AUTH_FILE" else word for word in argv]
    for name, value in environ.items():
        clean_environment.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        parse_args(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    mcp_source, auth_source = sources
    assert f"{mcp_source} (the MCP server) and a password ({auth_source}) cannot be combined" in error
    assert "MCP endpoint (/gradio_api/mcp/) does not ask for the password" in error
    assert (
        f"remove {auth_source} to serve MCP" in error and f"remove {mcp_source} to keep the password" in error
    )
    assert SECRET not in error


def test_mcp_without_the_mcp_package_says_what_to_install(clean_environment, capsys):
    # None in sys.modules: Python's own way of making an import fail
    clean_environment.setitem(sys.modules, "mcp", None)
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--mcp"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--mcp: the MCP server needs the mcp package" in error and 'pip install "gradio[mcp]"' in error
    assert not parse_args([])[1].mcp  # without MCP the package is not needed


def test_the_start_message_gives_the_mcp_address_and_says_it_takes_no_password():
    url, public = "http://127.0.0.1:7860/", "https://abc.gradio.live"
    local = launch_message(url, None, False, 3.2, mcp=True)
    assert "* MCP server (the API's endpoints as tools): http://127.0.0.1:7860/gradio_api/mcp/" in local
    assert "It takes no password" in local
    shared = launch_message(url, public, True, 3.2, mcp=True)
    assert (
        "https://abc.gradio.live/gradio_api/mcp/" in shared
        and "127.0.0.1" not in shared.split("MCP server")[1]
    )
    assert "none can be while --mcp is on" in shared and "protect it with --auth" not in shared
    assert "MCP" not in launch_message(url, public, True, 3.2)
