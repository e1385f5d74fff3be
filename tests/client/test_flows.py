"""An independent client for twofactor, written as a team using pyotp would.

Walks every flow of the contract (shared API.md) against a running server
whose base URL is in TWOFACTOR_URL (tests/client/run.sh starts one). Uses
pyotp for codes, oathtool and zbarimg as independent tools, and checks the
error shape {"detail", "code"}. Every test makes its own users (uuid names), so
tests do not share replay marks or lockout counters.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
import uuid
from urllib.parse import parse_qs, unquote, urlparse

import pytest

BASE = os.environ.get("TWOFACTOR_URL", "").rstrip("/")
if not BASE:
    pytest.skip(
        "TWOFACTOR_URL is not set: start a server and export its base URL, "
        "or run tests/client/run.sh [path/to/twofactor]",
        allow_module_level=True,
    )

import pyotp  # noqa: E402
import requests  # noqa: E402

TIMEOUT = 15
RECOVERY_CODE = re.compile(r"^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")

session = requests.Session()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def new_username(prefix: str = "py") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def password_for(username: str) -> str:
    return f"pw for {username} ✓"


def post(path: str, body=None, **kwargs) -> requests.Response:
    return session.post(BASE + path, json=body, timeout=TIMEOUT, **kwargs)


def get(path: str, **kwargs) -> requests.Response:
    return session.get(BASE + path, timeout=TIMEOUT, **kwargs)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_error(resp: requests.Response, status: int, code: str, detail: str | None = None) -> dict:
    """The contract's error shape: JSON {"detail": str, "code": str}."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body.get("code") == code, body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if detail is not None:
        assert body["detail"] == detail, body
    return body


def signup(username: str, enable_mfa: bool) -> dict:
    resp = post("/signup", {"username": username, "password": password_for(username),
                            "enable_mfa": enable_mfa})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["message"] == "Signup successful"
    assert body["mfa_enabled"] is enable_mfa
    return body


def login(username: str) -> dict:
    resp = post("/login", {"username": username, "password": password_for(username)})
    assert resp.status_code == 200, resp.text
    return resp.json()


def login_2fa(username: str, code: str, mfa_token: str) -> requests.Response:
    return post("/login-2fa", {"username": username, "token": code, "mfa_token": mfa_token})


def mfa_token_for(username: str) -> str:
    body = login(username)
    assert body["mfa_required"] is True, body
    assert body["message"] == "MFA enabled. Please submit OTP"
    assert TOKEN.match(body["mfa_token"]), body
    return body["mfa_token"]


def totp_of(provisioning_uri: str) -> pyotp.TOTP:
    otp = pyotp.parse_uri(provisioning_uri)
    assert isinstance(otp, pyotp.TOTP), provisioning_uri
    return otp


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is not installed (Debian package {package}); CI installs it"
    return path


def zbar_decode(image_path) -> str:
    need("zbarimg", "zbar-tools")
    out = subprocess.run(["zbarimg", "--raw", "-q", str(image_path)],
                         capture_output=True, check=True, timeout=30)
    return out.stdout.decode("utf-8").rstrip("\r\n")


def oathtool(secret: str, *extra: str) -> str:
    need("oathtool", "oathtool")
    out = subprocess.run(["oathtool", "--totp", "-b", *extra, secret],
                         capture_output=True, check=True, timeout=30, text=True)
    return out.stdout.strip()


def fetch_qr(username: str, fmt: str | None = None) -> requests.Response:
    path = f"/qrcode/{username}" + (f"?format={fmt}" if fmt else "")
    return post(path, {"password": password_for(username)})


# --------------------------------------------------------------------------
# Signup and the provisioning URI
# --------------------------------------------------------------------------

def test_signup_with_mfa_gives_a_uri_pyotp_and_authenticators_understand():
    user = new_username()
    body = signup(user, enable_mfa=True)
    uri = body["provisioning_uri"]
    otp = totp_of(uri)

    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp", uri
    query = parse_qs(parsed.query)
    issuer = query["issuer"][0]
    assert unquote(parsed.path.lstrip("/")) == f"{issuer}:{user}", uri
    secret = query["secret"][0]
    assert "=" not in secret, "base32 without padding in URIs"
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20, "160-bit secret"

    assert otp.secret == secret
    assert otp.name == user
    assert otp.issuer == issuer
    assert otp.digits == 6 and otp.interval == 30
    assert otp.digest().name == "sha1"

    codes = body["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    assert all(RECOVERY_CODE.match(c) for c in codes), codes


def test_signup_without_mfa_logs_in_with_a_password_alone():
    user = new_username()
    body = signup(user, enable_mfa=False)
    assert "provisioning_uri" not in body and "recovery_codes" not in body
    body = login(user)
    assert body["message"] == "Login successful"
    assert body["token_type"] == "bearer"
    assert TOKEN.match(body["token"]), body
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    me = get("/me", headers=bearer(body["token"]))
    assert me.status_code == 200, me.text
    assert me.json() == {"username": user, "mfa_enabled": False}


# --------------------------------------------------------------------------
# QR codes
# --------------------------------------------------------------------------

def test_the_png_qr_code_holds_exactly_the_provisioning_uri(tmp_path):
    user = new_username()
    uri = signup(user, enable_mfa=True)["provisioning_uri"]
    resp = fetch_qr(user)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "image/png"
    assert "no-store" in resp.headers.get("Cache-Control", "")
    assert resp.content.startswith(b"\x89PNG\r\n\x1a\n")
    image = tmp_path / "qr.png"
    image.write_bytes(resp.content)
    assert zbar_decode(image) == uri


def test_the_svg_qr_code_holds_exactly_the_provisioning_uri(tmp_path):
    user = new_username()
    uri = signup(user, enable_mfa=True)["provisioning_uri"]
    resp = fetch_qr(user, "svg")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("image/svg+xml")
    assert "no-store" in resp.headers.get("Cache-Control", "")
    assert b"<svg" in resp.content
    if not shutil.which("rsvg-convert"):
        pytest.skip("rsvg-convert (Debian librsvg2-bin) is not installed: cannot rasterize the SVG")
    svg = tmp_path / "qr.svg"
    svg.write_bytes(resp.content)
    png = tmp_path / "qr-from-svg.png"
    subprocess.run(["rsvg-convert", "-b", "white", "-w", "800", "-h", "800",
                    "-o", str(png), str(svg)], check=True, timeout=30)
    assert zbar_decode(png) == uri


def test_the_qr_code_needs_the_password_and_stops_once_confirmed():
    user = new_username()
    otp = totp_of(signup(user, enable_mfa=True)["provisioning_uri"])
    assert_error(post(f"/qrcode/{user}", {"password": "not the password"}),
                 401, "invalid_credentials", "Invalid credentials")
    assert_error(post(f"/qrcode/{new_username()}", {"password": "whatever password"}),
                 401, "invalid_credentials", "Invalid credentials")
    assert fetch_qr(user).status_code == 200
    resp = login_2fa(user, otp.now(), mfa_token_for(user))
    assert resp.status_code == 200, resp.text
    assert_error(fetch_qr(user), 409, "mfa_confirmed")


def test_the_qr_code_of_an_account_without_mfa_is_refused():
    user = new_username()
    signup(user, enable_mfa=False)
    assert_error(fetch_qr(user), 409, "mfa_disabled", "MFA is not enabled")


# --------------------------------------------------------------------------
# The whole walk, as a client following the seed's diagrams would
# --------------------------------------------------------------------------

def test_every_flow_from_signup_to_logout(tmp_path):
    user = new_username("walk")
    pw = password_for(user)

    # Signup with MFA; the QR code scanned back is the URI.
    body = signup(user, enable_mfa=True)
    uri = body["provisioning_uri"]
    recovery = body["recovery_codes"]
    otp = totp_of(uri)
    qr = fetch_qr(user)
    assert qr.status_code == 200, qr.text
    (tmp_path / "qr.png").write_bytes(qr.content)
    assert zbar_decode(tmp_path / "qr.png") == uri

    # Login with pyotp's current code.
    mfa_token = mfa_token_for(user)
    resp = login_2fa(user, otp.now(), mfa_token)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["message"] == "Login successful"
    assert body["token_type"] == "bearer"
    assert TOKEN.match(body["token"])
    assert "recovery_codes_remaining" not in body
    session_1 = body["token"]
    me = get("/me", headers=bearer(session_1))
    assert me.status_code == 200, me.text
    assert me.json() == {"username": user, "mfa_enabled": True, "recovery_codes_remaining": 10}

    # The mfa_token is spent by the success.
    assert_error(login_2fa(user, otp.now(), mfa_token), 401, "invalid_mfa_token")

    # A second login with oathtool's code for the NEXT step: later than the
    # one just used (so no replay), and within the +1 step skew.
    before = time.time()
    code = oathtool(otp.secret, "-N", "now + 30 seconds")
    after = time.time()
    assert code in {otp.at(before + 30), otp.at(after + 30)}, "oathtool and pyotp agree"
    resp = login_2fa(user, code, mfa_token_for(user))
    assert resp.status_code == 200, resp.text
    session_2 = resp.json()["token"]
    assert session_2 != session_1

    # The enrollment is confirmed: the QR code is gone.
    assert_error(fetch_qr(user), 409, "mfa_confirmed")

    # A recovery code logs in once.
    resp = login_2fa(user, recovery[0], mfa_token_for(user))
    assert resp.status_code == 200, resp.text
    assert resp.json()["recovery_codes_remaining"] == 9
    assert_error(login_2fa(user, recovery[0], mfa_token_for(user)), 401, "invalid_otp", "Invalid OTP")

    # Disable MFA with another recovery code.
    assert_error(post("/disable-mfa", {"username": user, "password": pw, "token": "000000"}),
                 401, "invalid_otp", "Invalid OTP for disabling MFA")
    resp = post("/disable-mfa", {"username": user, "password": pw, "token": recovery[1]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"message": "MFA disabled successfully"}
    assert_error(post("/disable-mfa", {"username": user, "password": pw, "token": recovery[2]}),
                 409, "mfa_disabled", "MFA is already disabled")

    # Login without MFA.
    body = login(user)
    assert body["message"] == "Login successful" and "mfa_required" not in body
    session_3 = body["token"]
    assert get("/me", headers=bearer(session_3)).json() == {"username": user, "mfa_enabled": False}

    # Enable MFA again: a new secret, new codes; the old ones are dead.
    resp = post("/enable-mfa", {"username": user, "password": pw})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["mfa_enabled"] is True
    new_otp = totp_of(body["provisioning_uri"])
    assert new_otp.secret != otp.secret
    assert not set(body["recovery_codes"]) & set(recovery)
    assert_error(post("/enable-mfa", {"username": user, "password": pw}), 409, "mfa_already_enabled")
    qr = fetch_qr(user)
    assert qr.status_code == 200
    (tmp_path / "qr2.png").write_bytes(qr.content)
    assert zbar_decode(tmp_path / "qr2.png") == body["provisioning_uri"]
    assert_error(login_2fa(user, recovery[3], mfa_token_for(user)), 401, "invalid_otp")
    assert_error(login_2fa(user, otp.now(), mfa_token_for(user)), 401, "invalid_otp")
    # (A new recovery code rather than a TOTP code: the step just used may
    # still be the current one, and the replay floor may outlive the secret.)
    resp = login_2fa(user, body["recovery_codes"][0], mfa_token_for(user))
    assert resp.status_code == 200, resp.text
    session_4 = resp.json()["token"]

    # Logout: 204, and the token is dead; other sessions live on.
    resp = post("/logout", headers=bearer(session_4))
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    me = get("/me", headers=bearer(session_4))
    assert_error(me, 401, "unauthorized")
    assert me.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert get("/me", headers=bearer(session_1)).status_code == 200


def test_oathtool_codes_are_accepted():
    user = new_username()
    secret = totp_of(signup(user, enable_mfa=True)["provisioning_uri"]).secret
    resp = login_2fa(user, oathtool(secret), mfa_token_for(user))
    assert resp.status_code == 200, resp.text


def test_a_code_typed_with_a_space_is_accepted():
    user = new_username()
    otp = totp_of(signup(user, enable_mfa=True)["provisioning_uri"])
    code = otp.now()
    resp = login_2fa(user, f"{code[:3]} {code[3:]}", mfa_token_for(user))
    assert resp.status_code == 200, resp.text


def test_a_code_is_accepted_only_once():
    user = new_username()
    otp = totp_of(signup(user, enable_mfa=True)["provisioning_uri"])
    code = otp.now()
    assert login_2fa(user, code, mfa_token_for(user)).status_code == 200
    assert_error(login_2fa(user, code, mfa_token_for(user)), 401, "invalid_otp", "Invalid OTP")
    # Nor the previous step's code.
    assert_error(login_2fa(user, otp.at(time.time() - 30), mfa_token_for(user)), 401, "invalid_otp")


def test_login_2fa_requires_the_mfa_token_from_login():
    user = new_username()
    otp = totp_of(signup(user, enable_mfa=True)["provisioning_uri"])
    resp = post("/login-2fa", {"username": user, "token": otp.now()})
    assert resp.status_code in (401, 422), resp.text
    assert set(resp.json()) >= {"detail", "code"}
    assert_error(login_2fa(user, otp.now(), "A" * 43), 401, "invalid_mfa_token")
    other = new_username()
    signup(other, enable_mfa=True)
    assert_error(login_2fa(user, otp.now(), mfa_token_for(other)), 401, "invalid_mfa_token")


# --------------------------------------------------------------------------
# Error shapes
# --------------------------------------------------------------------------

def test_duplicate_signup_ignoring_case():
    user = new_username()
    signup(user, enable_mfa=False)
    for name in (user, user.upper()):
        assert_error(post("/signup", {"username": name, "password": "another password"}),
                     409, "user_exists", "User already exists")


def test_unknown_user_and_wrong_password_look_the_same():
    user = new_username()
    signup(user, enable_mfa=False)
    wrong = post("/login", {"username": user, "password": "not the password"})
    unknown = post("/login", {"username": new_username(), "password": "not the password"})
    assert_error(wrong, 401, "invalid_credentials", "Invalid credentials")
    assert_error(unknown, 401, "invalid_credentials", "Invalid credentials")
    assert wrong.json() == unknown.json()


def test_wrong_otp():
    user = new_username()
    otp = totp_of(signup(user, enable_mfa=True)["provisioning_uri"])
    good = otp.now()
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    assert_error(login_2fa(user, bad, mfa_token_for(user)), 401, "invalid_otp", "Invalid OTP")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "x"}, "password"),
        ({"password": "long enough"}, "username"),
        ({"username": "", "password": "long enough"}, "username"),
        ({"username": "a b", "password": "long enough"}, "username"),
        ({"username": "ok-name", "password": "short"}, "password"),
        ({"username": "ok-name", "password": "long enough", "enable_mfa": "yes"}, "enable_mfa"),
    ],
)
def test_invalid_signup_input_names_the_field(body, field):
    resp = post("/signup", body)
    err = assert_error(resp, 422, "invalid_input")
    assert err["detail"].startswith(field), err


def test_malformed_json_is_a_400():
    resp = session.post(BASE + "/login", data=b'{"username": ', timeout=TIMEOUT,
                        headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "bad_request")


def test_a_non_json_content_type_is_a_415():
    resp = session.post(BASE + "/login", data=b"username=a&password=b", timeout=TIMEOUT,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(resp, 415, "unsupported_media_type")


def test_unknown_routes_and_methods_answer_json():
    assert_error(get("/no/such/route"), 404, "not_found")
    resp = session.delete(BASE + "/login", timeout=TIMEOUT)
    assert_error(resp, 405, "method_not_allowed")


def test_me_without_a_token():
    resp = get("/me")
    assert_error(resp, 401, "unauthorized")
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert_error(get("/me", headers=bearer("not-a-real-token")), 401, "unauthorized")
    assert_error(post("/logout", headers=bearer("not-a-real-token")), 401, "unauthorized")


def test_disable_mfa_needs_the_right_password():
    user = new_username()
    otp = totp_of(signup(user, enable_mfa=True)["provisioning_uri"])
    assert_error(post("/disable-mfa", {"username": user, "password": "not the password",
                                       "token": otp.now()}),
                 401, "invalid_credentials", "Invalid credentials")


def test_repeated_wrong_passwords_lock_the_account_with_retry_after():
    user = new_username()
    signup(user, enable_mfa=False)
    for _ in range(5):
        assert_error(post("/login", {"username": user, "password": "not the password"}),
                     401, "invalid_credentials")
    resp = post("/login", {"username": user, "password": password_for(user)})
    assert_error(resp, 429, "too_many_attempts")
    retry_after = resp.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, resp.headers


def test_health_and_readiness():
    resp = get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    resp = get("/readyz")
    assert resp.status_code == 200 and resp.json() == {"status": "ready"}
