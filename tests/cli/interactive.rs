//! The interactive sign-in: the device-code flow at the fake Entra (pending, slow_down, approval
//! after N polls, expiry), the code and URL on stderr, tokens in memory unless asked to keep the
//! sign-in (a 0600 file), and `logout`.

use std::os::unix::fs::PermissionsExt;

use testenv::azure::entra::devicecode::{DeviceFlow, User};
use testenv::azure::{AzureFakes, TENANT};

use crate::harness::*;

fn user() -> Option<User> {
    Some(User {
        tenant: TENANT.into(),
        oid: USER_OID.into(),
    })
}

async fn fakes_with_public_client() -> AzureFakes {
    let fakes = AzureFakes::start().await;
    fakes.entra.add_public_client(AZ_CLIENT);
    arm_workspace(&fakes, "mlw-cli");
    fakes
        .vault
        .put_secret("db-password", "planted-db-Ik20", true, None);
    fakes
}

/// The flags of an interactive sign-in to the fakes' tenant.
const INTERACTIVE: [&str; 3] = ["--auth=interactive", "--tenant", TENANT];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_sign_in_prints_the_code_on_stderr_and_keeps_tokens_in_memory() {
    let fakes = fakes_with_public_client().await;
    fakes.entra.set_device_flow(DeviceFlow {
        user: user(),
        approve_after: 2,
        ..DeviceFlow::default()
    });
    let laptop = Laptop::new(&fakes);
    let mut args = vec!["check", "-o", "json"];
    args.extend(INTERACTIVE);
    let out = laptop.run_on(&fakes, "mlw-cli", &args).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{}/devicelogin", fakes.entra.authority_host))
            && out.stderr.contains("enter the code"),
        "the URL and code are on stderr: {}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("devicelogin"),
        "stdout is the report only"
    );
    let report = out.json();
    assert!(
        report["identity"]
            .as_str()
            .unwrap()
            .starts_with("Interactive")
            && report["identity"].as_str().unwrap().contains(USER_OID),
        "{report}"
    );
    assert_eq!(
        fakes.entra.calls.count("devicecode"),
        1,
        "one sign-in for both audiences"
    );
    assert_eq!(
        fakes.entra.device_poll_times().len(),
        3,
        "two polls pending, the third approved"
    );
    assert!(
        !laptop.cache.join("login.json").exists(),
        "nothing is written to disk unless asked"
    );
    let refresh = fakes.entra.refresh_tokens();
    assert_no_secrets(&fakes, &out.all(), &["planted-db-Ik20"]);
    for rt in refresh {
        assert!(!out.all().contains(&rt), "a refresh token was shown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_waits_five_seconds_longer_an_unused_code_expires_and_a_decline_is_said() {
    let fakes = fakes_with_public_client().await;
    fakes.entra.set_device_flow(DeviceFlow {
        user: user(),
        approve_after: 2,
        slow_down_at: Some(1),
        ..DeviceFlow::default()
    });
    let laptop = Laptop::new(&fakes);
    let mut args = vec!["vault", "list", "-o", "json"];
    args.extend(INTERACTIVE);
    let out = laptop.run_on(&fakes, "mlw-cli", &args).await;
    assert_eq!(out.code, 0, "{out:?}");
    let polls = fakes.entra.device_poll_times();
    assert_eq!(polls.len(), 3, "{polls:?}");
    let gap = polls[1] - polls[0];
    assert!(
        gap >= 5.9,
        "after slow_down the interval grows from 1 s to 6 s, waited {gap:.2} s"
    );

    // Nobody enters the code: it expires, and the message says what to do.
    fakes.entra.set_device_flow(DeviceFlow {
        user: None,
        expires_in: 3,
        ..DeviceFlow::default()
    });
    let out = laptop.run_on(&fakes, "mlw-cli", &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("expired before it was used")
            && out.stderr.contains("run the command again"),
        "{}",
        out.stderr
    );

    // The user declines in the browser.
    fakes.entra.set_device_flow(DeviceFlow {
        user: user(),
        approve_after: 0,
        decline: true,
        ..DeviceFlow::default()
    });
    let out = laptop.run_on(&fakes, "mlw-cli", &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("declined"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_keeps_the_sign_in_in_a_private_file_until_logout() {
    let fakes = fakes_with_public_client().await;
    fakes.entra.set_device_flow(DeviceFlow {
        user: user(),
        approve_after: 0,
        ..DeviceFlow::default()
    });
    let laptop = Laptop::new(&fakes);
    let mut login: Vec<String> = vec!["login".into(), "--tenant".into(), TENANT.into()];
    login.extend(laptop.cloud_flags(&fakes));
    let out = laptop.run(&login, None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let file = laptop.cache.join("login.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the sign-in file is readable by its user only");
    assert_eq!(fakes.entra.calls.count("devicecode"), 1);

    // A later command signs in from the file: no new code.
    let mut args = vec!["vault", "list", "-o", "json"];
    args.extend(INTERACTIVE);
    let out = laptop.run_on(&fakes, "mlw-cli", &args).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fakes.entra.calls.count("devicecode"), 1, "no second prompt");
    assert!(!out.stderr.contains("devicelogin"), "{}", out.stderr);

    // An expired refresh token: sign in again with a code, and the file is renewed.
    fakes.entra.revoke_refresh_tokens();
    let out = laptop.run_on(&fakes, "mlw-cli", &args).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fakes.entra.calls.count("devicecode"), 2);
    let kept = std::fs::read_to_string(&file).unwrap();
    assert!(
        fakes
            .entra
            .refresh_tokens()
            .iter()
            .any(|rt| kept.contains(rt)),
        "the file holds a refresh token Entra still accepts"
    );

    let out = laptop.run(&["logout".into()], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!file.exists(), "logout removes the file");
    assert!(out.stdout.contains("signed out"), "{out:?}");
}
