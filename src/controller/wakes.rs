//! Wakes WorkspaceSecrets from outside the watches: a vault listing that shows a change sends the
//! readers of the changed secrets here, and each watched scope's controller reconciles its own.

use std::sync::Mutex;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::ObjectRef;

use crate::api::workspace_secret::WorkspaceSecret;

/// A scope's namespace (`None`: all) and its controller's channel.
type Scope = (Option<String>, UnboundedSender<ObjectRef<WorkspaceSecret>>);

/// The controllers' wake-up channels, one per watched scope (a namespace, or all).
#[derive(Default)]
pub(crate) struct Wakes {
    scopes: Mutex<Vec<Scope>>,
}

impl Wakes {
    /// Opens the channel of a scope's controller.
    pub(crate) fn subscribe(
        &self,
        namespace: Option<&str>,
    ) -> UnboundedReceiver<ObjectRef<WorkspaceSecret>> {
        let (tx, rx) = unbounded();
        let mut scopes = self.scopes.lock().expect("wakes lock");
        scopes.retain(|(_, tx)| !tx.is_closed());
        scopes.push((namespace.map(str::to_string), tx));
        rx
    }

    /// Wakes each object in the scope that watches it; returns how many were sent.
    pub(crate) fn wake(&self, objects: Vec<ObjectRef<WorkspaceSecret>>) -> usize {
        let scopes = self.scopes.lock().expect("wakes lock");
        let mut sent = 0;
        for obj in objects {
            let scope = scopes
                .iter()
                .find(|(ns, tx)| !tx.is_closed() && (ns.is_none() || *ns == obj.namespace));
            if let Some((_, tx)) = scope
                && tx.unbounded_send(obj).is_ok()
            {
                sent += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn each_object_goes_to_the_scope_of_its_namespace() {
        let wakes = Wakes::default();
        let (mut a, mut b) = (wakes.subscribe(Some("a")), wakes.subscribe(Some("b")));
        let obj = |ns: &str, name: &str| ObjectRef::<WorkspaceSecret>::new(name).within(ns);
        let sent = wakes.wake(vec![obj("a", "x"), obj("b", "y"), obj("c", "z")]);
        assert_eq!(sent, 2, "nobody watches namespace c");
        assert_eq!(a.next().await.unwrap().name, "x");
        assert_eq!(b.next().await.unwrap().name, "y");
        drop(a);
        let mut all = wakes.subscribe(None);
        assert_eq!(
            wakes.wake(vec![obj("a", "x")]),
            1,
            "a closed scope is skipped"
        );
        assert_eq!(all.next().await.unwrap().name, "x");
    }
}
