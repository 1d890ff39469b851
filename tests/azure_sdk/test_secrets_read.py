"""SecretClient against the fake vault: the 401 challenge handshake with the SDK's own resource
check, set, get latest and by version, paged listing of secrets and of versions."""

import datetime

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from conftest import CUSTOM_AUTHORITY, env


def credential():
    return ClientSecretCredential(
        env("AZURE_TENANT_ID"), env("SP_CLIENT_ID"), env("SP_CLIENT_SECRET"), **CUSTOM_AUTHORITY
    )


def client(**kwargs):
    return SecretClient(env("FAKE_VAULT_URL"), credential(), **kwargs)


def test_first_request_completes_the_401_challenge_handshake():
    seen = []
    c = client(raw_response_hook=lambda r: seen.append(
        (r.http_response.status_code, r.http_response.headers.get("WWW-Authenticate", ""))))
    assert c.get_secret("seeded").value == "seeded-value"
    # The SDK sends its first request without a token, reads the challenge, then retries.
    assert [s for s, _ in seen] == [401, 200], seen
    challenge = seen[0][1]
    assert challenge.startswith("Bearer "), challenge
    assert 'resource="https://vault.localhost"' in challenge, challenge
    assert env("AZURE_TENANT_ID") in challenge, challenge
    # Later requests reuse the token without a new challenge.
    seen.clear()
    assert c.get_secret("seeded").value == "seeded-value"
    assert [s for s, _ in seen] == [200], seen


def test_challenge_for_a_host_outside_the_resource_domain_is_refused_by_the_sdk():
    # The raw address is not under vault.localhost, so the SDK refuses to send a token there:
    # the reason the fake is reached by a vault name in these tests.
    c = SecretClient(env("FAKE_VAULT_RAW_URL"), credential())
    with pytest.raises(ValueError, match="does not match the requested domain"):
        c.get_secret("seeded")


def test_set_then_get_latest_and_by_version_round_trip_every_property():
    c = client()
    nbf = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    exp = datetime.datetime(2099, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    first = c.set_secret(
        "db-password", "one", content_type="text/plain", tags={"team": "ml"},
        not_before=nbf, expires_on=exp,
    )
    assert first.value == "one"
    assert first.name == "db-password"
    assert first.properties.vault_url == env("FAKE_VAULT_URL")
    assert len(first.properties.version) == 32
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"team": "ml"}
    assert first.properties.not_before == nbf
    assert first.properties.expires_on == exp
    assert first.properties.enabled is True
    assert first.properties.recovery_level == "Recoverable+Purgeable"

    second = c.set_secret("db-password", "two")
    assert second.properties.version != first.properties.version

    latest = c.get_secret("db-password")
    assert latest.value == "two"
    assert latest.properties.version == second.properties.version
    assert latest.properties.expires_on is None

    old = c.get_secret("db-password", first.properties.version)
    assert old.value == "one"
    assert old.id == first.id
    assert old.properties.expires_on == exp
    assert old.properties.tags == {"team": "ml"}


def test_get_of_a_missing_secret_or_version_is_not_found():
    c = client()
    with pytest.raises(ResourceNotFoundError, match="SecretNotFound"):
        c.get_secret("never-set")
    with pytest.raises(ResourceNotFoundError):
        c.get_secret("seeded", "0" * 32)


def test_listing_secrets_follows_next_links_over_several_pages():
    c = client()
    for i in range(23):
        c.set_secret(f"paged-{i:02}", f"value-{i}", content_type="text/plain", tags={"i": str(i)})
    pages = list(c.list_properties_of_secrets(max_page_size=10).by_page())
    assert len(pages) >= 3
    props = [p for page in pages for p in page]
    paged = {p.name: p for p in props if p.name.startswith("paged-")}
    assert sorted(paged) == [f"paged-{i:02}" for i in range(23)]
    p = paged["paged-07"]
    assert p.version is None  # list items carry unversioned ids
    assert p.content_type == "text/plain"
    assert p.tags == {"i": "7"}
    assert p.enabled is True
    assert p.updated_on is not None
    assert p.vault_url == env("FAKE_VAULT_URL")


def test_listing_versions_follows_next_links_and_each_version_can_be_read():
    c = client()
    versions = [c.set_secret("rotating", v).properties.version for v in ("a", "b", "c", "d", "e")]
    pages = list(c.list_properties_of_secret_versions("rotating", max_page_size=2).by_page())
    assert len(pages) == 3
    listed = [p for page in pages for p in page]
    assert sorted(p.version for p in listed) == sorted(versions)
    assert all(p.name == "rotating" for p in listed)
    for p, value in zip(sorted(listed, key=lambda p: versions.index(p.version)), "abcde"):
        assert c.get_secret("rotating", p.version).value == value
