"""A password for the app (issue 22, item 3): ``--auth USER:PASSWORD``, ``--auth-file`` or
``OSDFACE_AUTH`` protect the page and the API alike; the terminal says whether one is set. The
running app refusing a client without it is tested in test_app.py (beside ``RunningApp``)."""

from __future__ import annotations

import pytest

from osdface.app.arguments import ENV_AUTH, CredentialsError, launch_message, parse_args, read_credentials

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


def test_the_share_message_says_whether_a_password_is_set():
    url, public = "http://127.0.0.1:7860/", "https://abc.gradio.live"
    open_link = launch_message(url, public, True, 3.2)
    assert "PUBLIC" in open_link and "No password is set: protect it with --auth USER:PASSWORD" in open_link
    protected = launch_message(url, public, True, 3.2, users=2)
    assert "A password is required (2 users" in protected and "No password" not in protected
