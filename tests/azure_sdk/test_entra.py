"""Token grants of azure-identity against the fake Entra ID, each token then accepted by the fake
vault through SecretClient (challenge included)."""

import time

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    WorkloadIdentityCredential,
)
from azure.keyvault.secrets import SecretClient

from conftest import CUSTOM_AUTHORITY, VAULT_SCOPE, claims, env


def read_seeded_secret(credential):
    client = SecretClient(env("FAKE_VAULT_URL"), credential)
    return client.get_secret("seeded").value


def test_client_secret_credential_gets_a_token_the_vault_accepts():
    cred = ClientSecretCredential(
        env("AZURE_TENANT_ID"), env("SP_CLIENT_ID"), env("SP_CLIENT_SECRET"), **CUSTOM_AUTHORITY
    )
    token = cred.get_token(VAULT_SCOPE)
    assert claims(token.token)["oid"] == env("SP_OBJECT_ID")
    assert time.time() + 3000 < token.expires_on < time.time() + 3700
    assert read_seeded_secret(cred) == "seeded-value"


def test_client_secret_credential_with_a_wrong_secret_reports_aadsts7000215():
    cred = ClientSecretCredential(
        env("AZURE_TENANT_ID"), env("SP_CLIENT_ID"), "not-the-secret", **CUSTOM_AUTHORITY
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        cred.get_token(VAULT_SCOPE)


def test_client_secret_credential_for_an_unknown_tenant_fails():
    cred = ClientSecretCredential(
        "00000000-0000-0000-0000-00000000dead",
        env("SP_CLIENT_ID"),
        env("SP_CLIENT_SECRET"),
        **CUSTOM_AUTHORITY,
    )
    # azure-identity reports the failed OpenID configuration of the authority (Entra's 400
    # AADSTS90002 body is not passed on).
    with pytest.raises(ClientAuthenticationError, match="authority configuration for .*00000000dead"):
        cred.get_token(VAULT_SCOPE)


def test_certificate_credential_with_a_pem_holding_the_private_key():
    cred = CertificateCredential(
        env("AZURE_TENANT_ID"), env("CERT_CLIENT_ID"), certificate_path=env("CERT_PEM_PATH"),
        **CUSTOM_AUTHORITY,
    )
    token = cred.get_token(VAULT_SCOPE)
    assert claims(token.token)["oid"] == env("CERT_OBJECT_ID")
    assert read_seeded_secret(cred) == "seeded-value"


def test_certificate_credential_with_a_certificate_the_app_does_not_know_reports_aadsts700027():
    cred = CertificateCredential(
        env("AZURE_TENANT_ID"), env("CERT_CLIENT_ID"), certificate_path=env("WRONG_CERT_PEM_PATH"),
        **CUSTOM_AUTHORITY,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        cred.get_token(VAULT_SCOPE)


def test_workload_identity_credential_exchanges_the_token_file():
    cred = WorkloadIdentityCredential(
        tenant_id=env("AZURE_TENANT_ID"),
        client_id=env("WI_CLIENT_ID"),
        token_file_path=env("WI_TOKEN_FILE"),
        **CUSTOM_AUTHORITY,
    )
    token = cred.get_token(VAULT_SCOPE)
    assert claims(token.token)["oid"] == env("WI_OBJECT_ID")
    assert read_seeded_secret(cred) == "seeded-value"


def test_workload_identity_credential_with_an_unfederated_subject_reports_aadsts70021():
    cred = WorkloadIdentityCredential(
        tenant_id=env("AZURE_TENANT_ID"),
        client_id=env("WI_CLIENT_ID"),
        token_file_path=env("WI_UNFEDERATED_TOKEN_FILE"),
        **CUSTOM_AUTHORITY,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        cred.get_token(VAULT_SCOPE)
