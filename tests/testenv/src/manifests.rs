//! The repository's example manifests and the bad-manifest table, for admission tests both
//! client-side (the CRDs' CEL rules) and against the real API server.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Returns a path in the repository root.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Reads every YAML document of a file.
pub fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Returns the first document of `kind` in `examples/<file>`.
pub fn example(file: &str, kind: &str) -> Value {
    yaml_docs(&repo(&format!("examples/{file}")))
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("{file} has no {kind}"))
}

/// Returns every example document of our kinds, with the file it came from.
pub fn examples() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        for doc in yaml_docs(&path) {
            if doc["kind"] == "AzureMLWorkspace"
                || doc["kind"] == "WorkspaceSecret"
                || doc["kind"] == "WorkspaceSecretPush"
            {
                out.push((path.clone(), doc));
            }
        }
    }
    out
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
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

/// One row of `tests/fixtures/invalid-specs.yaml`.
#[derive(Deserialize)]
pub struct Case {
    /// What is wrong.
    pub name: String,
    /// `AzureMLWorkspace`, `WorkspaceSecret` or `WorkspaceSecretPush`.
    pub kind: String,
    /// The merge patch that breaks the base example.
    pub patch: Value,
    /// The field path the error must name.
    pub field: String,
    /// A part of the error message.
    pub message: String,
}

impl Case {
    /// Builds the bad manifest: the base example of the kind with the patch applied.
    pub fn manifest(&self) -> Value {
        let mut base = match self.kind.as_str() {
            "AzureMLWorkspace" => example("workspace-service-principal-secret.yaml", &self.kind),
            "WorkspaceSecretPush" => example("push-database-password.yaml", &self.kind),
            _ => example("secret-explicit-items.yaml", &self.kind),
        };
        merge_patch(&mut base, &self.patch);
        base
    }
}

/// Reads the bad-manifest table.
pub fn bad_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(repo("tests/fixtures/invalid-specs.yaml")).expect("fixture");
    serde_saphyr::from_str(&text).expect("fixture parses")
}
