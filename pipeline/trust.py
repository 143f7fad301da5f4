"""What a workflow file may ask for on its own, and what needs the user's say-so.

Running a workflow file must not mean trusting its author with the machine. Three cluster
settings reach beyond it: ``cluster.address`` connects this process to a Dask scheduler,
and a scheduler can run code in every client that connects to it (each reply it sends is
unpickled here); ``cluster.security`` hands that scheduler this user's TLS credentials;
a ``dashboard_address`` that is not a loopback address opens a port to other machines.
Three stage keys do too: a ``function:`` runs the Python code it names here and on the
workers; a sink's ``path`` that is a URL sends data to another machine (which could be
anything the run may read); a ``storage_options`` key naming the server a filesystem
talks to (``endpoint_url``, an account URL, a host or proxy) sends that server this
user's own storage credentials (from the environment, ``~/.aws``...: signed requests,
or bearer tokens for Google Cloud and Azure). They come from the user (the command line:
``--address``, ``--dashboard-address``, ``--set``; the environment or a user config
file, through Dask's configuration) or from a workflow file run with
``--trust-workflow``. Nothing here imports dask.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any, Iterable, Mapping

from pipeline import storage
from pipeline.errors import InputError

FLAG = "--trust-workflow"
# key under `cluster:` -> the user's own way to give it
OWN_WAY = {
    "address": "--address ADDR, or DASK_PIPELINE__ADDRESS in the environment",
    "dashboard_address": "--dashboard-address ADDR",
    "security": "--set cluster.security=..., or Dask's distributed.comm.tls settings",
}
_HOST = re.compile(r"[A-Za-z0-9.-]*")
# storage_options keys (at any depth: client_kwargs...) that say where a filesystem connects
_SERVER_KEY = re.compile(r"endpoint|url|host|proxy", re.IGNORECASE)


def listen_hosts(value: str, where: str) -> list[str]:
    """The hosts of a dashboard address as Dask reads it (``host:port``, ``:port``,
    ``port``, ``host``, comma-separated); ``""`` means every interface.

    Raises
    ------
    InputError
        Not an address Dask would accept.
    """
    hosts = []
    for item in value.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep and not port.isdigit():  # "host" alone: any free port
            host, port = port, "0"
        if not (_HOST.fullmatch(host) and port.isdigit() and int(port) <= 65535):
            raise InputError(f"bad address {value!r}", where=where,
                             hint="HOST:PORT, e.g. 127.0.0.1:8787; port 0 picks a free one")
        hosts.append(host)
    return hosts


def _loopback_host(host: str | None) -> bool:
    """Whether a host name or address is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:  # "" (every interface) or a host name: reachable from outside
        return False


def is_loopback(value: str, where: str) -> bool:
    """Whether a dashboard address listens on this machine only."""
    return all(_loopback_host(h) for h in listen_hosts(value, where))


def risky(cluster: Any) -> dict[str, Any]:
    """The settings of a ``cluster:`` mapping that reach beyond this machine."""
    if not isinstance(cluster, Mapping):
        return {}
    out = {key: cluster[key] for key in ("address", "security")
           if cluster.get(key) is not None}
    dash = cluster.get("dashboard_address")
    if isinstance(dash, str) and not is_loopback(dash, "cluster.dashboard_address"):
        out["dashboard_address"] = dash
    return out


def check(file_raw: Mapping, override_keys: Iterable[str], trusted: bool) -> None:
    """Refuse the risky settings that come from the workflow file itself.

    ``file_raw`` is the document as read from the file; ``override_keys`` the keys the
    command line set (``--set cluster.address=...`` or ``--set cluster={...}`` make a
    setting the user's own, as ``--set stages.<id>.function=...`` does a function).

    Raises
    ------
    InputError
        The file sets one, and ``trusted`` is false; the hint says how to allow it.
    """
    if trusted:
        return
    own = set(override_keys)
    _check_stages(file_raw.get("stages"), own)
    cluster = file_raw.get("cluster")
    if "cluster" in own or not isinstance(cluster, Mapping):
        return
    for key, value in risky({k: v for k, v in cluster.items()
                             if f"cluster.{k}" not in own}).items():
        shown = "TLS credentials" if key == "security" else repr(value)
        what = {"address": f"the workflow file asks to connect to the scheduler at {shown}; "
                           "a scheduler can run code in this process",
                "security": f"the workflow file sets {shown} for the scheduler",
                "dashboard_address": f"the workflow file asks to open the dashboard on "
                                     f"{shown}, reachable from other machines"}[key]
        raise InputError(what, where=f"cluster.{key}",
                         hint=f"give it yourself ({OWN_WAY[key]}), or run with {FLAG} if "
                              "you trust the file's author")


def _server_key(options: Any, prefix: str = "") -> tuple[str, Any] | None:
    """The first key of a ``storage_options`` mapping that names a server other than this
    machine (a local test server, ``http://127.0.0.1:9000``, is fine), and its value."""
    if not isinstance(options, Mapping):
        return None
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(key, str) and _SERVER_KEY.search(key) and value not in (None, "") \
                and not _on_this_machine(value):
            return name, value
        found = _server_key(value, name + ".")
        if found:
            return found
    return None


def _on_this_machine(value: Any) -> bool:
    """Whether a server given as a URL or a host name is a loopback address."""
    if not isinstance(value, str):
        return False
    try:
        host = urllib.parse.urlsplit(value if "//" in value else f"//{value}").hostname
    except ValueError:
        return False
    return _loopback_host(host)


def _check_stages(stages: Any, own: set[str]) -> None:
    """A ``function:`` (code to run), a sink's URL (data sent away) or a storage server
    (credentials sent away) in the file."""
    for stage in stages if isinstance(stages, list) else ():
        if not isinstance(stage, Mapping) or not isinstance(stage.get("id"), str):
            continue  # the file's validation reports it
        sid = stage["id"]
        server = _server_key(stage.get("storage_options"))
        options = f"stages.{sid}.storage_options"
        if server and not any(k == options or k.startswith(options + ".") for k in own):
            key, value = server
            raise InputError(f"the workflow file sends this user's storage credentials to "
                             f"the server it names ({value!r})",
                             where=f"{options}.{key}",
                             hint=f"give it yourself (--set {options}.{key}=...), or run "
                                  f"with {FLAG} if you trust the file's author")
        function, path = stage.get("function"), stage.get("path")
        if isinstance(function, str) and f"stages.{sid}.function" not in own:
            raise InputError(f"the workflow file runs the Python function {function!r} in "
                             "this process and on the workers", where=f"stages.{sid}.function",
                             hint=f"run with {FLAG} if you trust the file's author (README: "
                                  "your own code)")
        if stage.get("op") != "read" and isinstance(path, str) \
                and storage.scheme(path) is not None and f"stages.{sid}.path" not in own:
            raise InputError(f"the workflow file sends data to {path!r}, on another machine",
                             where=f"stages.{sid}.path",
                             hint=f"give it yourself (--set stages.{sid}.path=URL), or run "
                                  f"with {FLAG} if you trust the file's author")
