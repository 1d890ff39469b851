//! Loads the CRDs generated into `crds/` and installs them until the API server serves them.

use super::Error;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use std::path::PathBuf;
use std::time::Duration;

/// Field manager of the harness's server-side applies.
const FIELD_MANAGER: &str = "testenv";

/// Returns the directory the CRDs are read from: `$AMLSECRETS_CRD_DIR`, else `crds/` at the repository root.
pub fn crd_dir() -> PathBuf {
    match std::env::var_os("AMLSECRETS_CRD_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds")),
    }
}

/// Reads every CRD of every `*.yaml` file in [`crd_dir`]; fails if there is none.
pub fn load() -> Result<Vec<CustomResourceDefinition>, Error> {
    let dir = crd_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        Error::Crds(format!(
            "cannot read {} ({e}); generate the CRDs with `cargo run -- crds`",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Io(format!("cannot read {}", file.display()), e))?;
        let docs: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&text)
            .map_err(|e| Error::Crds(format!("{} is not a list of CRDs: {e}", file.display())))?;
        crds.extend(docs);
    }
    if crds.is_empty() {
        return Err(Error::Crds(format!(
            "no CRD found in {}/*.yaml",
            dir.display()
        )));
    }
    Ok(crds)
}

/// Applies the CRDs (server-side apply) and waits until each one is Established.
pub async fn install(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => Error::Crds(format!(
                    "the API server refused CRD {name}: {}",
                    status.message
                )),
                other => Error::Crds(format!("applying CRD {name} failed: {other}")),
            })?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(Duration::from_secs(60), established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Crds(format!("waiting for CRD {name}: {e}"))),
            Err(_) => return Err(Error::Crds(format!("CRD {name} not Established after 60s"))),
        }
    }
    Ok(())
}
