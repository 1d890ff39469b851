//! Status writes shared by both controllers.

use kube::api::Api;

use super::context::FIELD_MANAGER;
use super::error::Error;

/// Server-side applies an object's status under the operator's field manager (fields it no
/// longer sets are removed).
pub(crate) async fn apply<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name },
        "status": status,
    });
    api.patch_status(
        name,
        &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
        &kube::api::Patch::Apply(body),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}
