//! `amlsecrets vault`: set from stdin, a file, an environment variable or a `.env` file (never
//! argv); values with newlines, unicode and quotes round-trip exactly, through the vault and
//! through the operator into a Secret; list shows no values; delete asks unless `--yes`.

use serde_json::json;
use testenv::azure::AzureFakes;

use crate::harness::*;
use crate::support::World;

const TRICKY: &str = "line one\nline \"two\" with 'quotes'\n  ünïcødé ✓ — 日本語 = $HOME \\n\n";

async fn vault(laptop: &Laptop, fakes: &AzureFakes, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut all: Vec<String> = vec!["vault".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(laptop.workspace_flags(fakes, "mlw-cli"));
    laptop.run(&all, stdin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_exactly_and_only_get_prints_them() {
    let fakes = AzureFakes::start().await;
    let mut laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    arm_workspace(&fakes, "mlw-cli");

    // stdin
    let out = vault(
        &laptop,
        &fakes,
        &["set", "from-stdin"],
        Some(TRICKY.as_bytes()),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fakes.vault.value("from-stdin").as_deref(), Some(TRICKY));
    // a file
    let file = laptop.dir.path().join("value.txt");
    std::fs::write(&file, TRICKY).unwrap();
    let from_file = format!("--from-file={}", file.display());
    let out = vault(&laptop, &fakes, &["set", "from-file", &from_file], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fakes.vault.value("from-file").as_deref(), Some(TRICKY));
    // an environment variable
    laptop.env.push(("MY_VALUE".into(), TRICKY.into()));
    let out = vault(
        &laptop,
        &fakes,
        &["set", "from-env", "--from-env=MY_VALUE", "-o", "json"],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["set"][0]["name"], "from-env");
    assert_eq!(fakes.vault.value("from-env").as_deref(), Some(TRICKY));
    // several from a .env file
    let env_file = laptop.dir.path().join("app.env");
    std::fs::write(
        &env_file,
        "# app settings\nAPI-KEY=plain-Ee5\nexport MULTI=\"a\\nb \\\"c\\\" ü\"\nQUOTED='it \"is\" $x'\n",
    )
    .unwrap();
    let from_env_file = format!("--from-env-file={}", env_file.display());
    let out = vault(&laptop, &fakes, &["set", &from_env_file], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fakes.vault.value("API-KEY").as_deref(), Some("plain-Ee5"));
    assert_eq!(fakes.vault.value("MULTI").as_deref(), Some("a\nb \"c\" ü"));
    assert_eq!(fakes.vault.value("QUOTED").as_deref(), Some("it \"is\" $x"));

    // get: the exact bytes (one value as is; several in JSON).
    let out = vault(&laptop, &fakes, &["get", "from-stdin"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, TRICKY, "one value is printed exactly");
    let out = vault(
        &laptop,
        &fakes,
        &["get", "from-file", "from-env", "-o", "json"],
        None,
    )
    .await;
    let got = out.json();
    assert_eq!(got["secrets"][0]["value"], TRICKY);
    assert_eq!(got["secrets"][1]["value"], TRICKY);
    assert!(
        !out.stderr.contains("ünïcødé"),
        "values stay out of the logs"
    );

    // list: names, never values; the logs (trace level) hold no value or token either.
    let out = vault(&laptop, &fakes, &["list"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    for name in ["from-stdin", "from-file", "from-env", "API-KEY", "MULTI"] {
        assert!(out.stdout.contains(name), "{name}: {}", out.stdout);
    }
    assert_no_secrets(&fakes, &out.all(), &["ünïcødé", "plain-Ee5"]);

    // A name Key Vault would refuse is refused before any call.
    let out = vault(&laptop, &fakes, &["set", "bad_name"], Some(b"x")).await;
    assert_eq!(out.code, 2, "wrong usage");
    assert!(
        out.stderr.contains("not a Key Vault secret name"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_asks_first_and_a_refused_write_names_the_role() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    arm_workspace(&fakes, "mlw-cli");
    fakes.vault.put_secret("old", "planted-old-Ff6", true, None);

    let out = vault(&laptop, &fakes, &["delete", "old"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("pass --yes"), "{out:?}");
    assert!(
        !fakes.vault.is_deleted("old"),
        "nothing is deleted without confirmation"
    );
    let out = vault(&laptop, &fakes, &["delete", "old", "--yes"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(fakes.vault.is_deleted("old"));

    fakes.vault.deny(USER_OID);
    let out = vault(&laptop, &fakes, &["set", "new"], Some(b"planted-new-Gg7")).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("to fix: grant") && out.stderr.contains("'Key Vault Secrets Officer'"),
        "{}",
        out.stderr
    );
    assert_no_secrets(&fakes, &out.all(), &["planted-new-Gg7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_set_from_the_laptop_is_synced_by_the_operator_byte_for_byte() {
    let w = World::start(&[]).await;
    w.sp_workspace().await;
    let laptop = Laptop::new(&w.fakes);
    laptop.az_login(&w.fakes, USER_OID);
    let mut args: Vec<String> = vec!["vault".into(), "set".into(), "app-config".into()];
    args.push(format!("--vault={}", w.fakes.vault.uri));
    args.extend(laptop.cloud_flags(&w.fakes));
    args.extend([
        format!("--subscription={SUB}"),
        "--resource-group=rg-ml".into(),
        "--workspace=mlw-test".into(),
    ]);
    let out = laptop.run(&args, Some(TRICKY.as_bytes())).await;
    assert_eq!(out.code, 0, "{out:?}");
    w.workspace_secret(
        "app",
        json!({ "workspaceRef": { "name": "ml" }, "data": [ { "key": "config", "ref": "keyvault:app-config" } ] }),
    )
    .await;
    let data = w
        .wait_secret(
            "app",
            "the Secret holds the value set from the laptop",
            |d| d.contains_key("config"),
        )
        .await;
    assert_eq!(data["config"], TRICKY.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_on_a_terminal_and_never_in_a_pipe() {
    let fakes = AzureFakes::start().await;
    let laptop = Laptop::new(&fakes);
    laptop.az_login(&fakes, USER_OID);
    arm_workspace(&fakes, "mlw-cli");
    for n in ["a", "b", "c"] {
        fakes.vault.put_secret(n, "v", true, None);
    }
    let mut args: Vec<String> = ["vault", "get", "a", "b", "c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(laptop.workspace_flags(&fakes, "mlw-cli"));
    let tty = laptop.run_in_terminal(&args).await;
    assert_eq!(tty.code, 0, "{tty:?}");
    assert!(
        tty.stdout.contains("reading 2/3…") && tty.stdout.contains("\r\x1b[K"),
        "a terminal sees the progress: {:?}",
        tty.stdout
    );
    let piped = laptop.run(&args, None).await;
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(
        !piped.all().contains("reading 2/3") && !piped.all().contains('\x1b'),
        "a pipe sees no progress and no escape codes: {piped:?}"
    );
}
