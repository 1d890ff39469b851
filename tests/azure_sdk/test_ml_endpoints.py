"""Microsoft's ML management client (azure-mgmt-machinelearningservices) against the fake ARM's
online endpoints and datastores: the endpoint as `OnlineEndpoints_Get` describes it, `listKeys`,
`getToken` (integer times), `Datastores_ListSecrets` by secrets type, and the 403 and 404 classes.
The Rust test adds the resources and denies one principal `listKeys` before this file runs. The
client's newest release speaks api-version 2023-04-01's models; it is asked for 2025-12-01, the
version amlsecrets uses, with the same shapes. It has no serverless endpoints."""

import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

from conftest import CUSTOM_AUTHORITY, env

SUB = "00000000-1111-2222-3333-444444444444"
RG = "rg-ml"
WS = "mlw-judge"


def client(client_id=None, secret=None):
    arm = env("FAKE_ARM_URL")
    cred = ClientSecretCredential(
        env("AZURE_TENANT_ID"),
        client_id or env("SP_CLIENT_ID"),
        secret or env("SP_CLIENT_SECRET"),
        **CUSTOM_AUTHORITY,
    )
    return MachineLearningServicesMgmtClient(
        cred, SUB, base_url=arm, credential_scopes=[arm + "/.default"], api_version="2025-12-01"
    )


def test_online_endpoint_get_list_keys_and_token():
    c = client()
    e = c.online_endpoints.get(RG, WS, "scorer")
    assert e.name == "scorer"
    assert e.properties.auth_mode == "Key"
    assert e.properties.scoring_uri == "https://scorer.eastus2.inference.ml.azure.com/score"
    keys = c.online_endpoints.list_keys(RG, WS, "scorer")
    assert (keys.primary_key, keys.secondary_key) == ("judge-primary", "judge-secondary")
    t = c.online_endpoints.get_token(RG, WS, "tokened")
    assert t.access_token.startswith("planted-aml-token-tokened-")
    assert t.token_type == "Bearer"
    now = time.time()
    assert now < t.refresh_after_time_utc < t.expiry_time_utc <= now + 3700


def test_datastore_list_secrets_by_type():
    c = client()
    account = c.datastores.list_secrets(RG, WS, "blobs")
    assert account.secrets_type == "AccountKey"
    assert account.key == "judge-account-key"
    sas = c.datastores.list_secrets(RG, WS, "sas")
    assert sas.secrets_type == "Sas"
    assert sas.sas_token == "judge-sas-token"


def test_missing_endpoint_is_not_found_and_a_denied_action_is_forbidden_naming_it():
    with pytest.raises(ResourceNotFoundError):
        client().online_endpoints.get(RG, WS, "no-such-endpoint")
    denied = client(env("DENIED_CLIENT_ID"), env("DENIED_CLIENT_SECRET"))
    assert denied.online_endpoints.get(RG, WS, "scorer").properties.auth_mode == "Key"
    with pytest.raises(HttpResponseError) as e:
        denied.online_endpoints.list_keys(RG, WS, "scorer")
    assert e.value.status_code == 403
    assert e.value.error.code == "AuthorizationFailed"
    assert "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action" in e.value.message
