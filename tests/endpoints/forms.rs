//! Every reference form, as single values and as whole resources, syncs with its provenance in
//! status; a credential-less datastore is a note; one read per resource, shared by the
//! WorkspaceSecrets that use it.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::*;
use crate::{items, key_of, put_everything, status_of, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_syncs_as_single_values_and_whole_resources_with_provenance() {
    let w = World::start(&[]).await;
    put_everything(&w);
    w.sp_workspace().await;
    w.workspace_secret(
        "single",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h",
                "data": items(&[
                    ("SCORER_KEY", "azureml://onlineEndpoints/scorer/keys/primary"),
                    ("SCORER_KEY2", "${{azureml://onlineEndpoints/scorer/keys/secondary}}"),
                    ("SCORER_URI", "azureml://onlineEndpoints/scorer/scoringUri"),
                    ("TOKEN", "azureml://onlineEndpoints/tokened/token"),
                    ("LLM_KEY", "azureml://serverlessEndpoints/llm/keys/primary"),
                    ("LLM_URI", "azureml://serverlessEndpoints/llm/uri"),
                ]) }),
    )
    .await;
    let whole = |r: &str, prefix: &str| json!({ "ref": r, "keys": { "rewrite": [{ "regex": "^", "replace": prefix }], "style": "UpperSnake" } });
    w.workspace_secret(
        "whole",
        json!({ "workspaceRef": { "name": "ml" }, "refreshInterval": "1h",
                "dataFrom": [
                    whole("azureml://onlineEndpoints/scorer", "scorer-"),
                    whole("azureml://onlineEndpoints/tokened", "tokened-"),
                    whole("azureml://serverlessEndpoints/llm", "llm-"),
                ] }),
    )
    .await;
    w.workspace_secret(
        "storage",
        json!({ "workspaceRef": { "name": "ml" }, "allowDatastoreCredentials": true,
                "data": items(&[("ACCOUNT_KEY", "azureml://datastores/blobs/credentials/key")]),
                "dataFrom": [{ "ref": "azureml://datastores/sas" }, { "ref": "azureml://datastores/identity" }] }),
    )
    .await;

    w.wait_wsec("single", "True", "Synced").await;
    let single = w.secret_data("single").await.unwrap();
    assert_eq!(text(&single, "SCORER_KEY"), "planted-online-primary-1");
    assert_eq!(text(&single, "SCORER_KEY2"), "planted-online-secondary-1");
    assert_eq!(
        text(&single, "SCORER_URI"),
        "https://scorer.eastus2.inference.ml.azure.com/score"
    );
    assert!(text(&single, "TOKEN").starts_with("planted-aml-token-tokened-"));
    assert_eq!(text(&single, "LLM_KEY"), "planted-sl-primary-1");
    assert_eq!(
        text(&single, "LLM_URI"),
        "https://llm.eastus2.models.ai.azure.com"
    );
    let status = status_of(&w, "single").await;
    let token = key_of(&status, "TOKEN");
    assert_eq!(token.reference, "azureml://onlineEndpoints/tokened/token");
    assert_eq!(
        token.source_kind.as_deref(),
        Some("onlineEndpoint/AMLToken")
    );
    let expires: jiff::Timestamp = token.expires.as_deref().unwrap().parse().unwrap();
    assert!(
        expires > jiff::Timestamp::now(),
        "the token's expiry is ahead"
    );
    let key = key_of(&status, "SCORER_KEY");
    assert_eq!(key.source_kind.as_deref(), Some("onlineEndpoint/Key"));
    assert!(key.updated.is_some() && key.expires.is_none() && key.version.is_none());
    assert_eq!(
        key_of(&status, "LLM_KEY").source_kind.as_deref(),
        Some("serverlessEndpoint/Key")
    );

    w.wait_wsec("whole", "True", "Synced").await;
    let whole_data = w.secret_data("whole").await.unwrap();
    let keys: BTreeSet<&str> = whole_data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "LLM_PRIMARY_KEY",
            "LLM_SECONDARY_KEY",
            "LLM_URI",
            "SCORER_PRIMARY_KEY",
            "SCORER_SCORING_URI",
            "SCORER_SECONDARY_KEY",
            "TOKENED_SCORING_URI",
            "TOKENED_TOKEN",
        ])
    );
    assert_eq!(
        text(&whole_data, "LLM_SECONDARY_KEY"),
        "planted-sl-secondary-1"
    );

    let ready = w.wait_wsec("storage", "True", "Synced").await;
    assert!(
        ready
            .message
            .contains("datastore identity uses identity-based access"),
        "a credential-less datastore is a note: {}",
        ready.message
    );
    let storage = w.secret_data("storage").await.unwrap();
    assert_eq!(text(&storage, "ACCOUNT_KEY"), "planted-account-key-1");
    assert_eq!(text(&storage, "sasToken"), "planted-sas-token-1");
    let status = status_of(&w, "storage").await;
    assert_eq!(
        key_of(&status, "sasToken").source_kind.as_deref(),
        Some("datastore/Sas")
    );
    // One read per resource, shared by the WorkspaceSecrets that use it.
    let calls = &w.fakes.arm.calls;
    assert_eq!(calls.count("onlineEndpoints.listKeys"), 1);
    assert_eq!(calls.count("onlineEndpoints.token"), 1);
    assert_eq!(calls.count("serverlessEndpoints.listKeys"), 1);
    assert_eq!(calls.count("datastores.listSecrets"), 3);
}
