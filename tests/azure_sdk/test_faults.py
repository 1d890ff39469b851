"""How Microsoft's clients take the fakes' faults: the Rust test queues a 429 (Retry-After) and a
503 on the vault and a 500 on IMDS before this file runs, and denies one principal on the vault.
The tests run in file order; the first vault request meets the queued faults."""

import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from conftest import CUSTOM_AUTHORITY, VAULT_SCOPE, claims, env


def client(client_id, secret, **kwargs):
    cred = ClientSecretCredential(env("AZURE_TENANT_ID"), client_id, secret, **CUSTOM_AUTHORITY)
    return SecretClient(env("FAKE_VAULT_URL"), cred, **kwargs)


def test_secret_client_retries_throttling_after_retry_after_and_server_errors():
    seen = []
    c = client(env("SP_CLIENT_ID"), env("SP_CLIENT_SECRET"), raw_response_hook=lambda r: seen.append(
        (r.http_response.status_code, r.http_response.headers.get("Retry-After"), time.monotonic())))
    assert c.get_secret("seeded").value == "seeded-value"
    assert [s for s, _, _ in seen] == [429, 503, 401, 200], seen
    assert seen[0][1] == "1"
    assert seen[1][2] - seen[0][2] >= 0.9  # the SDK waited as Retry-After said


def test_principal_without_a_role_gets_forbidden_by_rbac_naming_the_data_action():
    c = client(env("DENIED_CLIENT_ID"), env("DENIED_CLIENT_SECRET"))
    with pytest.raises(HttpResponseError) as e:
        c.get_secret("seeded")
    assert e.value.status_code == 403
    assert e.value.error.code == "Forbidden"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in e.value.message
    assert "ForbiddenByRbac" in str(e.value)


def test_managed_identity_retries_an_imds_server_error():
    token = ManagedIdentityCredential().get_token(VAULT_SCOPE)
    assert claims(token.token)["oid"] == env("MI_SYSTEM_OBJECT_ID")
