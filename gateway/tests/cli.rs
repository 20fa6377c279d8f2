//! The `weft` binary as an SRE uses it: exit codes, output, files it writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weft(args: &[&str]) -> Output {
    weft_env(args, &[])
}

fn weft_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(args);
    // Only what a test sets itself may override the files.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WEFT_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).output().expect("weft runs")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_accepts_both_examples() {
    let o = weft(&[
        "validate",
        &example("lab.toml"),
        &example("multicloud.toml"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("lab.toml: ok (2 tenants, 3 networks, 4 sites, 4 gateways)"));
    assert!(stdout(&o).contains("multicloud.toml: ok"));
}

#[test]
fn validate_reports_every_mistake_with_its_place_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(example("lab.toml"))
        .unwrap()
        .replace("listen_port = 51820", "listen_port = \"51820\"")
        .replace("label = 1002", "lable = 1002");
    std::fs::write(&path, text).unwrap();
    let o = weft(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("--> {}:16:15", path.display())),
        "{err}"
    );
    assert!(err.contains("hint:     did you mean `label`?"), "{err}");
    assert!(err.contains("2 configuration errors"), "{err}");

    let o = weft(&["validate", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let errors = json[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["key"], "overlay.listen_port");
    assert_eq!(errors[0]["location"]["line"], 16);
    assert_eq!(errors[0]["location"]["column"], 15);
}

#[test]
fn environment_overrides_are_named_in_errors() {
    let o = weft_env(
        &["validate", "-c", &example("lab.toml")],
        &[
            ("WEFT_OVERLAY__LISTEN_PORT", "seventy"),
            ("WEFT_LOG", "debug"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("--> environment variable WEFT_OVERLAY__LISTEN_PORT"),
        "{err}"
    );
    assert!(
        err.contains("1 configuration error"),
        "WEFT_LOG is not configuration: {err}"
    );

    let o = weft_env(
        &[
            "plan",
            "-c",
            &example("lab.toml"),
            "--gateway",
            "aws-gw",
            "--json",
        ],
        &[("WEFT_OVERLAY__UNDERLAY_MTU", "9000")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plans: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // gcp-lab keeps its own 1460; every network touches it, so MTUs stay at 1460 - 84.
    assert_eq!(plans[0]["networks"][0]["mtu"], 1376);
}

#[test]
fn layered_files_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("prod.toml");
    std::fs::write(&layer, "[sites.gcp-lab]\nunderlay_mtu = 1500\n").unwrap();
    let o = weft(&[
        "plan",
        "-c",
        &example("lab.toml"),
        "--gateway",
        "aws-gw",
        "--json",
    ]);
    let plans: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plans[0]["networks"][0]["mtu"], 1376,
        "gcp-lab's 1460 bounds the MTU"
    );
    let layers = [
        "plan",
        "-c",
        &example("lab.toml"),
        "-c",
        layer.to_str().unwrap(),
        "--gateway",
        "aws-gw",
        "--json",
    ];
    let o = weft(&layers);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plans: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The second layer changed one key of gcp-lab and kept the rest (its kind) from the first.
    assert_eq!(plans[0]["networks"][0]["mtu"], 1500 - 84);
    assert_eq!(plans[0]["peers"].as_array().unwrap().len(), 3);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(weft(&["plan", "--bogus"]).status.code(), Some(2));
    assert_eq!(weft(&[]).status.code(), Some(2));
    let o = weft(&["validate", "a.toml", "-c", "b.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in ["validate", "plan", "parity", "keygen", "schema"] {
        let o = weft(&[command, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        assert!(
            stdout(&o).contains("Example"),
            "{command} --help has no example"
        );
    }
}

#[test]
fn plan_prints_every_gateway_of_both_examples() {
    for (file, gateways) in [
        ("lab.toml", ["aws-gw", "azure-gw", "gcp-gw", "onprem-gw"]),
        (
            "multicloud.toml",
            ["aws-gw", "azure-gw", "gcp-gw", "dc1-gw"],
        ),
    ] {
        for g in gateways {
            let o = weft(&["plan", "-c", &example(file), "--gateway", g]);
            assert_eq!(o.status.code(), Some(0), "{file} {g}: {}", stderr(&o));
            let out = stdout(&o);
            assert!(out.starts_with(&format!("gateway {g} at site")), "{out}");
            assert!(out.contains("WireGuard peers (3)"), "{out}");
            assert!(out.contains("Routes of shop/prod"), "{out}");
        }
    }
    let o = weft(&[
        "plan",
        "-c",
        &example("multicloud.toml"),
        "--gateway",
        "aws-gw",
    ]);
    let out = stdout(&o);
    assert!(out.contains("rtb-0a1b2c3d4e5f60711"), "{out}");
    assert!(out.contains("tagged weft/network=shop-staging"), "{out}");
    let o = weft(&["plan", "-c", &example("lab.toml"), "--gateway", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no gateway named `nope`"));
}

#[test]
fn parity_exit_codes() {
    let o = weft(&[
        "parity",
        "shop/prod",
        "shop/staging",
        "-c",
        &example("lab.toml"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("identical: shop/prod and shop/staging"));
    let o = weft(&[
        "parity",
        "shop/prod",
        "media/prod",
        "-c",
        &example("lab.toml"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("azure-lab"), "{}", stdout(&o));
}

#[test]
fn keygen_writes_a_0600_file_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("wg.key");
    let o = weft(&["keygen", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let public = stdout(&o).trim().to_owned();
    assert_eq!(public.len(), 44);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(
        !stdout(&o).contains(private.trim()),
        "the private key is never printed"
    );
    let derived =
        weft_config::PublicKey::from_private(&weft_config::PrivateKey::parse(&private).unwrap());
    assert_eq!(derived.to_string(), public);

    let o = weft(&["keygen", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        private,
        "existing key untouched"
    );
}

/// A copy of the lab example with its key files, in a temporary directory.
fn lab_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::copy(example("lab.toml"), &config).unwrap();
    std::fs::create_dir(dir.path().join("lab-keys")).unwrap();
    for g in ["aws-gw", "azure-gw", "gcp-gw", "onprem-gw"] {
        let to = dir.path().join("lab-keys").join(format!("{g}.key"));
        std::fs::copy(
            Path::new(&example("lab-keys")).join(format!("{g}.key")),
            &to,
        )
        .unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, config)
}

#[test]
fn validate_for_a_gateway_checks_its_key_file() {
    let (dir, config) = lab_copy();
    let o = weft(&[
        "validate",
        "-c",
        config.to_str().unwrap(),
        "--gateway",
        "aws-gw",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let key = dir.path().join("lab-keys/aws-gw.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = weft(&[
        "validate",
        "-c",
        config.to_str().unwrap(),
        "--gateway",
        "aws-gw",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("has mode 0644; a private key file must be 0600"),
        "{err}"
    );
    assert!(
        err.contains("key:      gateways.aws-gw.private_key_file"),
        "{err}"
    );

    // The key of another gateway: the mismatch is caught, and no private key is printed.
    std::fs::copy(dir.path().join("lab-keys/gcp-gw.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = weft(&[
        "validate",
        "-c",
        config.to_str().unwrap(),
        "--gateway",
        "aws-gw",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("belongs to public key SFXDju7JWCeHt1pQHvSmxkxTaOtzWQn5sVrlUZrKxiw="),
        "{err}"
    );
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(!err.contains(private.trim()));
}

#[test]
fn schema_validates_both_examples() {
    let o = weft(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("weft schema is a valid JSON Schema");
    for file in ["lab.toml", "multicloud.toml"] {
        let table: toml::Table =
            toml::from_str(&std::fs::read_to_string(example(file)).unwrap()).unwrap();
        let instance = serde_json::to_value(table).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // And it is not a schema that accepts anything.
    let wrong = serde_json::json!({"overlay": {"name": 1}, "sites": {"x": {"kind": "amazon"}}});
    assert!(validator.iter_errors(&wrong).count() >= 3);
}
