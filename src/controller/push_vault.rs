//! The vault side of one push: the vault secrets the source should become and a step per item
//! (pure, `sync::push`), then the IO those steps ask for — a versions lookup before a name's first
//! write, one comparison of the value after a restart, the PUT, the DELETE of released names —
//! each through the vault's shared request budget.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use kube::ResourceExt;

use super::Context;
use super::error::Error;
use super::push::{failure, read_source, refresh_interval, target};
use crate::api::conditions::reasons;
use crate::api::workspace_secret::DeletionPolicy;
use crate::api::workspace_secret_push::{PushedItem, WorkspaceSecretPush};
use crate::azure::keyvault::write::{PushedSecret, is_deleted_but_recoverable, writer_hint};
use crate::azure::{AzureError, Credential, SecretProperties};
use crate::fetch::VaultView;
use crate::sync::push::{
    Desired, DigestKey, Outcome, Owner, Pushed, Step, desired, owner, step, step_after_lookup,
    tags_of,
};
use crate::sync::report::{Failure, Retry};

const SET_ACTION: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
const DELETE_ACTION: &str = "Microsoft.KeyVault/vaults/secrets/delete";
const LIST_ACTION: &str = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";

/// The digest key of this process (random, never stored).
fn digest_key() -> &'static DigestKey {
    static KEY: OnceLock<DigestKey> = OnceLock::new();
    KEY.get_or_init(DigestKey::random)
}

/// Pushes every item: the recipe of one reconcile, up to the report.
pub(super) async fn push_all(ctx: &Context, p: &WorkspaceSecretPush) -> Result<Pushed, Failure> {
    let ns = p.namespace().unwrap_or_default();
    let source_name = &p.spec.source.name;
    let target = target(ctx, p).await.map_err(|e| failure(&e))?;
    let Some(data) = read_source(ctx, p).await.map_err(|e| failure(&e))? else {
        return Err(Failure {
            reason: reasons::SOURCE_NOT_FOUND,
            message: format!(
                "Secret {ns}/{source_name} does not exist; the vault secrets pushed before are kept (a missing source never deletes)"
            ),
            retry: Retry::Backoff,
        });
    };
    let (wanted, problems) = desired(&p.spec, source_name, &data);
    let refresh = refresh_interval(p);
    let view = &target.view;
    let listing = view
        .list(ctx.azure.as_ref(), &target.cred, refresh)
        .await
        .map_err(|e| failure(&Error::Azure(writer_hint(e, LIST_ACTION))))?;
    let previous: Vec<PushedItem> = p
        .status
        .as_ref()
        .map(|s| s.items.clone())
        .unwrap_or_default();
    let record_of = |name: &str| {
        previous
            .iter()
            .find(|r| r.remote_name.eq_ignore_ascii_case(name))
            .cloned()
    };
    let io = Io {
        ctx,
        p,
        cred: &target.cred,
        view,
        push: format!("{ns}/{}", p.name_any()),
        uid: p.uid().unwrap_or_default(),
    };
    let mut outcomes = Vec::new();
    let mut stop: Option<AzureError> = None;
    for d in &wanted {
        let record = record_of(&d.remote_name);
        if let Some(e) = &stop {
            outcomes.push(failed(&d.remote_name, e, record, true));
            continue;
        }
        let listed = listing
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&d.remote_name));
        let outcome = io.item(d, record.clone(), listed).await;
        if let Err(
            e @ (AzureError::Throttled { .. }
            | AzureError::Forbidden { .. }
            | AzureError::AuthenticationFailed { .. }
            | AzureError::VaultUnreachable { .. }),
        ) = &outcome
        {
            stop = Some(e.clone());
        }
        outcomes.push(outcome.unwrap_or_else(|e| failed(&d.remote_name, &e, record, false)));
    }
    for pr in &problems {
        outcomes.push(Outcome::Failed {
            remote_name: pr.remote_name.clone(),
            reason: pr.reason,
            message: pr.message.clone(),
            transient: false,
            kept: record_of(&pr.remote_name),
        });
    }
    // Vault secrets pushed before that no item wants any more: released.
    let still: BTreeSet<String> = wanted
        .iter()
        .map(|d| d.remote_name.to_ascii_lowercase())
        .chain(problems.iter().map(|p| p.remote_name.to_ascii_lowercase()))
        .collect();
    for gone in previous
        .iter()
        .filter(|r| !still.contains(&r.remote_name.to_ascii_lowercase()))
    {
        if p.spec.deletion_policy == DeletionPolicy::Retain {
            continue;
        }
        match io.delete_if_ours(&gone.remote_name).await {
            Ok(true) => outcomes.push(Outcome::Deleted(gone.remote_name.clone())),
            Ok(false) => {}
            Err(e) => outcomes.push(failed(&gone.remote_name, &e, Some(gone.clone()), false)),
        }
    }
    Ok(Pushed {
        vault: view.vault().to_string(),
        outcomes,
    })
}

fn failed(name: &str, e: &AzureError, kept: Option<PushedItem>, skipped: bool) -> Outcome {
    let deleted = is_deleted_but_recoverable(e);
    let message = if skipped {
        format!("not tried after an earlier failure: {e}")
    } else {
        e.to_string()
    };
    Outcome::Failed {
        remote_name: name.to_string(),
        reason: if deleted {
            reasons::DELETED_BUT_RECOVERABLE
        } else {
            e.reason()
        },
        message,
        transient: e.is_transient() && !deleted,
        kept,
    }
}

/// The vault IO of one push.
pub(super) struct Io<'a> {
    pub(super) ctx: &'a Context,
    pub(super) p: &'a WorkspaceSecretPush,
    pub(super) cred: &'a Arc<Credential>,
    pub(super) view: &'a VaultView,
    pub(super) push: String,
    pub(super) uid: String,
}

impl Io<'_> {
    /// Brings one item up to date: decide, look up, verify and write as the steps say.
    async fn item(
        &self,
        d: &Desired,
        record: Option<PushedItem>,
        listed: Option<&SecretProperties>,
    ) -> Result<Outcome, AzureError> {
        let tags = tags_of(d, &self.push, &self.uid);
        let digest = digest_key().digest(d, &tags);
        let spec = &self.p.spec;
        let (policy, adopt) = (spec.update_policy, spec.adopt_existing);
        let mut next = step(
            d,
            record.as_ref(),
            listed,
            &digest,
            digest_key(),
            policy,
            adopt,
            &self.uid,
        );
        if next == Step::Lookup {
            let latest = self.latest(&d.remote_name).await?;
            next = step_after_lookup(d, latest.as_ref(), policy, adopt, &self.uid);
        }
        if next == Step::Verify {
            next = self.verify(d, &tags).await?;
        }
        let recorded = |version: Option<String>, updated: Option<i64>| PushedItem {
            secret_key: d.secret_key.clone(),
            remote_name: d.remote_name.clone(),
            version,
            updated: updated
                .and_then(|t| Timestamp::from_second(t).ok())
                .map(|t| t.to_string()),
            digest: Some(digest.clone()),
        };
        Ok(match next {
            Step::Unchanged => match record {
                Some(r) => Outcome::Current(PushedItem {
                    secret_key: d.secret_key.clone(),
                    ..r
                }),
                None => Outcome::Current(recorded(None, None)),
            },
            Step::Verified(version, updated) => Outcome::Current(recorded(version, updated)),
            Step::Keep => Outcome::Kept(d.remote_name.clone()),
            Step::Conflict(message) => Outcome::Failed {
                remote_name: d.remote_name.clone(),
                reason: reasons::TARGET_CONFLICT,
                message,
                transient: false,
                kept: None,
            },
            Step::Put(why) => {
                let secret = PushedSecret {
                    value: d.value.clone().into(),
                    content_type: d.metadata.content_type.clone(),
                    tags,
                    not_before: d.not_before,
                    expires: d.expires,
                };
                let azure = self.ctx.azure.as_ref();
                let written = self
                    .view
                    .budgeted(
                        true,
                        azure.put_secret_with_attributes(
                            self.cred,
                            self.view.vault(),
                            &d.remote_name,
                            &secret,
                        ),
                    )
                    .await
                    .map_err(|e| writer_hint(e, SET_ACTION))?;
                let props = written.properties;
                Outcome::Wrote(recorded(props.version, props.updated), why)
            }
            Step::Lookup | Step::Verify => unreachable!("resolved above"),
        })
    }

    /// Returns the latest version's properties of a vault secret (no value), if it exists.
    async fn latest(&self, name: &str) -> Result<Option<SecretProperties>, AzureError> {
        let azure = self.ctx.azure.as_ref();
        let versions = self
            .view
            .budgeted(
                false,
                azure.list_secret_versions(self.cred, self.view.vault(), name),
            )
            .await;
        match versions {
            Ok(vs) => Ok(vs.into_iter().max_by_key(|v| (v.updated, v.created))),
            Err(AzureError::SecretNotFound { .. }) => Ok(None),
            Err(e) => Err(writer_hint(e, LIST_ACTION)),
        }
    }

    /// Compares what the vault holds with what is wanted, once (after a restart or fail-over the
    /// digest key differs): the same value and metadata are recorded, anything else rewritten.
    async fn verify(
        &self,
        d: &Desired,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Step, AzureError> {
        let azure = self.ctx.azure.as_ref();
        let got = self
            .view
            .budgeted(
                false,
                azure.get_secret(self.cred, self.view.vault(), &d.remote_name, None),
            )
            .await;
        let got = match got {
            Ok(s) => s,
            Err(AzureError::SecretNotFound { .. }) => return Ok(Step::Put("created")),
            // A disabled or unreadable secret is written again rather than compared.
            Err(AzureError::SecretDisabled { .. }) => {
                return Ok(Step::Put("the vault's version could not be read"));
            }
            Err(e) => return Err(e),
        };
        let pr = &got.properties;
        let same = got.value.expose() == d.value
            && pr.content_type == d.metadata.content_type
            && &pr.tags == tags
            && pr.expires == d.expires
            && pr.not_before == d.not_before;
        Ok(if same {
            Step::Verified(pr.version.clone(), pr.updated)
        } else {
            Step::Put("the vault held another value or metadata")
        })
    }

    /// Deletes a vault secret when its latest version is still this push's; `false` when it is
    /// not (someone else wrote it since) or it is gone already.
    pub(super) async fn delete_if_ours(&self, name: &str) -> Result<bool, AzureError> {
        let Some(latest) = self.latest(name).await? else {
            return Ok(false);
        };
        if owner(&latest.tags, &self.uid) != Owner::This {
            return Ok(false);
        }
        let azure = self.ctx.azure.as_ref();
        match self
            .view
            .budgeted(
                true,
                azure.delete_secret(self.cred, self.view.vault(), name),
            )
            .await
        {
            Ok(_) | Err(AzureError::SecretNotFound { .. }) => Ok(true),
            Err(e) => Err(writer_hint(e, DELETE_ACTION)),
        }
    }
}
