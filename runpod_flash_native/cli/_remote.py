"""What is deployed in a flash environment, read through runpod-flash's own
API client (``runpod_flash.core.api.runpod.RunpodGraphQLClient``), for
``plan --env`` and ``status --env``.

Three queries, each one flash's own client method: the app by name and the
environment by name (the look-ups ``flash deploy`` makes), then the build
that is active in that environment, whose ``manifest`` is the one flash's
State Manager client and service registry read (``activeBuildId`` ->
``flashBuild.manifest``). The API key and URL come from where flash takes
them (``RUNPOD_API_KEY``, the project's ``.env``, ``~/.runpod/config.toml``;
``RUNPOD_API_BASE_URL``).

Read-only: where ``flash deploy`` would create a missing app or environment,
this reports it; and the client here refuses to send any GraphQL mutation.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._common import CliError, show
from ._report import warn

_RETRY_LOG = "Retrying GraphQL request"


class MutationRefused(RuntimeError):
    """A GraphQL mutation was about to be sent by a read-only command."""


@dataclass
class Deployed:
    """The deployed state of one environment. ``manifest`` is None when
    nothing is deployed there yet (no active build, or an active build
    without a manifest): then the next deploy provisions every resource."""

    app: str
    app_id: str | None
    environment: str
    environment_id: str | None
    build_id: str | None
    manifest: dict[str, Any] | None
    api_url: str

    @property
    def state(self) -> str:
        if self.build_id is None:
            return "no_active_build"
        return "no_manifest" if self.manifest is None else "active_build"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: what identifies the app, environment and build."""
        return {
            "app": self.app,
            "app_id": self.app_id,
            "environment": self.environment,
            "environment_id": self.environment_id,
            "build_id": self.build_id,
            "state": self.state,
            "api_url": self.api_url,
        }

    def where(self) -> str:
        return f"environment {self.environment!r} of app {self.app!r}"

    def absence(self) -> str:
        """Why nothing is deployed (``manifest`` is None)."""
        if self.build_id is None:
            return f"{self.where()} has no active build yet"
        return f"the active build {self.build_id} of {self.where()} has no manifest"

    def headline(self) -> str:
        """One line saying what the plan is compared with."""
        if self.manifest is None:
            return f"deployed: nothing: {self.absence()}; the next deploy provisions every resource"
        return f"deployed: build {self.build_id}, active in {self.where()} ({self.api_url})"


def default_app_name(root: Path) -> str:
    """flash deploy's default app name: the name of the directory it runs in
    (``Path.cwd().name``, the physical path: symlinks resolved)."""
    return root.resolve().name


# --------------------------------------------------------------------------
# loading runpod-flash's client


@dataclass
class _Flash:
    client_class: Any
    api_key_error: type[BaseException]
    api_url: str
    network_errors: tuple[type[BaseException], ...]
    not_json: type[BaseException]


@contextlib.contextmanager
def _quiet_import(root: Path) -> Iterator[None]:
    """Import flash as ``flash deploy`` run in ``root`` would: its import
    loads the nearest ``.env`` from the working directory up, so the working
    directory is ``root`` meanwhile. Its import also configures logging
    when nothing has (a handler on stdout, and a log file created under
    ``./.flash/logs``): a placeholder root handler keeps stdout clean and
    the project untouched. Import-time warnings become our warning lines."""
    root_logger = logging.getLogger()
    placeholder = logging.NullHandler()
    saved_level = root_logger.level
    added = not root_logger.handlers
    if added:
        root_logger.addHandler(placeholder)
    cwd = os.getcwd()
    try:
        os.chdir(root)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        os.chdir(cwd)
        if added:
            root_logger.removeHandler(placeholder)
        root_logger.setLevel(saved_level)
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            warn(f"runpod-flash: {w.message}", kind="runpod_flash")


def _load_flash(root: Path) -> _Flash:
    if importlib.util.find_spec("runpod_flash") is None:
        raise CliError("runpod-flash is not installed: --env reads the deployed build through its API client "
                       "(pip install runpod-flash)")
    from .._flash import in_process_cpu_probe

    try:
        with in_process_cpu_probe(), _quiet_import(root):
            import aiohttp
            from runpod_flash.core.api import runpod as api
            from runpod_flash.core.exceptions import RunpodAPIKeyError
    except ImportError as e:
        raise CliError(f"runpod-flash cannot be loaded ({e})") from None
    except ValueError as e:  # runpod_flash.core.urls: a malformed RUNPOD_*_URL
        raise CliError(f"runpod-flash: {e}") from None
    network: tuple[type[BaseException], ...] = (aiohttp.ClientError,)
    flash_network = getattr(api, "_GraphQLNetworkError", None)
    if isinstance(flash_network, type) and issubclass(flash_network, BaseException):
        network += (flash_network,)
    # module-level in 1.21.0, a class attribute in 1.14.0
    url = getattr(api, "GRAPHQL_URL", None) or getattr(api.RunpodGraphQLClient, "GRAPHQL_URL", "the GraphQL API")
    return _Flash(_read_only(api.RunpodGraphQLClient), RunpodAPIKeyError, str(url), network,
                  aiohttp.ContentTypeError)


def _read_only(base: Any) -> Any:
    """flash's client, refusing to send a mutation: every request of its
    methods passes ``_execute_graphql`` (retries) and then
    ``_execute_graphql_once`` (the POST); both refuse one. Queries pass
    unchanged."""

    def refuse(query: str) -> None:
        if query.lstrip().lower().startswith("mutation"):
            raise MutationRefused("refusing to send a GraphQL mutation (read-only command)")

    class ReadOnlyClient(base):  # type: ignore[misc]
        async def _execute_graphql(self, query: str, *args: Any, **kwargs: Any) -> Any:
            refuse(query)
            return await super()._execute_graphql(query, *args, **kwargs)

        async def _execute_graphql_once(self, query: str, *args: Any, **kwargs: Any) -> Any:
            refuse(query)
            return await super()._execute_graphql_once(query, *args, **kwargs)

    return ReadOnlyClient


class _Attempts(logging.Handler):
    """Counts flash's retries of the current request and shows each one as
    a warning line (a retry waits up to 15 s)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_RETRY_LOG):
            self.retries += 1
            warn(f"runpod-flash: {message}", kind="retry")


@contextlib.contextmanager
def _flash_logs() -> Iterator[_Attempts]:
    """flash's log records during the look-up: retries counted, nothing on
    stdout (a failure becomes our one error line)."""
    logger = logging.getLogger("runpod_flash")
    handler = _Attempts()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


# --------------------------------------------------------------------------
# the look-up


@dataclass
class _Progress:
    step: str = "starting"
    calls: list[str] = field(default_factory=list)

    def at(self, step: str, call: str) -> None:
        self.step = step
        self.calls.append(call)


def _not_found(exc: BaseException, what: str = "") -> bool:
    """flash's own test for a missing app (``"app not found"``) or
    environment (``"not found"``) in the API's error."""
    return f"{what} not found".strip() in str(exc).lower()


def _names(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return sorted(str(i.get("name")) for i in items if isinstance(i, dict) and i.get("name"))


def _listing(kind: str, names: list[str]) -> str:
    return f"{kind}: {', '.join(names)}" if names else f"no {kind}"


async def _lookup(client: Any, app_name: str, env_name: str, progress: _Progress, api_url: str) -> Deployed:
    """The three queries (a fourth, listing the apps, when the app is not
    found)."""
    progress.at(f"looking up app {app_name!r}", "get_flash_app_by_name")
    try:
        app = await client.get_flash_app_by_name(app_name)
    except Exception as e:
        if not _not_found(e, "app"):
            raise
        app = None
    if not isinstance(app, dict) or not app.get("id"):
        progress.at("listing apps", "list_flash_apps")
        try:
            apps = _listing("apps", _names(await client.list_flash_apps()))
        except Exception:  # the listing is a courtesy
            apps = "apps could not be listed"
        raise CliError(
            f"app {app_name!r} not found ({apps}); --app APP names it (default: the project "
            f"directory's name, as flash deploy's); flash deploy would create it and provision every resource"
        )
    app_id = str(app["id"])

    progress.at(f"looking up environment {env_name!r} of app {app_name!r}", "get_flash_environment_by_name")
    try:
        env = await client.get_flash_environment_by_name({"flashAppId": app_id, "name": env_name})
    except Exception as e:
        if not _not_found(e):
            raise
        env = None
    if not isinstance(env, dict) or not env.get("id"):
        envs = _listing("environments", _names(app.get("flashEnvironments")))
        raise CliError(
            f"environment {env_name!r} not found in app {app_name!r} ({envs}); "
            f"flash deploy --env {env_name} would create it and provision every resource"
        )
    env_id = str(env["id"])
    build_id = env.get("activeBuildId") or None
    deployed = Deployed(app_name, app_id, env_name, env_id, None, None, api_url)
    if build_id is None:
        return deployed
    deployed.build_id = str(build_id)

    progress.at(f"fetching build {build_id} (active in environment {env_name!r})", "get_flash_build")
    build = await client.get_flash_build(deployed.build_id)
    if not isinstance(build, dict):
        raise CliError(f"build {build_id} (active in {deployed.where()}) not found by the Runpod API ({api_url})")
    manifest = build.get("manifest")
    if manifest is None or manifest == {}:
        return deployed
    deployed.manifest = _flash_manifest(manifest, deployed)
    return deployed


def _flash_manifest(manifest: Any, deployed: Deployed) -> dict[str, Any]:
    """The manifest when it is shaped as ``flash build`` writes one (an
    object with a ``resources`` object); CliError otherwise."""
    where = f"the manifest of build {deployed.build_id} (active in {deployed.where()})"
    if not isinstance(manifest, dict):
        raise CliError(f"{where} is not a flash manifest (a JSON {_json_kind(manifest)}, expected an object)")
    if not isinstance(manifest.get("resources"), dict):
        keys = ", ".join(sorted(map(str, manifest))[:8])
        raise CliError(f"{where} is not a flash manifest (no \"resources\" object; keys: {keys})")
    return manifest


def _json_kind(value: Any) -> str:
    for kind, types in (("string", str), ("array", list), ("boolean", bool), ("number", (int, float))):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def fetch_deployed(root: Path, app_name: str, env_name: str, timeout: float) -> Deployed:
    """The deployed state of ``env_name`` in ``app_name``, all queries
    within ``timeout`` seconds; CliError (one line, saying what was tried)
    on every failure."""
    import asyncio  # here: the other commands do not pay its import

    flash = _load_flash(root)
    progress = _Progress()
    url = flash.api_url

    async def run() -> Deployed:
        async with flash.client_class() as client:
            return await asyncio.wait_for(_lookup(client, app_name, env_name, progress, url), timeout)

    with _flash_logs() as attempts:
        try:
            return asyncio.run(run())
        except CliError:
            raise
        except flash.api_key_error:
            raise CliError(
                "no Runpod API key: set RUNPOD_API_KEY (in the environment or the project's .env) "
                "or run `flash login`"
            ) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise CliError(
                f"no answer from the Runpod API ({url}) within {timeout:g} s while {progress.step} "
                "(--timeout SECONDS waits longer)"
            ) from None
        except flash.network_errors as e:
            tries = attempts.retries + 1
            tried = f"{tries} attempt{'s' if tries != 1 else ''}"
            if any(isinstance(x, flash.not_json) for x in (e, e.__cause__)):  # a proxy's page, say
                raise CliError(
                    f"the Runpod API ({url}) did not answer JSON while {progress.step}: {e} ({tried})"
                ) from None
            raise CliError(f"cannot reach the Runpod API ({url}) while {progress.step}: {e} ({tried})") from None
        except MutationRefused as e:  # a bug here, never sent
            raise CliError(f"{e} while {progress.step}") from None
        except Exception as e:
            status = getattr(e, "status_code", None)
            if status in (401, 403):
                raise CliError(
                    f"the Runpod API ({url}) refused the API key (HTTP {status}) while {progress.step}; "
                    "check RUNPOD_API_KEY or run `flash login`"
                ) from None
            detail = " ".join(str(e).split()) or type(e).__name__
            raise CliError(f"the Runpod API ({url}) failed while {progress.step}: {show(detail)}") from None
