"""The gateway's one typed, frozen settings object, loaded once from YAML and passed down.

Every option has a default, so ``deid-gateway serve`` with no file runs the embedded set-up:
SQLite and spool under ``./var`` and a local research-PACS sink. Unknown keys and bad values
are rejected with a message that names the key (see :func:`load_settings`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.pixels.settings import PixelSettings

AE_TITLE_MAX = 16
SHARED_MEMORY = Path("/dev/shm")  # Linux's tmpfs for shared memory: the default runtime home


class ConfigError(Exception):
    """A configuration file could not be read or is invalid; the message names the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_ae_title(value: str) -> str:
    """An AE title is 1-16 characters of the default repertoire, no backslash (PS3.5 AE VR)."""
    if not value or len(value) > AE_TITLE_MAX or value != value.strip():
        raise ValueError(f"must be 1-{AE_TITLE_MAX} characters without leading/trailing spaces")
    if any(ord(c) < 0x20 or ord(c) > 0x7E or c == "\\" for c in value):
        raise ValueError("must use printable ASCII characters, no backslash")
    return value


class AllowedCaller(_Model):
    """A calling AE title allowed to associate, optionally only from one host or address."""

    ae_title: str
    host: str | None = None

    _ae = field_validator("ae_title")(_check_ae_title)


class TLSSettings(_Model):
    """TLS for the receiver (optional); paths to PEM files."""

    certificate: Path
    private_key: Path
    ca_certificates: Path | None = None
    require_client_certificate: bool = False


class ReceiverSettings(_Model):
    """The C-STORE SCP that modalities and PACS routing rules send to."""

    ae_title: str = "DEID_GATEWAY"
    bind_address: str = "127.0.0.1"
    port: int = Field(default=11112, ge=1, le=65535)
    max_associations: int = Field(default=32, ge=1, le=1024)
    # Largest PDU we accept (PS3.8 D.1); bounded so that one PDU never holds a whole image.
    maximum_pdu_size: int = Field(default=262144, ge=4096, le=16 * 1024 * 1024)
    # Empty list: any calling AE title is accepted.
    allowed_callers: tuple[AllowedCaller, ...] = ()
    # Association idle timeout (seconds) before the gateway aborts a silent peer.
    network_timeout: float = Field(default=60.0, gt=0)
    tls: TLSSettings | None = None

    _ae = field_validator("ae_title")(_check_ae_title)


class DatabaseSettings(_Model):
    """Job store and pseudonym map; SQLite by default, PostgreSQL by URL."""

    url: str = "sqlite:///var/gateway.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value


class SpoolSettings(_Model):
    """Where received, processed and quarantined files live, and how much may pile up."""

    root: Path = Path("var/spool")
    # Above this many bytes of unfinished work the receiver refuses with 0xA700.
    max_bytes: int = Field(default=50 * 1024**3, gt=0)
    # Below this much free disk the receiver refuses with 0xA700.
    min_free_bytes: int = Field(default=1 * 1024**3, ge=0)
    # Seconds to keep the spool files of a sent job (0: remove once the PACS confirmed).
    keep_sent_seconds: float = Field(default=0.0, ge=0)


class RuntimeSettings(_Model):
    """Where the processes' runtime files live: metrics' memory-mapped files, the scrubber's
    socket, destination health, the identity memory and a lock.

    It must be on another file system than the spool: a process that writes to a memory-mapped
    file on a full file system is killed (SIGBUS), and the forwarder, which frees the spool,
    must keep running when the spool is full. ``serve`` refuses to start otherwise.
    """

    # None: /dev/shm/deid-gateway-<hash of the spool's path> (a tmpfs on Linux; emptied at
    # reboot). The `started` log line names the folder.
    dir: Path | None = None


class WorkerSettings(_Model):
    """The pool of processes that run the pipeline."""

    count: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    lease_seconds: float = Field(default=300.0, gt=0)
    poll_interval: float = Field(default=0.05, gt=0, le=10)
    max_attempts: int = Field(default=3, ge=1)
    batch_size: int = Field(default=8, ge=1, le=1000)
    # Scheduling niceness added to worker processes, so that receiving (which a sender waits
    # on, one C-STORE at a time) is not slowed by processing, which may lag behind.
    nice: int = Field(default=10, ge=0, le=19)


class PipelineSettings(_Model):
    """Stages run by each worker, in order, by registered name."""

    stages: tuple[str, ...] = ("filter", "pixels", "deidentify", "verify")

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from gateway.pipeline.compose import STAGES

        unknown = [s for s in value if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; known: {sorted(STAGES)}")
        if not value:
            raise ValueError("at least one stage is needed (use 'passthrough' to forward as is)")
        return value


class DestinationSettings(_Model):
    """A research PACS the forwarder sends to (C-STORE SCU)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str = "DEID_GATEWAY"
    max_attempts: int = Field(default=20, ge=1)
    backoff_initial: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=300.0, gt=0)
    # Close an idle association after this many seconds without work.
    idle_release_seconds: float = Field(default=5.0, ge=0)
    batch_size: int = Field(default=64, ge=1, le=10000)
    network_timeout: float = Field(default=60.0, gt=0)
    # DIMSE timeout: a C-STORE (or C-ECHO) response not here this many seconds after the
    # request was sent aborts the association; the instance is sent again at once on a new one
    # (see gateway/forward/scu.py for when that counts as one of its attempts).
    response_timeout_seconds: float = Field(default=30.0, gt=0)
    # While the destination cannot be reached, a C-ECHO probes it this often; delivery resumes
    # as soon as one succeeds (independent of the back-off of single instances).
    probe_interval_seconds: float = Field(default=10.0, gt=0, le=15)
    maximum_pdu_size: int = Field(default=262144, ge=4096, le=16 * 1024 * 1024)

    _ae = field_validator("ae_title", "calling_ae_title")(_check_ae_title)


class SinkSettings(_Model):
    """The embedded research-PACS sink for trying the gateway out (``deid-gateway sink``)."""

    enabled: bool | None = None  # None: started only when no destination is configured
    ae_title: str = "RESEARCH_PACS"
    bind_address: str = "127.0.0.1"
    port: int = Field(default=11113, ge=1, le=65535)
    root: Path = Path("var/research")
    maximum_pdu_size: int = Field(default=262144, ge=4096, le=16 * 1024 * 1024)

    _ae = field_validator("ae_title")(_check_ae_title)


class MetricsSettings(_Model):
    """The HTTP endpoint serving /metrics, /healthz and /readyz."""

    enabled: bool = True
    bind_address: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    # /readyz fails once a destination has been unreachable for longer than this.
    ready_destination_grace_seconds: float = Field(default=300.0, ge=0)


class LogSettings(_Model):
    """Structured logs: JSON lines by default."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class PseudonymSettings(_Model):
    """The pseudonym store (DESIGN.md decision 4): site secret, patient pseudonyms, date shift.

    The secret comes from ``secret_env`` (the *name* of an environment variable holding it) or
    ``secret_file``; with neither, from ``DEFAULT_SECRET_FILE``, which ``serve`` creates on first
    start. The secret itself never appears in this object.
    """

    DEFAULT_SECRET_FILE: ClassVar[Path] = Path("var/pseudonym-secret.key")

    secret_file: Path | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    # A patient missing from the site lookup table: hold the instance, or derive a pseudonym.
    lookup_policy: Literal["quarantine", "generate"] = "generate"
    # Generated Patient IDs: prefix + base32 letters/digits, or prefix + decimal digits.
    patient_id_form: Literal["base32", "digits"] = "base32"
    patient_id_prefix: str = Field(default="P", pattern=r"^[A-Za-z0-9_.-]{0,16}$")
    patient_id_length: int = Field(default=12, ge=8, le=40)
    patient_name_prefix: str = Field(default="ANON", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    # Per-patient date shift in days, drawn from the HMAC within [min, max]; never zero.
    date_offset_min_days: int = Field(default=-3650, ge=-36500, le=36500)
    date_offset_max_days: int = Field(default=-30, ge=-36500, le=36500)
    # `deid-gateway reidentify` and `map export` refuse unless this is true.
    reidentification_enabled: bool = False
    # Entries per kind in each worker's in-process LRU cache (0: no cache).
    cache_size: int = Field(default=65536, ge=0, le=10_000_000)
    # false: a flush commits without waiting for the disk; the worker's following (durable)
    # commit of the job state in the same database makes it durable too. true: every flush
    # waits for the disk itself (for callers that commit nothing after flushing).
    durable_flush: bool = False

    @model_validator(mode="after")
    def _check(self) -> PseudonymSettings:
        if self.secret_env is not None and self.secret_file is not None:
            raise ValueError("give either secret_env or secret_file, not both")
        if self.date_offset_min_days > self.date_offset_max_days:
            raise ValueError("date_offset_min_days must not exceed date_offset_max_days")
        if self.date_offset_min_days == 0 == self.date_offset_max_days:
            raise ValueError("the date offset range must contain a day other than 0")
        return self

    @property
    def secret_path(self) -> Path:
        """The file the secret is read from (the configured one, else the default)."""
        return self.secret_file if self.secret_file is not None else self.DEFAULT_SECRET_FILE
class DeidSettings(_Model):
    """The de-identification stage (gateway.deid): which profile, and where the rules live."""

    # A shipped profile's name (rules/profiles/NAME.yaml) or a path to a profile file.
    profile: str = "basic"
    # Overrides the profile's policy for public attributes in no table (docs/deid.md).
    unknown_public: Literal["keep_known_safe", "remove", "keep"] | None = None
    # Folder holding ps3.15/, ps3.3/ and profiles/ (None: the rules/ folder of the source tree).
    rules_dir: Path | None = None


class FilterRuleSettings(_Model):
    """One filter rule: when every listed condition holds, the instance is dropped or held."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    action: Literal["drop", "quarantine"] = "drop"
    sop_class_uid: tuple[str, ...] = ()
    modality: tuple[str, ...] = ()
    # Every value listed must be among the instance's Image Type values (e.g. [LABEL]).
    image_type: tuple[str, ...] = ()
    # keyword -> accepted values; a value "*" matches any present value, "" an absent one.
    attributes: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class FilterSettings(_Model):
    """The filter stage (gateway.filters): rules inline and/or from a YAML file of rules."""

    rules: tuple[FilterRuleSettings, ...] = ()
    file: Path | None = None


class Settings(_Model):
    """Everything the gateway reads at start-up."""

    node_id: str = Field(default_factory=lambda: socket.gethostname()[:64] or "node")
    receiver: ReceiverSettings = ReceiverSettings()
    database: DatabaseSettings = DatabaseSettings()
    spool: SpoolSettings = SpoolSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    workers: WorkerSettings = WorkerSettings()
    pipeline: PipelineSettings = PipelineSettings()
    destinations: tuple[DestinationSettings, ...] = ()
    sink: SinkSettings = SinkSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LogSettings = LogSettings()
    pseudonyms: PseudonymSettings = PseudonymSettings()
    deid: DeidSettings = DeidSettings()
    filters: FilterSettings = FilterSettings()
    pixels: PixelSettings = PixelSettings()

    @model_validator(mode="after")
    def _default_destination(self) -> Settings:
        """With no destination configured, forward to the embedded sink and start it."""
        if not self.destinations:
            sink = self.sink
            dest = DestinationSettings(
                name="research",
                ae_title=sink.ae_title,
                host="127.0.0.1" if sink.bind_address in ("0.0.0.0", "") else sink.bind_address,
                port=sink.port,
                calling_ae_title=self.receiver.ae_title,
            )
            object.__setattr__(self, "destinations", (dest,))
            if sink.enabled is None:
                object.__setattr__(self, "sink", sink.model_copy(update={"enabled": True}))
        elif self.sink.enabled is None:
            object.__setattr__(self, "sink", self.sink.model_copy(update={"enabled": False}))
        names = [d.name for d in self.destinations]
        if len(set(names)) != len(names):
            raise ValueError("destinations: names must be unique")
        return self

    @property
    def runtime_dir(self) -> Path:
        """``runtime.dir``, else a folder in /dev/shm of this spool's own, named by a hash of
        the spool's absolute path (every process of the node, and the offline command run
        from the same folder, find the same one)."""
        if self.runtime.dir is not None:
            return self.runtime.dir
        spool = str(self.spool.root.resolve()).encode()
        return SHARED_MEMORY / f"deid-gateway-{hashlib.sha256(spool).hexdigest()[:12]}"

    @property
    def sink_enabled(self) -> bool:
        return bool(self.sink.enabled)

    def destination(self, name: str) -> DestinationSettings:
        for dest in self.destinations:
            if dest.name == name:
                return dest
        raise KeyError(name)


def _format_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def parse_settings(data: Any, source: str = "<config>") -> Settings:
    """Validate a mapping (as read from YAML) into :class:`Settings`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def load_settings(path: Path | str | None) -> Settings:
    """Read and validate a YAML configuration file; ``None`` gives the embedded defaults."""
    if path is None:
        return Settings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{p}: cannot read configuration ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}:{where} not valid YAML") from None
    return parse_settings(data, str(p))
