//! The operator's API-server requests, counted from the kube-apiserver's audit log by verb and
//! by resource. The operator runs under its own identity, so its requests are told apart from
//! the benchmark's (creating WorkspaceSecrets, watching Secrets) by the audit user.
//!
//! The policy omits the RequestReceived stage, so an ordinary request leaves one event
//! (ResponseComplete, or Panic) and a long-running one (a watch) two: ResponseStarted when its
//! response begins and ResponseComplete when it ends. A request is counted once, when its
//! first event is read: a watch in the period it was opened.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

/// The fields of an audit event the benchmark reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: String,
    verb: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    user: User,
    object_ref: Option<ObjectRef>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    resource: Option<String>,
    subresource: Option<String>,
}

impl Event {
    /// `secrets`, `workspacesecrets/status`, or the path of a non-resource request (`/apis`).
    fn resource(&self) -> String {
        match &self.object_ref {
            Some(ObjectRef {
                resource: Some(r),
                subresource,
            }) => match subresource {
                Some(sub) => format!("{r}/{sub}"),
                None => r.clone(),
            },
            _ => self
                .request_uri
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// Requests counted over some period.
#[derive(Clone, Debug, Default)]
pub(crate) struct Requests {
    pub(crate) total: usize,
    pub(crate) by_verb: BTreeMap<String, usize>,
    pub(crate) by_resource: BTreeMap<String, usize>,
    /// `"<verb> <resource>"`, e.g. `"patch workspacesecrets/status"`.
    pub(crate) by_request: BTreeMap<String, usize>,
}

impl Requests {
    fn add(&mut self, event: &Event) {
        let resource = event.resource();
        self.total += 1;
        *self.by_verb.entry(event.verb.clone()).or_default() += 1;
        *self
            .by_request
            .entry(format!("{} {resource}", event.verb))
            .or_default() += 1;
        *self.by_resource.entry(resource).or_default() += 1;
    }

    /// Adds the counts of `other`.
    pub(crate) fn merge(&mut self, other: &Requests) {
        self.total += other.total;
        let sum = |into: &mut BTreeMap<String, usize>, from: &BTreeMap<String, usize>| {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        };
        sum(&mut self.by_verb, &other.by_verb);
        sum(&mut self.by_resource, &other.by_resource);
        sum(&mut self.by_request, &other.by_request);
    }

    /// The counts divided by `n` (per cycle) as JSON: total, by verb, by resource, by both.
    pub(crate) fn per(&self, n: f64) -> Value {
        let div = |m: &BTreeMap<String, usize>| -> BTreeMap<String, f64> {
            m.iter().map(|(k, v)| (k.clone(), *v as f64 / n)).collect()
        };
        json!({ "total": self.total as f64 / n, "by_verb": div(&self.by_verb),
                "by_resource": div(&self.by_resource), "by_request": div(&self.by_request) })
    }

    /// One line for the log: `123 (get 40, patch 83) — get secrets 40, patch workspacesecrets/status 83`.
    pub(crate) fn line(&self) -> String {
        let list = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} ({}) — {}",
            self.total,
            list(&self.by_verb),
            list(&self.by_request)
        )
    }
}

/// Reads an audit log incrementally and counts one user's requests.
pub(crate) struct AuditLog {
    path: PathBuf,
    user: String,
    offset: u64,
    /// An incomplete last line, finished by the next read.
    partial: Vec<u8>,
    /// Requests counted at ResponseStarted whose ResponseComplete is still to come.
    started: HashSet<String>,
    /// Lines that did not parse as audit events.
    pub(crate) unreadable: usize,
}

impl AuditLog {
    /// Counts the requests of `user` (e.g. `system:serviceaccount:bench:amlsecrets`) in the log
    /// at `path`, from its beginning.
    pub(crate) fn open(path: PathBuf, user: &str) -> Self {
        Self {
            path,
            user: user.to_owned(),
            offset: 0,
            partial: Vec::new(),
            started: HashSet::new(),
            unreadable: 0,
        }
    }

    /// Returns the user's requests logged since the last call.
    pub(crate) fn take(&mut self) -> Requests {
        let mut requests = Requests::default();
        let Ok(mut file) = File::open(&self.path) else {
            return requests;
        };
        let mut bytes = std::mem::take(&mut self.partial);
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return requests;
        }
        let before = bytes.len();
        if file.read_to_end(&mut bytes).is_err() {
            return requests;
        }
        self.offset += (bytes.len() - before) as u64;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(event) = serde_json::from_slice::<Event>(line) else {
                self.unreadable += 1;
                continue;
            };
            if event.user.username != self.user {
                continue;
            }
            let first = match event.stage.as_str() {
                "ResponseStarted" => self.started.insert(event.audit_id.clone()),
                _ => !self.started.remove(&event.audit_id),
            };
            if first {
                requests.add(&event);
            }
        }
        requests
    }
}
