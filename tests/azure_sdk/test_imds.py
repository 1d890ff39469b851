"""ManagedIdentityCredential against the fake IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST is the IMDS
base URL azure-identity and MSAL read), each token then accepted by the fake vault."""

import pytest
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from conftest import VAULT_SCOPE, claims, env


def token_and_secret(cred):
    token = cred.get_token(VAULT_SCOPE)
    value = SecretClient(env("FAKE_VAULT_URL"), cred).get_secret("seeded").value
    return claims(token.token), value


def test_system_assigned_identity():
    c, value = token_and_secret(ManagedIdentityCredential())
    assert c["oid"] == env("MI_SYSTEM_OBJECT_ID")
    assert value == "seeded-value"


def test_user_assigned_identity_by_client_id():
    c, value = token_and_secret(ManagedIdentityCredential(client_id=env("MI_USER_CLIENT_ID")))
    assert c["oid"] == env("MI_USER_OBJECT_ID")
    assert value == "seeded-value"


def test_user_assigned_identity_by_object_id():
    cred = ManagedIdentityCredential(identity_config={"object_id": env("MI_USER_OBJECT_ID")})
    c, _ = token_and_secret(cred)
    assert c["appid"] == env("MI_USER_CLIENT_ID")


def test_user_assigned_identity_by_resource_id():
    cred = ManagedIdentityCredential(identity_config={"resource_id": env("MI_USER_RESOURCE_ID")})
    c, _ = token_and_secret(cred)
    assert c["oid"] == env("MI_USER_OBJECT_ID")


def test_identity_not_assigned_to_the_node_is_unavailable():
    cred = ManagedIdentityCredential(client_id="99999999-0000-0000-0000-000000000000")
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        cred.get_token(VAULT_SCOPE)
