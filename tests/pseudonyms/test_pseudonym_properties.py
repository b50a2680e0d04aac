"""Property tests of the keyed derivations and the store: generated UIDs are valid DICOM UIDs,
the UID map is injective, and it is the same in another process and after a restart."""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pseudonym_support import settings_for
from sqlalchemy import func, select

from gateway.pseudonyms import derive
from gateway.pseudonyms.factory import open_pseudonymizer
from gateway.pseudonyms.interface import InMemoryPseudonymizer
from gateway.pseudonyms.secret import init_secret_file
from gateway.pseudonyms.store import MAP

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
SECRET = bytes(range(32))

# A DICOM UID: components of digits without leading zeros, at most 64 characters.
_component = st.integers(min_value=0, max_value=10**15).map(str)
uids = (
    st.lists(_component, min_size=2, max_size=10)
    .map(".".join)
    .filter(lambda u: len(u) <= 64)
)
secrets_ = st.binary(min_size=32, max_size=64)


def _uids_in_child(secret: bytes, originals: list[str]) -> list[str]:
    return [derive.uid_for(secret, o) for o in originals]


@pytest.fixture(scope="module")
def child_pool() -> Iterator[ProcessPoolExecutor]:
    """One spawned worker process, a separate interpreter with its own hash seed."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        yield pool


@given(secret=secrets_, original=st.one_of(uids, st.text(max_size=80)))
def test_generated_uids_are_valid(secret: bytes, original: str) -> None:
    """Every generated UID is at most 64 characters of digits and dots, under 2.25, with no
    leading zero in any component (PS3.5 9.1, B.2)."""
    new = derive.uid_for(secret, original)
    assert len(new) <= 64
    assert new.startswith("2.25.")
    assert UID_RE.match(new)


@given(secret=secrets_, original=uids)
def test_uid_is_hmac_of_the_uid(secret: bytes, original: str) -> None:
    """The integer after 2.25. is that of the first 16 bytes of HMAC-SHA256(secret, uid)."""
    digest = hmac.new(secret, original.encode("ascii"), hashlib.sha256).digest()
    assert derive.uid_for(secret, original) == f"2.25.{int.from_bytes(digest[:16], 'big')}"


@given(originals=st.sets(st.one_of(uids, st.text(min_size=1, max_size=40)), min_size=2,
                         max_size=300))
def test_uid_map_is_injective(originals: set[str]) -> None:
    """Distinct originals never share a replacement."""
    news = {derive.uid_for(SECRET, o) for o in originals}
    assert len(news) == len(originals)


@given(original=uids, a=secrets_, b=secrets_)
def test_other_secret_other_uid(original: str, a: bytes, b: bytes) -> None:
    """Another secret gives another UID (the map is keyed)."""
    if a != b:
        assert derive.uid_for(a, original) != derive.uid_for(b, original)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets_, originals=st.lists(uids, min_size=1, max_size=200))
def test_uid_map_stable_across_processes(
    child_pool: ProcessPoolExecutor, secret: bytes, originals: list[str]
) -> None:
    """A spawned interpreter derives exactly the same UIDs from the same secret."""
    assert child_pool.submit(_uids_in_child, secret, originals).result(timeout=60) == [
        derive.uid_for(secret, o) for o in originals]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(originals=st.lists(uids, min_size=1, max_size=100))
def test_store_stable_across_restarts(originals: list[str]) -> None:
    """A restarted store gives the same UIDs and the table holds one row per distinct
    non-well-known original (no duplicates)."""
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "k"
        init_secret_file(key)
        s = settings_for(f"sqlite:///{tmp}/g.db", key)
        with open_pseudonymizer(s) as store:
            first = [store.uid(o) for o in originals]
        with open_pseudonymizer(s) as store:
            again = [store.uid(o) for o in reversed(originals)]
            with store.engine.connect() as conn:
                rows = conn.execute(select(func.count()).select_from(MAP)
                                    .where(MAP.c.kind == "uid")).scalar_one()
    assert again == list(reversed(first))
    assert rows == len({o for o in originals if not derive.is_well_known_uid(o)})


@given(secret=secrets_, key=st.text(max_size=40),
       low=st.integers(-36500, 36500), span=st.integers(0, 5000))
def test_date_offset_in_range_never_zero(secret: bytes, key: str, low: int, span: int) -> None:
    """The offset lies in the configured range and is never 0, even if the range holds 0."""
    high = low + span
    if low == 0 == high:
        return
    offset = derive.date_offset_for(secret, key, low, high)
    assert low <= offset <= high
    assert offset != 0


@given(secret=secrets_, key=st.text(max_size=40), length=st.integers(8, 40),
       form=st.sampled_from(["base32", "digits"]), prefix=st.sampled_from(["", "P", "SITE-"]))
def test_patient_id_form(secret: bytes, key: str, length: int, form: str, prefix: str) -> None:
    """Generated Patient IDs are prefix + length characters of the chosen alphabet, <= 64."""
    pid = derive.patient_id_for(secret, key, prefix, length, form)  # type: ignore[arg-type]
    body = pid[len(prefix):]
    assert pid.startswith(prefix) and len(body) == length and len(pid) <= 64
    alphabet = "0123456789" if form == "digits" else "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    assert set(body) <= set(alphabet)


def test_store_agrees_with_in_memory_pseudonymizer(tmp_path: Path) -> None:
    """The store and the in-memory fake used by engine tests give the same UIDs and
    identifiers for one secret."""
    key = tmp_path / "k"
    init_secret_file(key)
    s = settings_for(f"sqlite:///{tmp_path}/g.db", key)
    fake = InMemoryPseudonymizer(bytes.fromhex(key.read_text().strip()))
    with open_pseudonymizer(s) as store:
        for i in range(20):
            uid = f"1.2.826.0.1.3680043.10.999.{i}"
            assert store.uid(uid) == fake.uid(uid)
            assert store.identifier("accession", f"A{i}") == fake.identifier("accession", f"A{i}")
