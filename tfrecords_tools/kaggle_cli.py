"""The official ``kaggle`` CLI (2.2.5) as a subprocess: its credentials, masked output, retries.

Shared by ``kaggle_submit.py`` (uploads) and ``python -m tfrecords_tools download`` (the
competition data). :func:`find_credentials` finds credentials the way kaggle does and says
which source it used (safe to print); the secrets themselves are masked in everything relayed
from the CLI (:func:`redact`). :func:`run_kaggle` runs one CLI command and, when asked, runs it
again after a transient failure: an HTTP 502, 503 or 504 from any request the CLI made (the
API calls and the upload of the file) or a dropped connection. Any other failure (500, 4xx,
refused credentials) ends at once with one readable line.

The CLI reports a failed upload only as ``Could not submit to competition``, without the HTTP
status; to tell a 503 from a 403 the CLI runs with urllib3's request log (method, URL path and
status of each request, never headers) sent to its stderr, where :func:`run_kaggle` reads the
statuses and drops those lines before relaying anything.
"""

import base64
import dataclasses
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse

from tfrecords_tools.errors import UserError

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = (502, 503, 504)
_HTTP_STATUS = re.compile(r"\b([45]\d\d) (?:Client|Server) Error\b")
_TQDM = re.compile(r"\d+%\|")
_WARNING = re.compile(r"^(?:\u26a0|Warning\b|Sessions run on)")  # the CLI's advisory lines, not the error
_HTTP_LOG_PREFIX = "kaggle-http: "
_HTTP_LOG_STATUS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')
_CONNECTION_LOST = re.compile(r"Connection aborted|Connection reset|ConnectionResetError|RemoteDisconnected|"
                              r"Connection refused|ConnectionRefusedError|Read timed out")
# Runs kaggle's own entry point with urllib3's per-request log (no headers) on stderr, tagged.
_CLI_WITH_HTTP_LOG = (
    "import logging, sys\n"
    "handler = logging.StreamHandler(sys.stderr)\n"
    f"handler.setFormatter(logging.Formatter({_HTTP_LOG_PREFIX!r} + '%(message)s'))\n"
    "log = logging.getLogger('urllib3.connectionpool')\n"
    "log.addHandler(handler)\n"
    "log.setLevel(logging.DEBUG)\n"
    "log.propagate = False\n"
    "sys.argv[0] = 'kaggle'\n"
    "from kaggle.cli import main\n"
    "main()\n")


class KaggleCliFailed(Exception):
    """The kaggle CLI ran and failed; the message is one readable line."""


# --- credentials, as kaggle 2.2.5 finds them ------------------------------------------------

@dataclasses.dataclass
class Credentials:
    """Where the kaggle CLI will find credentials. ``source`` is safe to print; ``secrets`` never is."""

    source: str
    username: str = None  # None when only a token is known (Kaggle tells the name on use)
    secrets: tuple = ()


def kaggle_config_dir(env):
    """The folder kaggle reads ``kaggle.json`` from: ``$KAGGLE_CONFIG_DIR``, else ``~/.kaggle``,
    else (on Linux, when ``~/.kaggle`` does not exist) ``$XDG_CONFIG_HOME/kaggle`` or ``~/.config/kaggle``."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return env["KAGGLE_CONFIG_DIR"]
    home = _home(env)
    legacy = os.path.join(home, ".kaggle")
    if sys.platform.startswith("linux") and not os.path.exists(legacy):
        return os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "kaggle")
    return legacy


def _home(env):
    return env.get("HOME") or os.path.expanduser("~")


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _read_json(path):
    """(dict or None, problem or None)."""
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None, f"{path} is not valid JSON"
    return (value, None) if isinstance(value, dict) else (None, f"{path} does not hold a JSON object")


def _access_token(env):
    """(token, source) in kaggle's order: notebook token file, KAGGLE_API_TOKEN (value or file),
    ~/.kaggle/access_token, ~/.kaggle/access_token.txt."""
    if env.get("KAGGLE_KERNEL_RUN_TYPE") is not None and env.get("KAGGLE_DATA_PROXY_URL") is not None:
        token = _read_text(env.get("KAGGLE_API_V1_TOKEN") or "")
        if token:
            return token, "the Kaggle notebook's token (KAGGLE_API_V1_TOKEN)"
    value = env.get("KAGGLE_API_TOKEN")
    if value:
        if os.path.exists(value):
            token = _read_text(value)
            if token:
                return token, "the token file named by KAGGLE_API_TOKEN"
        else:
            return value, "the KAGGLE_API_TOKEN environment variable"
    for name in ("access_token", "access_token.txt"):
        path = os.path.join(_home(env), ".kaggle", name)
        token = _read_text(path)
        if token:
            return token, path
    return None, None


def find_credentials(env=None) -> Credentials:
    """The credentials the kaggle CLI (2.2.5) will use, first found first:

    1. an access token (see :func:`_access_token`); Kaggle checks it and, if it is refused,
       the CLI falls back to the next ones;
    2. a legacy API key: ``username`` and ``key`` from ``kaggle.json`` in :func:`kaggle_config_dir`,
       each overridden by ``KAGGLE_USERNAME`` / ``KAGGLE_KEY``;
    3. OAuth credentials from ``kaggle auth login`` (``~/.kaggle/credentials.json``).

    Raises :class:`UserError` saying what is missing when there are none.
    """
    env = os.environ if env is None else env
    token, token_source = _access_token(env)
    config_dir = kaggle_config_dir(env)
    kaggle_json = os.path.join(config_dir, "kaggle.json")
    config, config_problem = _read_json(kaggle_json)
    config = dict(config or {})
    if env.get("KAGGLE_USERNAME"):
        config["username"] = env["KAGGLE_USERNAME"]
    if env.get("KAGGLE_KEY"):
        config["key"] = env["KAGGLE_KEY"]
    username, key = config.get("username") or None, config.get("key") or None
    oauth, _ = _read_json(os.path.join(_home(env), ".kaggle", "credentials.json"))
    oauth = oauth if oauth and oauth.get("refresh_token") else None

    secrets = [s for s in (token, key) if s]
    if username and key:
        secrets.append(base64.b64encode(f"{username}:{key}".encode()).decode())  # the Basic auth header
    if oauth:
        secrets += [str(oauth[k]) for k in ("refresh_token", "access_token") if oauth.get(k)]
    secrets = tuple(secrets)

    if token:
        return Credentials(token_source, username or (oauth or {}).get("username") or None, secrets)
    if username and key:
        from_env = [name for name in ("KAGGLE_USERNAME", "KAGGLE_KEY") if env.get(name)]
        source = " and ".join(from_env) + (" environment variable(s)" if from_env else "")
        if len(from_env) < 2:
            source = (source + " with " if source else "") + kaggle_json
        return Credentials(source, username, secrets)
    if oauth:
        return Credentials(f"kaggle auth login ({os.path.join(_home(env), '.kaggle', 'credentials.json')})",
                           oauth.get("username") or None, secrets)

    if username or key:
        missing = ('KAGGLE_KEY (or "key" in kaggle.json)' if username
                   else 'KAGGLE_USERNAME (or "username" in kaggle.json)')
        raise UserError(f"incomplete Kaggle credentials: {missing} is missing "
                              f"(looked in the environment and {kaggle_json})")
    why = f"; {config_problem}" if config_problem else ""
    raise UserError(
        f"no Kaggle credentials: set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json "
        f"(from kaggle.com/settings, API) in {config_dir}, or run `kaggle auth login`{why}")


def redact(text, secrets):
    """``text`` with every secret replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


# --- running the kaggle CLI -----------------------------------------------------------------

def kaggle_executable():
    """The argv prefix that runs the kaggle CLI: this Python running kaggle's entry point with the
    request log (see the module docstring), else ``kaggle`` on PATH (then statuses of uploads are
    unknown and a failed upload is not retried)."""
    if importlib.util.find_spec("kaggle") is not None:
        return [sys.executable, "-c", _CLI_WITH_HTTP_LOG]
    found = shutil.which("kaggle")
    if found:
        return [found]
    raise UserError("the kaggle CLI is not installed: pip install kaggle==2.2.5")


def shown(args):
    """The kaggle command as a user would type it."""
    return shlex.join(["kaggle", *args])


def cli_lines(text):
    """Lines of CLI output, splitting on carriage returns too (tqdm redraws with them), without
    progress bars."""
    return [s.strip() for s in re.split(r"[\r\n]", text) if s.strip() and not _TQDM.search(s)]


def _split_http_log(stderr):
    """(stderr without the request log lines, [(method, path, status), ...] in request order)."""
    kept, requests = [], []
    for line in stderr.splitlines(keepends=True):
        if line.startswith(_HTTP_LOG_PREFIX):
            found = _HTTP_LOG_STATUS.search(line)
            if found:
                path = urllib.parse.urlsplit(found.group(2)).path  # no query: signed URLs carry tokens
                requests.append((found.group(1), path, int(found.group(3))))
        else:
            kept.append(line)
    return "".join(kept), requests


def transient_failure(stdout, stderr, requests, final_step=None):
    """Why a failed CLI run may succeed if run again (a short phrase), or None.

    Transient: the last request that got an error status (``requests`` from the request log,
    else the ``NNN Server Error`` the CLI printed) got 502, 503 or 504; or the connection was
    dropped, refused or timed out. Everything else (500, 4xx, no HTTP error at all) is not.
    Nor is any failure once a request whose path ends with ``final_step`` was sent (e.g.
    ``CreateSubmission``: Kaggle may have acted on it, and a repeat could act twice).
    """
    if final_step and (any(path.endswith(final_step) for _, path, _ in requests)
                       or final_step in stderr + stdout):
        return None
    errors = [(method, path, status) for method, path, status in requests if status >= 400]
    if errors:
        method, path, status = errors[-1]
        return f"HTTP {status} on {method} {path}" if status in TRANSIENT_STATUSES else None
    printed = _HTTP_STATUS.search(stderr + stdout)
    if printed:
        status = int(printed.group(1))
        return f"HTTP {status}" if status in TRANSIENT_STATUSES else None
    lost = _CONNECTION_LOST.search(stderr + stdout)
    return f"connection lost ({lost.group(0)})" if lost else None


def _failure_line(args, returncode, stdout, stderr, credentials):
    """One readable line for a failed kaggle command, from what the CLI printed."""
    command = "kaggle " + " ".join(args[:2])
    if "Authentication required" in stdout:
        return f"{command} failed: Kaggle did not accept the credentials from {credentials.source}"
    errors = [s for s in cli_lines(stderr) if not _WARNING.match(s)] or cli_lines(stdout) \
        or [f"exit status {returncode}, no message"]
    line = errors[0]
    status = _HTTP_STATUS.search(stderr + stdout)
    if status and status.group(1).startswith("5") or "problem on Kaggle's side" in stderr:
        line += " (a problem on Kaggle's side; try again later)"
    if line == "Could not submit to competition":
        line += ": the upload of the file was refused or failed"
    return f"{command} failed: {line}"


def retry_delays(attempts, delay):
    """Seconds to wait before attempts 2..``attempts``: ``delay``, then doubling (5, 10, 20 ...)."""
    return [delay * 2 ** i for i in range(max(attempts, 1) - 1)]


def run_kaggle(args, credentials, attempts=1, retry_delay=5.0, final_step=None, sleep=time.sleep):
    """Run ``kaggle ARGS``; relay its output (secrets masked); raise :class:`KaggleCliFailed` if it fails.

    With ``attempts`` > 1 a run that failed transiently (:func:`transient_failure`) is run again
    after :func:`retry_delays` (``retry_delay`` seconds, doubling), at most ``attempts`` runs in
    all; each retry is announced in one line. Only commands that are safe to repeat up to
    ``final_step`` (see :func:`transient_failure`) may be retried: ``competitions submit -f``
    creates the submission only in its last request, after the upload succeeded, so a run that
    failed before it left nothing behind. Returns the CLI's standard output (masked).
    """
    delays = retry_delays(attempts, retry_delay)
    for attempt in range(len(delays) + 1):
        logger.info(f"running: {shown(args)}  (credentials: {credentials.source})")
        try:
            proc = subprocess.run([*kaggle_executable(), *args], capture_output=True, text=True,
                                  env=os.environ.copy())
        except OSError as e:
            raise KaggleCliFailed(f"cannot run the kaggle CLI: {e}") from None
        stdout = redact(proc.stdout, credentials.secrets)
        stderr, requests = _split_http_log(redact(proc.stderr, credentials.secrets))
        for line in cli_lines(stdout):
            logger.info(f"  kaggle: {line}")
        if proc.returncode == 0:
            return stdout
        line = _failure_line(args, proc.returncode, stdout, stderr, credentials)
        reason = transient_failure(stdout, stderr, requests, final_step)
        if reason is None or attempt == len(delays):
            if reason is not None and delays:
                line += f" (still failing after {len(delays) + 1} attempts)"
            raise KaggleCliFailed(line)
        logger.info(f"attempt {attempt + 1} of {len(delays) + 1} failed: {reason}; "
                    f"trying again in {delays[attempt]:g} s")
        sleep(delays[attempt])
