//! The laptop commands end to end: the built `amlsecrets` binary run against the fake Azure (and
//! the test control plane where the cluster matters), signed in through a fake `az` on `PATH`,
//! the device-code flow at the fake Entra, or a service principal from the environment.
//! Every failure class gives its reason and role hint and a non-zero exit; JSON output parses;
//! no value or token appears in any output or in the logs at trace level (stderr).

#[allow(unused_imports)]
#[path = "controller/support.rs"]
mod support;

#[path = "cli/harness.rs"]
mod harness;

#[path = "cli/identities.rs"]
mod identities;

#[path = "cli/interactive.rs"]
mod interactive;

#[path = "cli/check.rs"]
mod check;

#[path = "cli/vault.rs"]
mod vault;

#[path = "cli/connections.rs"]
mod connections;

#[path = "cli/operator.rs"]
mod operator;
