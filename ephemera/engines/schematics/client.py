"""The Schematics SDK client under the engine: it builds ``SchematicsV1`` on first use
(the service URL set explicitly, IAM's ``bx``/``bx`` client for refresh tokens), runs each
SDK call with the error mapping and retries the engine's contract names
(:mod:`ephemera.engines.schematics.engine`), and scrubs every secret it learns (API key,
tokens, secure values) from what it and the SDK's loggers emit.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ephemera.engines.schematics.config import REFRESH_TOKEN_CLIENT, SchematicsSettings
from ephemera.engines.schematics.sdkdebug import sdk_http_debug_contained
from ephemera.errors import EngineError, WorkspaceBusyError
from ephemera.secrets import SDK_SCRUBBER, Scrubber, guard_loggers

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})  # retried with backoff
BUSY_STATUS = frozenset({409, 423})  # another job holds the workspace: try later
SDK_LOGGERS = ("ibm-cloud-sdk-core", "ibm_cloud_sdk_core", "ibm_schematics", "urllib3", "requests")


def _guard_sdk_logs(secrets: set[str]) -> None:
    guard_loggers(SDK_LOGGERS, secrets)


def _is_iam_response(exc: Exception) -> bool:
    """Whether an ApiException came from the IAM token endpoint rather than Schematics."""
    response = getattr(exc, "http_response", None)
    url = getattr(response, "url", "") or getattr(getattr(response, "request", None), "url", "") or ""
    return "/identity/token" in str(url)


class SchematicsClient:
    """One Schematics workspace's SDK session: settings, the lazily built service, the secrets to scrub."""

    def __init__(self, settings: SchematicsSettings, workspace: str, *, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.workspace = workspace  # the Ephemera workspace name this Schematics workspace backs
        self._sleep = sleep  # injectable so tests need not wait for backoff
        self._secrets: set[str] = {settings.api_key}
        self._service: Any = None  # the SDK's SchematicsV1, built on first use (the SDK is untyped)
        self._authenticator: Any = None  # its IAMAuthenticator

    # -- the SDK client ---------------------------------------------------------------

    def _client(self):
        if self._service is None:
            from ibm_cloud_sdk_core.authenticators import IAMAuthenticator  # lazy: cloud SDK
            from ibm_schematics.schematics_v1 import SchematicsV1  # cloud SDK: imported only when this client is first used

            _guard_sdk_logs(self._secrets)
            client_id, client_secret = REFRESH_TOKEN_CLIENT
            self._authenticator = IAMAuthenticator(
                self.settings.api_key, url=self.settings.iam_url, client_id=client_id, client_secret=client_secret
            )
            with sdk_http_debug_contained():  # at DEBUG the SDK switches on http.client's wire dump process-wide
                service = SchematicsV1(authenticator=self._authenticator)
            service.set_service_url(self.settings.service_url)
            _guard_sdk_logs(self._secrets)
            self._service = service
        return self._service

    def _remember_secret(self, value: str | None) -> None:
        if value:
            self._secrets.add(value)
            SDK_SCRUBBER.add([value])

    def _clean(self, text: str) -> str:
        return Scrubber(self._secrets).scrub(str(text))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call; map errors, retry only the named transient ones with backoff."""
        import requests  # cloud SDK: imported only when this client is first used
        from ibm_cloud_sdk_core import ApiException  # cloud SDK: imported only when this client is first used

        delay = self.settings.backoff_seconds
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                response = fn(*args, **kwargs)
                return response.get_result() if hasattr(response, "get_result") else response
            except ApiException as exc:
                status, detail = exc.status_code, self._clean(exc.message or "")
                if _is_iam_response(exc):
                    if status in TRANSIENT_STATUS and attempt < self.settings.max_attempts:
                        log.warning("IAM token request: HTTP %s, retry %d in %.1fs", status, attempt, delay)
                        self._sleep(delay)
                        delay *= 2
                        continue
                    raise EngineError(
                        f"IAM at {self.settings.iam_url} refused a token ({what}: HTTP {status}: {detail}); "
                        "check ibm.iam_api_key and ibm.iam_url",
                        retryable=status in TRANSIENT_STATUS,
                    ) from None
                if status in BUSY_STATUS:
                    raise WorkspaceBusyError(
                        f"Schematics workspace '{self.settings.workspace_id}' is busy ({what}: HTTP {status}: {detail}); try later"
                    ) from None
                if status in TRANSIENT_STATUS and attempt < self.settings.max_attempts:
                    log.warning("schematics %s: HTTP %s, retry %d in %.1fs", what, status, attempt, delay)
                else:
                    raise EngineError(self._explain(what, status, detail), retryable=status in TRANSIENT_STATUS) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt >= self.settings.max_attempts:
                    raise EngineError(
                        f"schematics {what}: cannot reach {self.settings.service_url} ({type(exc).__name__}) after "
                        f"{attempt} attempts; check schematics.url / schematics.region and the network",
                        retryable=True,
                    ) from None
                log.warning("schematics %s: %s, retry %d in %.1fs", what, type(exc).__name__, attempt, delay)
            self._sleep(delay)
            delay *= 2
        raise EngineError(f"schematics {what}: no attempt was made", retryable=True)  # max_attempts < 1

    def _explain(self, what: str, status: int, detail: str) -> str:
        fixes = {
            400: "check the variables and the workspace's template",
            401: "check ibm.iam_api_key (and ibm.iam_url)",
            403: "give the API key's owner the Schematics Manager role on the workspace and the VPC Infrastructure roles",
            404: "check schematics.workspace_id and that schematics.region / schematics.url is the workspace's location",
        }
        fix = fixes.get(status, "see the Schematics workspace's jobs in the IBM Cloud console")
        return f"schematics {what} failed: HTTP {status}: {detail}; {fix}"

    def _refresh_token(self) -> str:
        """An IAM refresh token (apply and destroy need one), via the ``bx``/``bx`` client."""
        self._client()
        manager = self._authenticator.token_manager
        self._call("IAM token request", manager.get_token)
        self._remember_secret(getattr(manager, "access_token", None))
        token = getattr(manager, "refresh_token", None)
        if not token:
            raise EngineError(
                f"IAM at {self.settings.iam_url} returned no refresh token; set ibm.iam_url to the IAM endpoint "
                "(it issues one to client id/secret bx/bx)"
            )
        self._remember_secret(token)
        return token
