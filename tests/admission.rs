//! Runs the bad-manifest table (`tests/fixtures/invalid-specs.yaml`) and the examples against the
//! real API server: every bad manifest is rejected naming its field and message, and every
//! example is accepted.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;
use testenv::control_plane::ControlPlane;
use testenv::manifests::{bad_cases, examples};

fn api(client: kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let plural = match kind {
        "AzureMLWorkspace" => "azuremlworkspaces",
        "WorkspaceSecretPush" => "workspacesecretpushes",
        _ => "workspacesecrets",
    };
    let ar = ApiResource {
        group: "amlsecrets.io".into(),
        version: "v1alpha1".into(),
        api_version: "amlsecrets.io/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client, ns, &ar)
}

async fn create(
    client: &kube::Client,
    ns: &str,
    manifest: &Value,
    name: String,
) -> Result<(), kube::Error> {
    let mut obj = manifest.clone();
    obj["metadata"]["namespace"] = ns.into();
    obj["metadata"]["name"] = name.into();
    let kind = obj["kind"].as_str().unwrap().to_string();
    let dynamic: DynamicObject = serde_json::from_value(obj).unwrap();
    api(client.clone(), ns, &kind)
        .create(&PostParams::default(), &dynamic)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn api_server_rejects_every_bad_manifest_naming_its_field() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = cp.namespace().await;
    let cases = bad_cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match create(&client, &ns, &case.manifest(), format!("bad-{i}")).await {
            Ok(()) => failures.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                let wanted = format!("{}: ", case.field);
                if status.code != 422
                    || !status.message.contains(&wanted)
                    || !status.message.contains(&case.message)
                {
                    failures.push(format!(
                        "{}: wanted `{}` … `{}`, got {} {}",
                        case.name, case.field, case.message, status.code, status.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn api_server_accepts_every_example() {
    let cp = ControlPlane::shared().await;
    let client = cp.client();
    let ns = cp.namespace().await;
    let examples = examples();
    assert!(examples.len() >= 10, "saw {} examples", examples.len());
    for (i, (path, doc)) in examples.iter().enumerate() {
        create(&client, &ns, doc, format!("example-{i}"))
            .await
            .unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
    }
}
