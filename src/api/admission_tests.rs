//! Runs the examples and the bad-manifest table of `tests/fixtures/invalid-specs.yaml` through the
//! CRDs' own CEL rules client-side, so every admission rule is proven without an API server.

use std::path::Path;

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::Value;
use testenv::manifests::{bad_cases, examples};

use super::{AzureMLWorkspace, WorkspaceSecret, WorkspaceSecretPush};

fn schema_of(kind: &str) -> Value {
    let crd = match kind {
        "AzureMLWorkspace" => AzureMLWorkspace::crd(),
        "WorkspaceSecret" => WorkspaceSecret::crd(),
        "WorkspaceSecretPush" => WorkspaceSecretPush::crd(),
        other => panic!("unknown kind {other}"),
    };
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("schema");
    serde_json::to_value(schema).expect("schema to json")
}

/// Deserializes, serializes and deserializes again; the two serializations must be equal.
fn round_trip<T>(doc: &Value, path: &Path) -> Value
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = serde_json::to_value(&typed).expect("serialize");
    let again: T = serde_json::from_value(json.clone()).expect("deserialize again");
    assert_eq!(
        serde_json::to_value(&again).expect("serialize"),
        json,
        "{} does not round-trip",
        path.display()
    );
    json
}

/// Tells whether every field of `part` is in `whole` with the same value (defaults may be added).
fn is_subset(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| is_subset(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            p.len() == w.len() && p.iter().zip(w).all(|(a, b)| is_subset(a, b))
        }
        _ => part == whole,
    }
}

#[test]
fn every_example_passes_the_cel_rules_and_round_trips() {
    let examples = examples();
    assert!(
        examples.len() >= 10,
        "expected every example, saw {}",
        examples.len()
    );
    for (path, doc) in examples {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let typed = match kind.as_str() {
            "AzureMLWorkspace" => round_trip::<AzureMLWorkspace>(&doc, &path),
            "WorkspaceSecretPush" => round_trip::<WorkspaceSecretPush>(&doc, &path),
            _ => round_trip::<WorkspaceSecret>(&doc, &path),
        };
        assert!(
            is_subset(&doc, &typed),
            "{}: a field is lost in serde (typo or unknown field?)",
            path.display()
        );
        if let Err(errors) = Validator::new().validate(&schema_of(&kind), &doc, None) {
            panic!("{} is rejected: {errors:?}", path.display());
        }
    }
}

#[test]
fn every_bad_manifest_is_rejected_naming_its_field() {
    let cases = bad_cases();
    assert!(cases.len() >= 30, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match Validator::new().validate(&schema_of(&case.kind), &case.manifest(), None) {
            Ok(()) => failures.push(format!("{}: accepted", case.name)),
            Err(errors) => {
                let hit = errors
                    .as_slice()
                    .iter()
                    .any(|e| e.field_path == case.field && e.message.contains(&case.message));
                if !hit {
                    let got: Vec<String> =
                        errors.as_slice().iter().map(|e| e.to_string()).collect();
                    failures.push(format!(
                        "{}: wanted {}: {}; got {got:?}",
                        case.name, case.field, case.message
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
