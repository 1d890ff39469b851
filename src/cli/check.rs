//! `amlsecrets check`: the operator's own steps (identity → ARM discovery → vault → each item or
//! find, connections) run from a laptop, reported step by step with the reason and the role to
//! grant for every failure; never a value.

use std::sync::Arc;
use std::time::Duration;

use super::args::{CheckArgs, LocalArgs, WorkspaceArgs};
use super::render::{progress, progress_done, role_hint};
use super::report::{Item, Report, Step};
use super::target::{self, Target, Usage};
use crate::api::conditions::reasons;
use crate::azure::error::Service;
use crate::azure::{AzureClient, AzureError, Credential};
use crate::controller::error::Error;
use crate::fetch::connections as conn_fetch;
use crate::fetch::items::{Sources, fetch_all};
use crate::fetch::{ConnectionViews, Deps, VaultViews};
use crate::sync::assemble::ItemResult;
use crate::sync::plan::{Compiled, expand_connections, plan};

/// Tells whether an error of the workspace check came from the vault probe, not ARM discovery.
fn from_vault(e: &Error) -> bool {
    match e {
        Error::Azure(a) => match a {
            AzureError::Forbidden { model, .. } => model.is_some(),
            AzureError::VaultUnreachable { .. } | AzureError::SecretDisabled { .. } => true,
            AzureError::AuthenticationFailed { detail, .. } => detail.starts_with("Key Vault"),
            AzureError::Throttled { service, .. } | AzureError::Server { service, .. } => {
                *service == Service::KeyVault
            }
            _ => false,
        },
        _ => false,
    }
}

/// Runs the check; returns the report (the caller prints it and picks the exit code).
pub async fn run(
    local: &LocalArgs,
    wargs: &WorkspaceArgs,
    args: &CheckArgs,
) -> Result<Report, Usage> {
    let mut target = target::resolve(wargs).await?;
    let http = target::http(local)?;
    let azure = AzureClient::new(http.clone());
    let as_me = args.as_me || !target.from_manifest;
    let mut report = Report {
        checked_as: if as_me { "me" } else { "workload" }.into(),
        workspace: target.wref().resource_id(),
        ..Report::default()
    };
    let cred = if as_me {
        super::identity::local_credential(local, &target.cloud, &http)
    } else {
        match super::identity::manifest_credential(local, &mut target, &http).await {
            Ok(c) => Ok(c),
            Err(e) => {
                report.fail("identity", &e);
                return Ok(report);
            }
        }
    }?;
    progress("signing in");
    if !identity(&mut report, &target, &cred).await {
        progress_done();
        return Ok(report);
    }
    progress("finding the workspace and its vault");
    let found = match crate::controller::workspace::resolve(
        &azure,
        &target.cloud,
        &cred,
        &target.workspace,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            if from_vault(&e) {
                report.pass("workspace", "resolved".into());
                report.fail("vault access", &e);
            } else {
                report.fail("workspace", &e);
            }
            progress_done();
            return Ok(report);
        }
    };
    let w = &found.workspace;
    let mut what = w.resource_id.clone().unwrap_or_default();
    if let Some(k) = &w.kind {
        what.push_str(&format!(" (kind {k}"));
        if let Some(l) = &w.location {
            what.push_str(&format!(", {l}"));
        }
        what.push(')');
    }
    if let Some(h) = &w.hub_resource_id {
        what.push_str(&format!(", hub {h}"));
    }
    report.pass("workspace", what);
    let vault = found.key_vault.as_ref().map(|k| k.uri.clone());
    match &found.key_vault {
        Some(kv) => {
            let how = match kv.source.as_deref() {
                Some("Spec") => "given by spec.keyVault / --vault",
                Some("Hub") => "the project's hub's vault",
                _ => "the workspace's properties.keyVault",
            };
            report.vault = Some(kv.uri.clone());
            report.vault_source = kv.source.clone();
            report.pass("vault", format!("{} ({how}); a secret read was allowed", kv.uri));
        }
        None => report.pass(
            "vault",
            format!(
                "the workspace has no customer Key Vault; only connection references can be served ({} connections listed)",
                found.connections.unwrap_or_default()
            ),
        ),
    }
    let vaults = VaultViews::default();
    let connections = ConnectionViews::default();
    let endpoints = crate::fetch::EndpointViews::default();
    let deps = Deps {
        azure: &azure,
        vaults: &vaults,
        connections: &connections,
        endpoints: &endpoints,
    };
    match target.workspace_secret.clone() {
        Some(wsec) => items(&mut report, deps, &target, &cred, vault.as_deref(), &wsec).await,
        None => overview(&mut report, deps, &target, &cred, vault.as_deref()).await,
    }
    progress_done();
    report.ok = report.steps.iter().all(|s| s.ok) && report.items.iter().all(|i| i.ok);
    Ok(report)
}

/// The identity step: fetch the first token the operator would need and say who it is.
async fn identity(report: &mut Report, target: &Target, cred: &Arc<Credential>) -> bool {
    let scope = if target.workspace.spec.key_vault.is_some() {
        target.cloud.key_vault_scope()
    } else {
        target.cloud.arm_scope()
    };
    match cred.token(&scope).await {
        Ok(_) => {
            let who = cred.identity().to_string();
            report.identity = Some(who.clone());
            report.pass("identity", format!("authenticated as {who}"));
            true
        }
        Err(e) => {
            report.fail("identity", &Error::Azure(e));
            false
        }
    }
}

/// A workspace without a WorkspaceSecret: list the vault and the connections, as finds and
/// connection references would.
async fn overview(
    report: &mut Report,
    deps: Deps<'_>,
    target: &Target,
    cred: &Arc<Credential>,
    vault: Option<&str>,
) {
    if let Some(uri) = vault {
        progress(&format!("listing {uri}"));
        let view = deps.vaults.view(cred, uri);
        match view.list(deps.azure, cred, Duration::ZERO).await {
            Ok(l) => {
                let enabled = l.iter().filter(|s| s.enabled).count();
                report.pass(
                    "vault list",
                    format!("{} secrets listed ({enabled} enabled)", l.len()),
                );
            }
            Err(e) => report.fail("vault list", &Error::Azure(e)),
        }
    }
    match deps
        .azure
        .list_connections(cred, &target.wref(), None)
        .await
    {
        Ok(c) => report.pass("connections", format!("{} connections listed", c.len())),
        Err(e) => report.fail("connections", &Error::Azure(e)),
    }
}

/// A WorkspaceSecret: the reconcile's list → plan → fetch steps, each key reported.
async fn items(
    report: &mut Report,
    deps: Deps<'_>,
    target: &Target,
    cred: &Arc<Credential>,
    vault: Option<&str>,
    wsec: &crate::api::WorkspaceSecret,
) {
    let compiled = match Compiled::new(&wsec.spec) {
        Ok(c) => c,
        Err(why) => {
            report.fail("spec", &Error::InvalidSpec(why));
            return;
        }
    };
    target_step(report, target, wsec).await;
    let view = vault.map(|uri| deps.vaults.view(cred, uri));
    progress("listing the vault and reading the connections");
    let listing = match (&view, compiled.needs_workspace_listing()) {
        (Some(v), true) => match v.list(deps.azure, cred, Duration::ZERO).await {
            Ok(l) => {
                report.pass("vault list", format!("{} secrets listed", l.len()));
                Some(l)
            }
            Err(e) => {
                report.fail("vault list", &Error::Azure(e));
                return;
            }
        },
        _ => None,
    };
    let wref = target.wref();
    let names = compiled.connection_names();
    let read = conn_fetch::read(deps, cred, &wref, &names, Duration::ZERO, None).await;
    if !names.is_empty() {
        let failed = read.values().filter(|r| r.is_err()).count();
        let detail = format!("{} connections read, {failed} failed", names.len());
        match read.values().find_map(|r| r.as_ref().err()) {
            Some(e) => {
                let mut step = Step {
                    step: "connections",
                    ok: false,
                    detail: format!("{detail}: {e}"),
                    reason: Some(e.reason().into()),
                    hint: role_hint(e),
                };
                step.detail.truncate(2000);
                report.steps.push(step);
            }
            None => report.pass("connections", detail),
        }
    }
    // Endpoints and datastores, through the same shared views as the operator.
    let wanted = crate::sync::endpoints::wanted(&compiled);
    let resources = crate::fetch::endpoints::read(deps, cred, &wref, &wanted, Duration::ZERO).await;
    let mut planned = plan(&compiled, listing.as_deref(), &[]);
    let fields = conn_fetch::fields(&read);
    expand_connections(&compiled, &fields, &[], &mut planned);
    let resource_fields = crate::fetch::endpoints::fields(&resources);
    crate::sync::endpoints::expand_resources(&compiled, &resource_fields, &[], &mut planned);
    let sources = Sources {
        deps,
        cred,
        cloud: &target.cloud,
        workspace_vault: view.clone(),
        listing: listing.clone(),
        interval: Duration::ZERO,
        connections: &read,
        endpoints: &resources,
    };
    progress(&format!("reading {} items", planned.items.len()));
    let mut results = fetch_all(&sources, &planned.items).await;
    for (key, why) in &planned.invalid {
        results.push(ItemResult {
            key: key.clone(),
            reference: String::new(),
            outcome: Err(crate::sync::assemble::ItemError::new(
                reasons::INVALID_SPEC,
                why.clone(),
                false,
            )),
        });
    }
    let no_vault = (compiled.uses_workspace_vault() && vault.is_none()).then_some(
        "the workspace has no customer Key Vault, so keyvault: references cannot be served",
    );
    results.extend(crate::sync::connections::item_errors(
        wsec,
        &compiled,
        &read,
        &planned,
        &[],
        no_vault,
    ));
    results.extend(crate::sync::endpoints::item_errors(
        &compiled,
        &resources,
        &planned,
        &[],
    ));
    let principal = cred.identity().to_string();
    for r in results {
        report.items.push(match r.outcome {
            Ok(f) => Item {
                key: r.key,
                reference: r.reference,
                ok: true,
                version: f.version,
                updated: f.updated,
                expires: f.expires,
                reason: None,
                message: None,
                hint: None,
            },
            Err(e) => {
                let hint = item_hint(e.reason, &e.message, &principal, vault);
                Item {
                    key: r.key,
                    reference: r.reference,
                    ok: false,
                    version: None,
                    updated: None,
                    expires: None,
                    reason: Some(e.reason.to_string()),
                    message: Some(e.message),
                    hint,
                }
            }
        });
    }
    report.items.sort_by(|a, b| a.key.cmp(&b.key));
    if !planned.disabled.is_empty() {
        report.notes.push(format!(
            "skipped disabled vault secrets: {}",
            planned.disabled.join(", ")
        ));
    }
    report
        .notes
        .extend(crate::sync::connections::notes(&compiled, &read));
    if report.items.is_empty() {
        report
            .notes
            .push("nothing to sync: no key was planned".into());
    }
}

/// The reconcile's first step: may this WorkspaceSecret write its target Secret? Needs the cluster.
async fn target_step(report: &mut Report, target: &Target, wsec: &crate::api::WorkspaceSecret) {
    use kube::ResourceExt;
    let name = crate::sync::build::target_name(wsec);
    let (Some(client), Some(ns)) = (&target.client, wsec.namespace()) else {
        report.notes.push(format!(
            "the target Secret {name} was not checked (no cluster: check --from workspacesecret/NAME to include it)"
        ));
        return;
    };
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &ns);
    match crate::controller::secret_sync::read_target(wsec, &name, &api, None).await {
        Ok(t) => report.pass(
            "target",
            match t.existing {
                Some(_) => format!("Secret {ns}/{} exists and may be written", t.name),
                None => format!("Secret {ns}/{} will be created", t.name),
            },
        ),
        Err(e) => report.fail("target", &e),
    }
}

/// The role hint of a failed key (its Azure error was turned into a reason and message).
fn item_hint(reason: &str, message: &str, principal: &str, vault: Option<&str>) -> Option<String> {
    match reason {
        reasons::FORBIDDEN if message.contains("listsecrets") => Some(format!(
            "grant {principal} the role '{}' on the workspace",
            crate::azure::connections::SECRETS_READER_ROLE
        )),
        reasons::FORBIDDEN if message.contains("access polic") => Some(format!(
            "add an access policy on the vault {} for {principal} with the secret permissions get and list",
            vault.unwrap_or("of the reference")
        )),
        reasons::FORBIDDEN => Some(format!(
            "grant {principal} the role 'Key Vault Secrets User' on the vault {}",
            vault.unwrap_or("of the reference")
        )),
        reasons::SECRET_NOT_FOUND => Some(
            "check the name (vault secret names are case-insensitive, connection names are not) or create it (`amlsecrets vault set`)".into(),
        ),
        reasons::SECRET_DISABLED => Some("enable the secret, or stop referencing it".into()),
        _ => None,
    }
}
