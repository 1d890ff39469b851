//! `amlsecrets connections`: names, categories, auth types, targets and expiry; credentials only
//! with `--show-credentials`.

use serde_json::json;
use testenv::azure::AzureFakes;
use testenv::azure::arm::workspace_id;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_listed_without_credentials_unless_asked() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    arm_workspace(&fakes, "mlw-cli");
    let id = workspace_id(SUB, "rg-ml", "mlw-cli");
    for (name, auth, cat, target, creds) in [
        (
            "openai",
            "ApiKey",
            "AzureOpenAI",
            "https://oai.openai.azure.com/",
            json!({"key": "planted-oai-Hh1"}),
        ),
        (
            "acr",
            "UsernamePassword",
            "ContainerRegistry",
            "https://r.azurecr.io",
            json!({"username": "u", "password": "planted-acr-Ii2"}),
        ),
    ] {
        fakes.arm.connections.put(
            &id,
            testenv::azure::connection_json(&id, name, auth, cat, target, creds),
        );
    }
    let out = laptop
        .run_on(&fakes, "mlw-cli", &["connections", "list"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("openai")
            && out.stdout.contains("AzureOpenAI")
            && out.stdout.contains("ApiKey")
            && out.stdout.contains("https://r.azurecr.io"),
        "{}",
        out.stdout
    );
    let out = laptop
        .run_on(
            &fakes,
            "mlw-cli",
            &["connections", "get", "acr", "-o", "json"],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["category"], "ContainerRegistry");
    assert!(out.json().get("credentials").is_none());
    assert_no_secrets(&fakes, &out.all(), &["planted-oai-Hh1", "planted-acr-Ii2"]);

    let out = laptop
        .run_on(
            &fakes,
            "mlw-cli",
            &[
                "connections",
                "get",
                "acr",
                "--show-credentials",
                "-o",
                "json",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["credentials"]["password"], "planted-acr-Ii2");
    assert!(!out.stderr.contains("planted-acr-Ii2"), "never in the logs");
}
