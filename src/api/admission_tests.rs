//! Runs the examples and the bad-manifest table of `tests/fixtures/invalid-specs.yaml` through the
//! CRDs' own CEL rules client-side, so every admission rule is proven without an API server.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde::Deserialize;
use serde_json::Value;

use super::{AzureMLWorkspace, WorkspaceSecret};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One row of the bad-manifest table.
#[derive(Deserialize)]
struct Case {
    name: String,
    kind: String,
    patch: Value,
    field: String,
    message: String,
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example(file: &str, kind: &str) -> Value {
    yaml_docs(&repo(&format!("examples/{file}")))
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("{file} has no {kind}"))
}

/// Applies an RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("object");
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

fn schema_of(kind: &str) -> Value {
    let crd = match kind {
        "AzureMLWorkspace" => AzureMLWorkspace::crd(),
        "WorkspaceSecret" => WorkspaceSecret::crd(),
        other => panic!("unknown kind {other}"),
    };
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema)
        .expect("schema");
    serde_json::to_value(schema).expect("schema to json")
}

/// Builds the bad manifest of a case from its base example.
fn bad_manifest(kind: &str, patch: &Value) -> Value {
    let mut base = match kind {
        "AzureMLWorkspace" => example("workspace-service-principal-secret.yaml", kind),
        _ => example("secret-explicit-items.yaml", kind),
    };
    merge_patch(&mut base, patch);
    base
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(repo("tests/fixtures/invalid-specs.yaml")).expect("fixture");
    serde_saphyr::from_str(&text).expect("fixture parses")
}

/// Deserializes, serializes and deserializes again; the two typed values must be equal.
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
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        for doc in yaml_docs(&path) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let typed = match kind.as_str() {
                "AzureMLWorkspace" => round_trip::<AzureMLWorkspace>(&doc, &path),
                "WorkspaceSecret" => round_trip::<WorkspaceSecret>(&doc, &path),
                _ => continue,
            };
            assert!(
                is_subset(&doc, &typed),
                "{}: a field is lost in serde (typo or unknown field?)",
                path.display()
            );
            if let Err(errors) = Validator::new().validate(&schema_of(&kind), &doc, None) {
                panic!("{} is rejected: {errors:?}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 9, "expected every example, saw {seen}");
}

#[test]
fn every_bad_manifest_is_rejected_naming_its_field() {
    let cases = cases();
    assert!(cases.len() >= 30, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let manifest = bad_manifest(&case.kind, &case.patch);
        match Validator::new().validate(&schema_of(&case.kind), &manifest, None) {
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
