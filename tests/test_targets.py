"""The webhook target guard, on names whose resolution the test decides."""

from __future__ import annotations

import pytest

from palo_api.services.targets import TargetRefused, check_url


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda _host, _port: list(addresses)


def test_a_name_resolving_only_to_public_addresses_is_accepted() -> None:
    target = check_url(
        "HTTPS://Hooks.Example.com:8443/x",
        allow_private=False,
        resolve=resolving_to("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"),
    )

    assert target.host == "hooks.example.com"
    assert target.port == 8443
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")


@pytest.mark.parametrize(
    "addresses",
    [
        ("93.184.216.34", "10.0.0.1"),
        ("169.254.169.254",),
        ("fd00:ec2::254",),
        ("::ffff:10.0.0.1",),
        ("fe80::1%eth0",),
        (),
    ],
)
def test_a_name_with_any_private_address_is_refused(addresses: tuple[str, ...]) -> None:
    with pytest.raises(TargetRefused):
        check_url(
            "https://hooks.example.com/x",
            allow_private=False,
            resolve=resolving_to(*addresses),
        )


@pytest.mark.parametrize("host", ["localhost.", "LOCALHOST", "a.b.localhost"])
def test_local_names_are_refused_without_resolving(host: str) -> None:
    def never(_host: str, _port: int) -> list[str]:
        raise AssertionError("resolved")

    with pytest.raises(TargetRefused):
        check_url(f"https://{host}/x", allow_private=False, resolve=never)


def test_allowing_private_targets_accepts_http_and_loopback_unresolved() -> None:
    def never(_host: str, _port: int) -> list[str]:
        raise AssertionError("resolved")

    target = check_url("http://127.0.0.1:9000/x", allow_private=True, resolve=never)

    assert target.addresses == ()
    assert target.port == 9000
    with pytest.raises(TargetRefused, match="https"):
        check_url("ftp://127.0.0.1/x", allow_private=True, resolve=never)


@pytest.mark.parametrize(
    "url", ["https://", "https:///path", "https://[::1/x", "https://h:99999/x"]
)
def test_malformed_urls_are_refused_not_crashing(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_url(url, allow_private=False, resolve=resolving_to("93.184.216.34"))


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook\x01",
        "https://93.184.216.34/a b",
        "https://93.184.216.34/?q=\x7f",
        "https://93.184.216.34/\x00",
        "https://93.184.216.34:0/",
        "https://[fec0::1]/",
        "https://[::ffff:0:127.0.0.1]/",
        "https://192.0.0.8/",
        "https://192.88.99.1/",
    ],
)
def test_urls_no_client_could_send_or_that_reach_no_public_host_are_refused(
    url: str,
) -> None:
    with pytest.raises(TargetRefused):
        check_url(url, allow_private=False, resolve=resolving_to("93.184.216.34"))
