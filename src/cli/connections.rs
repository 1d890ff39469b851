//! `amlsecrets connections list|get`: names, categories, auth types, targets and expiry;
//! credentials only with `--show-credentials`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::args::{ConnectionsCommand, LocalArgs, WorkspaceArgs};
use super::render::{print_structured, print_table};
use super::target;
use super::vault::Failure;
use crate::azure::{AzureApi, AzureClient, Connection};

#[derive(Serialize)]
struct Shown {
    name: String,
    category: String,
    auth_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiry_time: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<BTreeMap<String, String>>,
}

fn shown(c: Connection) -> Shown {
    Shown {
        name: c.name,
        category: c.category,
        auth_type: c.auth_type,
        target: c.target,
        expiry_time: c.expiry_time,
        metadata: c.metadata,
        credentials: None,
    }
}

/// Runs a connections command.
pub async fn run(
    local: &LocalArgs,
    wargs: &WorkspaceArgs,
    command: &ConnectionsCommand,
) -> Result<(), Failure> {
    let target = target::resolve(wargs).await?;
    let http = target::http(local)?;
    let azure = AzureClient::new(http.clone());
    let cred = super::identity::local_credential(local, &target.cloud, &http)?;
    let wref = target.wref();
    let format = local.output;
    match command {
        ConnectionsCommand::List { category } => {
            let mut list = azure
                .list_connections(&cred, &wref, category.as_deref())
                .await?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let list: Vec<Shown> = list.into_iter().map(shown).collect();
            if !print_structured(format, &serde_json::json!({ "connections": list })) {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.category.clone(),
                            c.auth_type.clone(),
                            c.target.clone().unwrap_or_default(),
                            c.expiry_time.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "CATEGORY", "AUTH", "TARGET", "EXPIRES"], &rows);
            }
        }
        ConnectionsCommand::Get {
            name,
            show_credentials,
        } => {
            let mut c = if *show_credentials {
                let s = azure.list_connection_secrets(&cred, &wref, name).await?;
                let mut c = shown(s.connection);
                c.credentials = Some(
                    s.credentials
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.expose().to_string()))
                        .collect(),
                );
                c
            } else {
                shown(azure.get_connection(&cred, &wref, name).await?)
            };
            if !print_structured(format, &c) {
                println!("name:      {}", c.name);
                println!("category:  {}", c.category);
                println!("auth type: {}", c.auth_type);
                println!("target:    {}", c.target.as_deref().unwrap_or(""));
                println!("expires:   {}", c.expiry_time.as_deref().unwrap_or(""));
                for (k, v) in &c.metadata {
                    println!("metadata.{k}: {v}");
                }
                match c.credentials.take() {
                    Some(creds) if creds.is_empty() => {
                        println!("credentials: none (identity-based)")
                    }
                    Some(creds) => {
                        for (k, v) in creds {
                            println!("credentials.{k}: {v}");
                        }
                    }
                    None => println!("credentials: not shown (--show-credentials)"),
                }
            }
        }
    }
    Ok(())
}
