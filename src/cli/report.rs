//! The report of `amlsecrets check`: its steps and items (never a value), and how it prints.

use serde::Serialize;

use super::args::OutputFormat;
use super::render::{print_structured, print_table, role_hint};
use crate::controller::error::Error;

/// One step of the check.
#[derive(Serialize, Debug)]
pub struct Step {
    /// What was checked.
    pub step: &'static str,
    /// Whether it worked.
    pub ok: bool,
    /// What was found, or what went wrong.
    pub detail: String,
    /// The condition reason of a failure (as the operator's status would show it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What to grant or change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One key of a WorkspaceSecret.
#[derive(Serialize, Debug)]
pub struct Item {
    /// The key in the target Secret.
    pub key: String,
    /// Where it comes from.
    pub reference: String,
    /// Whether it would sync.
    pub ok: bool,
    /// The source's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the source last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// When the source expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Why it would not sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What to grant or change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The whole report.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// Whether everything would sync.
    pub ok: bool,
    /// Whose identity was checked: `workload` (the manifest's auth) or `me` (the local one).
    pub checked_as: String,
    /// Who it authenticated as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The workspace's ARM id.
    pub workspace: String,
    /// The vault URI, when one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// How the vault was found (`Spec`, `Workspace`, `Hub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_source: Option<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The WorkspaceSecret's keys, when one was checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// Notes (skipped disabled secrets, connections without credentials).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn pass(&mut self, step: &'static str, detail: String) {
        self.steps.push(Step {
            step,
            ok: true,
            detail,
            reason: None,
            hint: None,
        });
    }

    pub(crate) fn fail(&mut self, step: &'static str, e: &Error) {
        let hint = match e {
            Error::Azure(a) => role_hint(a),
            _ => None,
        };
        self.steps.push(Step {
            step,
            ok: false,
            detail: e.to_string(),
            reason: Some(e.reason().to_string()),
            hint,
        });
    }
}

/// Prints the report.
pub fn print(format: OutputFormat, report: &Report) {
    if print_structured(format, report) {
        return;
    }
    println!(
        "Checking {} as {}",
        report.workspace,
        if report.checked_as == "me" {
            "you (--auth)"
        } else {
            "the workload (the manifest's auth)"
        }
    );
    for s in &report.steps {
        let mark = if s.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<13} {}", s.step, s.detail);
        if let Some(r) = &s.reason {
            println!("     reason: {r}");
        }
        if let Some(h) = &s.hint {
            println!("     to fix: {h}");
        }
    }
    if !report.items.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = report
            .items
            .iter()
            .map(|i| {
                vec![
                    i.key.clone(),
                    i.reference.clone(),
                    if i.ok {
                        "ok".into()
                    } else {
                        i.reason.clone().unwrap_or_default()
                    },
                    i.version.clone().unwrap_or_default(),
                    i.updated.clone().unwrap_or_default(),
                    i.expires.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(
            &[
                "KEY",
                "REFERENCE",
                "STATUS",
                "VERSION",
                "UPDATED",
                "EXPIRES",
            ],
            &rows,
        );
        for i in report.items.iter().filter(|i| !i.ok) {
            println!("{}: {}", i.key, i.message.clone().unwrap_or_default());
            if let Some(h) = &i.hint {
                println!("     to fix: {h}");
            }
        }
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    println!(
        "{}",
        if report.ok {
            "Everything would sync."
        } else {
            "Something would not sync (see FAIL above)."
        }
    );
}
