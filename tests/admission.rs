//! Runs the bad-manifest table (`tests/fixtures/invalid-specs.yaml`) and the examples against the
//! real API server: every bad manifest is rejected naming its field and message, and every
//! example is accepted.

use std::path::{Path, PathBuf};

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde::Deserialize;
use serde_json::Value;
use testenv::control_plane::ControlPlane;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

fn example(file: &str, kind: &str) -> Value {
    yaml_docs(&repo(&format!("examples/{file}")))
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap()
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    kind: String,
    patch: Value,
    field: String,
    message: String,
}

fn api(client: kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let plural = match kind {
        "AzureMLWorkspace" => "azuremlworkspaces",
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

async fn create(client: &kube::Client, ns: &str, manifest: &Value) -> Result<(), kube::Error> {
    let mut obj = manifest.clone();
    obj["metadata"]["namespace"] = ns.into();
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
    let cases: Vec<Case> = serde_saphyr::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/invalid-specs.yaml")).unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut manifest = match case.kind.as_str() {
            "AzureMLWorkspace" => example("workspace-service-principal-secret.yaml", &case.kind),
            _ => example("secret-explicit-items.yaml", &case.kind),
        };
        merge_patch(&mut manifest, &case.patch);
        manifest["metadata"]["name"] = format!("bad-{i}").into();
        match create(&client, &ns, &manifest).await {
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
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let path = entry.unwrap().path();
        for (i, mut doc) in yaml_docs(&path).into_iter().enumerate() {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if kind != "AzureMLWorkspace" && kind != "WorkspaceSecret" {
                continue;
            }
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            doc["metadata"]["name"] = format!("{stem}-{i}").into();
            create(&client, &ns, &doc)
                .await
                .unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 9, "saw {seen} examples");
}
