"""SecretClient against the fake vault: update properties (PATCH), soft delete with the SDK's
poller, deleted secrets, recovery and purge."""

import datetime

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from conftest import CUSTOM_AUTHORITY, env


def client():
    cred = ClientSecretCredential(
        env("AZURE_TENANT_ID"), env("SP_CLIENT_ID"), env("SP_CLIENT_SECRET"), **CUSTOM_AUTHORITY
    )
    return SecretClient(env("FAKE_VAULT_URL"), cred)


def test_update_properties_of_a_version_and_of_the_latest():
    c = client()
    v1 = c.set_secret("api-key", "one", tags={"a": "1"}).properties
    v2 = c.set_secret("api-key", "two").properties
    exp = datetime.datetime(2098, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)

    updated = c.update_secret_properties(
        "api-key", v1.version, content_type="application/json", tags={"b": "2"}, expires_on=exp,
    )
    assert updated.version == v1.version
    assert updated.content_type == "application/json"
    assert updated.tags == {"b": "2"}
    assert updated.expires_on == exp
    old = c.get_secret("api-key", v1.version)
    assert old.value == "one"  # the value is never changed by an update
    assert old.properties.content_type == "application/json"
    assert old.properties.tags == {"b": "2"}

    # No version: the latest one (the SDK sends PATCH …/secrets/api-key/).
    latest = c.update_secret_properties("api-key", enabled=False)
    assert latest.version == v2.version
    assert latest.enabled is False
    with pytest.raises(HttpResponseError) as e:
        c.get_secret("api-key")
    assert e.value.status_code == 403
    assert "SecretDisabled" in str(e.value)
    listed = {p.name: p for p in c.list_properties_of_secrets()}
    assert listed["api-key"].enabled is False

    assert c.update_secret_properties("api-key", v2.version, enabled=True).enabled is True
    assert c.get_secret("api-key").value == "two"

    with pytest.raises(ResourceNotFoundError):
        c.update_secret_properties("api-key", "f" * 32, enabled=True)
    with pytest.raises(ResourceNotFoundError):
        c.update_secret_properties("never-set", enabled=True)


def test_delete_is_polled_to_completion_then_recover_and_purge():
    c = client()
    version = c.set_secret("to-delete", "v", content_type="text/plain").properties.version

    poller = c.begin_delete_secret("to-delete")
    deleted = poller.result()
    assert deleted.name == "to-delete"
    assert deleted.recovery_id == env("FAKE_VAULT_URL") + "/deletedsecrets/to-delete"
    assert deleted.properties.version == version
    assert deleted.deleted_date is not None
    assert deleted.scheduled_purge_date > deleted.deleted_date
    poller.wait(timeout=30)
    assert poller.done()

    with pytest.raises(ResourceNotFoundError):
        c.get_secret("to-delete")
    assert "to-delete" not in {p.name for p in c.list_properties_of_secrets()}
    got = c.get_deleted_secret("to-delete")
    assert got.recovery_id == deleted.recovery_id
    assert got.properties.content_type == "text/plain"
    assert "to-delete" in {d.name for d in c.list_deleted_secrets()}
    # A deleted name cannot be reused until it is recovered or purged.
    with pytest.raises(ResourceExistsError, match="deleted but recoverable"):
        c.set_secret("to-delete", "again")

    recovered = c.begin_recover_deleted_secret("to-delete")
    recovered.wait(timeout=30)
    assert recovered.result().version == version
    assert c.get_secret("to-delete").value == "v"
    with pytest.raises(ResourceNotFoundError):
        c.get_deleted_secret("to-delete")

    c.begin_delete_secret("to-delete").wait(timeout=30)
    c.purge_deleted_secret("to-delete")
    with pytest.raises(ResourceNotFoundError):
        c.get_deleted_secret("to-delete")
    assert c.set_secret("to-delete", "fresh").value == "fresh"


def test_deleted_secrets_list_follows_next_links():
    c = client()
    for i in range(5):
        c.set_secret(f"gone-{i}", "v")
        c.begin_delete_secret(f"gone-{i}").wait(timeout=30)
    pages = list(c.list_deleted_secrets(max_page_size=2).by_page())
    assert len(pages) == 3
    names = sorted(d.name for page in pages for d in page)
    assert names == [f"gone-{i}" for i in range(5)]


def test_delete_of_a_missing_secret_is_not_found():
    with pytest.raises(ResourceNotFoundError):
        client().begin_delete_secret("never-set")
