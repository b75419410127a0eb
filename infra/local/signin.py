"""The local gateway's access layer for `ivadas up --auth`: what Cognito's hosted sign-in, its
authorizer and API Gateway's usage plans do on AWS, over the same wire formats.

- `/oauth2/authorize` and `/oauth2/token`: the authorization-code flow with PKCE (S256 only, no
  client secret), the paths Cognito's hosted UI uses; the login form checks `auth.json`'s users.
- `identify`: a request's `Authorization` token or `x-api-key` checked, and the claims or the key id
  put where API Gateway puts them in the Lambda's event; a bad credential is refused here (401, 403,
  429 over quota) and never reaches the Lambda. Whether the caller may call the route is the
  Lambda's decision (lambda/predict/access.py), as on AWS.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from .auth import CLIENT_ID, TOKEN_LIFETIME_S, AuthError, AuthStore, CodeStore, UsageMeter, bearer

AUTHORIZE, TOKEN = "/oauth2/authorize", "/oauth2/token"
MAX_FORM_BYTES = 16 * 1024


class LocalAccess:
    def __init__(self, auth_file: Path, state_file: Path):
        self.store = AuthStore(auth_file)
        self.meter = UsageMeter(state_file)
        self.codes = CodeStore(state_file)

    def ui_config(self) -> dict:
        """What the UI needs to sign in (`config.json`'s `auth`), the same keys as on AWS."""
        return {"authorizeUrl": AUTHORIZE, "tokenUrl": TOKEN, "clientId": CLIENT_ID, "scopes": "openid"}

    # ----------------------------------------------------------------------- API requests

    def identify(self, environ, event: dict) -> None:
        """Check the request's credential and put the caller into `event` (or raise AuthError).

        A route the Lambda opens to anyone (GET /health) has no authorizer and no usage plan on AWS
        (infra/aws/constructs/api.py, PUBLIC_ROUTES): API Gateway neither checks nor passes on what
        credential such a request carries, so neither does this, and a liveness probe never fails
        on a stale token."""
        if _open_to_anyone(event["httpMethod"], event["path"]):
            return
        key = environ.get("HTTP_X_API_KEY")
        token = bearer(environ.get("HTTP_AUTHORIZATION"))
        context = event["requestContext"]
        if token:
            claims = self.store.verify_token(token)
            # API Gateway's Cognito authorizer passes every claim as a string, groups comma-separated
            context["authorizer"] = {"claims": {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in claims.items()}}
        elif key:
            station = self.store.station_for(key)
            self.meter.spend(station)
            context["identity"].update(apiKeyId=station.key_id, apiKey=key)

    # ----------------------------------------------------------------------- sign-in

    def handle(self, environ, start_response):
        path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
        try:
            if path == AUTHORIZE and method == "GET":
                return self._form(start_response, _query(environ))
            if path == AUTHORIZE and method == "POST":
                return self._sign_in(environ, start_response)
            if path == TOKEN and method == "POST":
                return self._token(environ, start_response)
        except AuthError as error:
            if path == TOKEN:  # OAuth 2.0 error shape (RFC 6749 §5.2), as Cognito's token endpoint answers
                return _send(start_response, error.status, json.dumps({"error": error.code, "error_description": error.message}),
                             "application/json")
            return _send(start_response, error.status, _page(f"<p class='error'>{html.escape(error.message)}</p>"))
        return _send(start_response, 405, _page("<p class='error'>method not allowed</p>"))

    def _check_request(self, params: dict, environ) -> None:
        if params.get("client_id") != CLIENT_ID:
            raise AuthError(400, "invalid_client", "unknown client_id")
        if params.get("response_type", "code") != "code":
            raise AuthError(400, "unsupported_response_type", "only response_type=code (authorization code with PKCE)")
        if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge", "")) < 43:
            raise AuthError(400, "invalid_request", "a code_challenge with code_challenge_method=S256 is required")
        if not _same_origin(params.get("redirect_uri", ""), environ):
            raise AuthError(400, "invalid_request", "redirect_uri must be a page of this site")

    def _form(self, start_response, params: dict, message: str = "", status: int = 200):
        hidden = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                         for k, v in params.items() if k in ("client_id", "redirect_uri", "code_challenge",
                                                              "code_challenge_method", "state", "response_type", "scope"))
        error = f"<p class='error' role='alert'>{html.escape(message)}</p>" if message else ""
        return _send(start_response, status, _page(
            f"<h1>Sign in to IVADAS</h1>{error}<form method='post' action='{AUTHORIZE}'>{hidden}"
            "<label>User name <input name='username' autocomplete='username' required></label>"
            "<label>Password <input name='password' type='password' autocomplete='current-password' required></label>"
            "<button type='submit'>Sign in</button></form>"))

    def _sign_in(self, environ, start_response):
        params = _form_body(environ)
        self._check_request(params, environ)
        try:
            self.store.authenticate(params.get("username", ""), params.get("password", ""))
        except AuthError as error:
            return self._form(start_response, params, error.message, status=401)
        code = self.codes.issue(params["username"], params["redirect_uri"], params["code_challenge"])
        target = params["redirect_uri"] + ("&" if "?" in params["redirect_uri"] else "?") + urlencode(
            {"code": code, **({"state": params["state"]} if params.get("state") else {})})
        start_response("302 Found", [("Location", target), ("Content-Length", "0"), ("Cache-Control", "no-store")])
        return [b""]

    def _token(self, environ, start_response):
        params = _form_body(environ)
        if params.get("grant_type") != "authorization_code":
            raise AuthError(400, "unsupported_grant_type", "only grant_type=authorization_code")
        if params.get("client_id") != CLIENT_ID:
            raise AuthError(400, "invalid_client", "unknown client_id")
        user = self.codes.redeem(params.get("code", ""), params.get("redirect_uri", ""), params.get("code_verifier", ""))
        token = self.store.issue_token(user)
        return _send(start_response, 200, json.dumps({"id_token": token, "access_token": token, "token_type": "Bearer",
                                                      "expires_in": TOKEN_LIFETIME_S}), "application/json")


def _open_to_anyone(method: str, path: str) -> bool:
    """Whether the Lambda's route table (lambda/predict/access.py) lets anyone call the route."""
    folder = str(Path(__file__).resolve().parents[2] / "lambda" / "predict")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from access import ANYONE, minimum_for

    return minimum_for(method, path) == ANYONE


def _query(environ) -> dict:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _form_body(environ) -> dict:
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_FORM_BYTES)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length).decode("utf-8", errors="replace") if length else ""
    return {k: v[-1] for k, v in parse_qs(body).items()}


def _same_origin(uri: str, environ) -> bool:
    parts = urlsplit(uri)
    if not parts.scheme and not parts.netloc:
        return uri.startswith("/") and not uri.startswith("//")
    return parts.scheme in ("http", "https") and parts.netloc == environ.get("HTTP_HOST", "")


def _page(body: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>IVADAS sign-in</title>"
            "<link rel='stylesheet' href='/styles.css'></head><body class='signin'>" + body + "</body></html>")


def _send(start_response, status: int, text: str, content_type: str = "text/html; charset=utf-8"):
    import http.client

    data = text.encode()
    start_response(f"{status} {http.client.responses.get(status, 'Error')}",
                   [("Content-Type", content_type), ("Content-Length", str(len(data))), ("Cache-Control", "no-store"),
                    ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff")])
    return [data]
