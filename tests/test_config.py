"""Settings from PALO_* variables: defaults, refusals, the local signing key."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from palo_api.config import ConfigError, Settings, local_signing_key


def test_without_signing_keys_a_private_random_key_is_made_once(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "signing-key"
    env = {"PALO_SIGNING_KEY_FILE": str(key_file)}

    first = Settings.from_env(env)
    second = Settings.from_env(env)

    assert first.signing_keys == second.signing_keys
    assert len(first.signing_keys[0].secret) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.uses_local_key_file


def test_two_installs_never_share_a_generated_key(tmp_path: Path) -> None:
    one = Settings.from_env({"PALO_SIGNING_KEY_FILE": str(tmp_path / "a")})
    two = Settings.from_env({"PALO_SIGNING_KEY_FILE": str(tmp_path / "b")})

    assert one.signing_keys[0].secret != two.signing_keys[0].secret


def test_workers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "signing-key"
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        keys.append(local_signing_key(key_file).secret)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing-key"]


def test_configured_keys_are_used_and_no_file_is_made(tmp_path: Path) -> None:
    key_file = tmp_path / "signing-key"

    settings = Settings.from_env(
        {"PALO_SIGNING_KEYS": "a:" + "x" * 32, "PALO_SIGNING_KEY_FILE": str(key_file)}
    )

    assert [key.kid for key in settings.signing_keys] == ["a"]
    assert not settings.uses_local_key_file
    assert not key_file.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PALO_SIGNING_KEYS", "short:secret"),
        ("PALO_SIGNING_KEYS", "no-colon-" + "x" * 40),
        ("PALO_SIGNING_KEYS", f"a:{'x' * 32},a:{'y' * 32}"),
        ("PALO_TOKEN_TTL_SECONDS", "soon"),
        ("PALO_TOKEN_TTL_SECONDS", "10"),
        ("PALO_MAX_BODY_BYTES", "-1"),
        ("PALO_VALIDATE_RESPONSES", "maybe"),
        ("PALO_LOG_LEVEL", "LOUD"),
        ("PALO_HEAD_TIMEOUT_SECONDS", "0"),
        ("PALO_DATABASE_URL", "not a url"),
        ("PALO_DATABASE_URL", "mysql://root@localhost/palo"),
        ("PALO_DATABASE_URL", ""),
        ("PALO_LOGIN_MAX_FAILURES", "0"),
        ("PALO_LOGIN_MAX_FAILURES_PER_ADDRESS", "many"),
        ("PALO_LOGIN_WINDOW_SECONDS", "-5"),
        ("PALO_TRUSTED_PROXIES", "10.0.0.1,proxy.internal"),
        ("PALO_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_bad_value_is_refused_naming_the_setting(
    tmp_path: Path, name: str, value: str
) -> None:
    env = {"PALO_SIGNING_KEY_FILE": str(tmp_path / "k"), name: value}

    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)


def test_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "signing-key"
    key_file.write_text("garbage")

    with pytest.raises(ConfigError, match="PALO_SIGNING_KEY_FILE"):
        Settings.from_env({"PALO_SIGNING_KEY_FILE": str(key_file)})


def test_trusted_proxies_take_addresses_and_networks(tmp_path: Path) -> None:
    env = {
        "PALO_SIGNING_KEY_FILE": str(tmp_path / "k"),
        "PALO_TRUSTED_PROXIES": " 10.0.0.0/8, fd00::1 ,",
    }

    assert Settings.from_env(env).trusted_proxies == "10.0.0.0/8,fd00::1"
