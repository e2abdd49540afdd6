"""A deployment behind a TLS-terminating proxy, configured from the environment alone:
`check --deploy` has nothing to say, admin POSTs pass the origin check, and links signed
before a SECRET_KEY rotation keep working."""

from __future__ import annotations

import http.client
import re
import subprocess
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model

from emails.models import EmailPreference
from emails.unsubscribe import make_token
from tests.processes import PYTHON, ROOT, free_port, project_env, wait_for
from tests.processes import run_bare_manage as manage

HOST = "app.example.com"
ORIGIN = f"https://{HOST}"
OLD_KEY = "retired-signing-key-7Hq2LmZpX9vR4sT8wY1uB6nC3dF5gJ0k"
NEW_KEY = "current-signing-key-Vb8Nm2Qw5Er7Ty1Ui3Op9As4Df6Gh0Jk"
TLS_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": NEW_KEY,
    "SECRET_KEY_FALLBACKS": OLD_KEY,
    "ALLOWED_HOSTS": HOST,
    "CSRF_TRUSTED_ORIGINS": ORIGIN,
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "IN_PROCESS_SCHEDULER": "false",
}
PROXIED = {"Host": HOST, "X-Forwarded-Proto": "https"}


def security_warnings(**env: str) -> set[str]:
    checked = manage("check", "--deploy", **env)
    return set(re.findall(r"\(security\.W\d+\)", checked.stdout + checked.stderr))


def test_a_tls_deployment_from_the_environment_clears_every_security_warning():
    assert {"(security.W004)", "(security.W008)", "(security.W012)", "(security.W016)"} <= (
        security_warnings(DEBUG="false", SECRET_KEY=NEW_KEY, ALLOWED_HOSTS=HOST)
    ), "without the TLS variables Django names what is missing"

    assert security_warnings(**TLS_ENV) == set()


@pytest.mark.parametrize(
    "value", ["HTTP_X_FORWARDED_PROTO", "X-Forwarded-Proto: https", "HTTP_X_FORWARDED_PROTO,"]
)
def test_a_malformed_proxy_header_stops_with_a_clear_message(value):
    checked = manage("check", SECURE_PROXY_SSL_HEADER=value)

    assert checked.returncode != 0
    (line,) = checked.stderr.strip().splitlines()
    assert line.startswith("Configuration error: SECURE_PROXY_SSL_HEADER is ")
    assert "e.g. HTTP_X_FORWARDED_PROTO,https" in line


def test_the_tls_variables_default_to_djangos_defaults():
    shown = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.CSRF_TRUSTED_ORIGINS, "
        "s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECRET_KEY_FALLBACKS)",
    )
    assert shown.stdout.strip().splitlines()[-1] == "[] None False False False 0 []", shown.stderr


@pytest.fixture(scope="module")
def tls_server(django_db_setup, django_db_blocker):
    """gunicorn with the TLS deployment's environment; requests come as from the proxy."""
    with django_db_blocker.unblock():
        env = project_env(**TLS_ENV)
    port = free_port()
    server = subprocess.Popen(
        [
            *(PYTHON, "-m", "gunicorn", "--no-control-socket"),
            *("--bind", f"127.0.0.1:{port}", "pluggedin.wsgi:application"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: _answers(port), timeout=60), "server did not start"
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        request(port, "GET", "/admin/login/")
    except OSError:
        return False
    return True


def request(
    port: int, method: str, path: str, body: dict | None = None, **headers: str
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = urlencode(body) if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=data, headers={**PROXIED, **headers})
    response = connection.getresponse()
    response.read()
    return response


def admin_login(port: int, origin: str) -> http.client.HTTPResponse:
    """The admin's login form as a browser behind the proxy submits it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/admin/login/", headers=PROXIED)
    page = connection.getresponse()
    form = page.read().decode()
    cookie = SimpleCookie(page.headers["Set-Cookie"])["csrftoken"].value
    (token,) = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    body = {"csrfmiddlewaretoken": token, "username": "admin", "password": "pw-0123456789"}
    return request(
        port,
        "POST",
        "/admin/login/?next=/admin/",
        body,
        Origin=origin,
        Cookie=f"csrftoken={cookie}",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_behind_a_tls_proxy_an_admin_post_passes_the_origin_check(tls_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the server's
    get_user_model().objects.create_superuser("admin", "admin@example.test", "pw-0123456789")

    page = request(tls_server, "GET", "/admin/login/")
    assert page.status == 200, "X-Forwarded-Proto: https is https: no redirect"
    assert page.headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert "Secure" in page.headers["Set-Cookie"]

    logged_in = admin_login(tls_server, ORIGIN)
    assert logged_in.status == 302 and logged_in.headers["Location"] == "/admin/"

    assert admin_login(tls_server, "https://elsewhere.example").status == 403


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_link_signed_before_a_key_rotation_still_unsubscribes(tls_server, settings):
    ann = get_user_model().objects.create_user("ann", "ann@example.test", "pw")
    settings.SECRET_KEY = OLD_KEY
    old_link = f"/emails/unsubscribe/{make_token(ann.pk)}"
    settings.SECRET_KEY = "a-key-the-server-never-had-0123456789abcdef"
    forged = f"/emails/unsubscribe/{make_token(ann.pk)}"

    assert request(tls_server, "POST", forged, {"List-Unsubscribe": "One-Click"}).status == 400
    assert not EmailPreference.objects.exists()

    answered = request(tls_server, "POST", old_link, {"List-Unsubscribe": "One-Click"})

    assert answered.status == 200
    assert EmailPreference.objects.get(user=ann).onboarding_opt_out is True
