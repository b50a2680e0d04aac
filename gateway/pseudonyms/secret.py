"""The site secret that keys every pseudonym (DESIGN.md decision 4).

The secret is 32 random bytes, kept as 64 hexadecimal digits in a file of mode 0600 (made by
``deid-gateway keys init``) or in an environment variable whose *name* the configuration gives.
Every node and worker with the same secret derives the same pseudonyms; losing it breaks that
consistency for good, so it must be backed up (``docs/pseudonyms.md``).

The secret never reaches a log line, an exception message or the database: errors name only
where the secret was looked for. This module reads the one environment variable the
configuration names (the secret must not live in the Settings object, which may be printed).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

import structlog

from gateway.config import PseudonymSettings, Settings

SECRET_BYTES = 32
_MIN_HEX_DIGITS = 2 * SECRET_BYTES

log = structlog.get_logger("gateway.pseudonyms.secret")


class SecretError(Exception):
    """The site secret is missing, unreadable or malformed. The message never holds it."""


def generate_secret() -> bytes:
    """Fresh random bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(SECRET_BYTES)


def encode_secret(secret: bytes) -> str:
    """The text form of a secret, as written to files and environment variables."""
    return secret.hex()


def parse_secret(text: str, source: str) -> bytes:
    """Decode a secret from its hexadecimal text; ``source`` names where it came from."""
    value = text.strip()
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(value) < _MIN_HEX_DIGITS or not raw:
        raise SecretError(
            f"{source}: the site secret must be at least {SECRET_BYTES} bytes written as "
            f"{_MIN_HEX_DIGITS} or more hexadecimal digits (as `deid-gateway keys init` makes)"
        )
    return raw


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secret_file(path: Path, secret: bytes) -> None:
    """Create ``path`` holding ``secret`` with mode 0600; refuse if it exists.

    The file appears atomically (written to a temporary name, then hard-linked into place,
    which fails if the name is taken), so a concurrent reader never sees half a secret and
    two processes racing to create it cannot both win.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(path)
    data = (encode_secret(secret) + "\n").encode("ascii")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write_private(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: exclusive create instead
        _write_private(path, data)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def init_secret_file(path: Path) -> None:
    """``keys init``: create a new random secret at ``path``, never replacing one."""
    try:
        write_secret_file(path, generate_secret())
    except FileExistsError:
        raise SecretError(
            f"{path} already exists; refusing to replace a site secret (a new secret would "
            "give every patient and UID new pseudonyms)"
        ) from None
    except OSError as err:
        raise SecretError(f"cannot create the site secret file {path} ({err.strerror})") from None


def _how_to_create(path: Path) -> str:
    flag = "" if path == PseudonymSettings.DEFAULT_SECRET_FILE else f" --path {path}"
    return (
        f"create one with `deid-gateway keys init{flag}` (add `-c FILE` for your configuration)"
        " and back it up: losing it breaks pseudonym consistency"
    )


def _read_env(name: str, environ: Mapping[str, str]) -> bytes:
    value = environ.get(name)
    if not value:
        raise SecretError(
            f"the environment variable {name} (pseudonyms.secret_env) is not set; set it to "
            "the hexadecimal secret that `deid-gateway keys init --path FILE` writes into FILE"
        )
    return parse_secret(value, f"environment variable {name}")


def _warn_if_readable_by_others(path: Path, mode: int) -> None:
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("site secret file is readable by group or others", path=str(path),
                    mode=oct(stat.S_IMODE(mode)))


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            data = fh.read(4096)
    except FileNotFoundError:
        raise SecretError(f"no site secret at {path}; {_how_to_create(path)}") from None
    except OSError as err:
        raise SecretError(f"cannot read the site secret file {path} ({err.strerror})") from None
    _warn_if_readable_by_others(path, mode)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return parse_secret(text, f"site secret file {path}")


def load_secret(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    """The configured secret: from ``secret_env`` if named, else from the secret file.

    Never creates anything; a missing secret is an error that says how to create one.
    """
    p = settings.pseudonyms
    if p.secret_env is not None:
        return _read_env(p.secret_env, os.environ if environ is None else environ)
    return _read_file(p.secret_path)


def uses_default_secret(settings: Settings) -> bool:
    """No secret source was configured, so the default file under ``var/`` is used."""
    p = settings.pseudonyms
    return p.secret_env is None and p.secret_file is None


def ensure_secret(settings: Settings, environ: Mapping[str, str] | None = None) -> bytes:
    """``serve`` start-up: the secret, creating the default file on a first start.

    A secret is created only when no source is configured (neither ``secret_env`` nor
    ``secret_file``) and the default file does not exist yet, so that the embedded defaults
    run with no set-up. A configured source that is missing is an error, never replaced.
    """
    path = PseudonymSettings.DEFAULT_SECRET_FILE
    if uses_default_secret(settings) and not path.exists():
        try:
            write_secret_file(path, generate_secret())
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError as err:
            raise SecretError(
                f"cannot create the site secret file {path} ({err.strerror})"
            ) from None
        else:
            log.info("site secret created on first start; back it up", path=str(path))
    return load_secret(settings, environ)
