//! `parity`: identical twins are proven identical; one edited prefix is named.

use std::path::Path;

use weft_config::Loader;
use weft_gateway::parity::{ParityError, parity};

fn example_text(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/examples")
            .join(name),
    )
    .unwrap()
}

fn load_text(text: &str) -> weft_config::Intent {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.toml");
    std::fs::write(&path, text).unwrap();
    Loader::new()
        .env_prefix(None)
        .file(&path)
        .load()
        .expect("valid")
}

#[test]
fn staging_is_prods_twin_in_both_examples() {
    for example in ["lab.toml", "multicloud.toml"] {
        let report = parity(
            &load_text(&example_text(example)),
            "shop/prod",
            "shop/staging",
        )
        .unwrap();
        assert!(report.identical(), "{example}: {report}");
        assert_eq!(report.sites.len(), 4);
        assert!(
            report.compared > 40,
            "{example}: compared only {}",
            report.compared
        );
    }
}

#[test]
fn an_edited_staging_prefix_is_named() {
    let text = example_text("lab.toml");
    let edited = text.replacen(
        "[attachments.\"shop/staging\".gcp-lab]\nprefixes = [\"10.10.3.0/24\"",
        "[attachments.\"shop/staging\".gcp-lab]\nprefixes = [\"10.10.9.0/24\"",
        1,
    );
    assert_ne!(text, edited, "the example changed shape; update this test");
    let report = parity(&load_text(&edited), "shop/prod", "shop/staging").unwrap();
    assert!(!report.identical());
    let at_gcp = report
        .differences
        .iter()
        .find(|d| d.place == "gcp-lab" && d.aspect == "prefixes")
        .expect("the prefix difference at gcp-lab is reported");
    assert_eq!(at_gcp.only_in_a, ["10.10.3.0/24"]);
    assert_eq!(at_gcp.only_in_b, ["10.10.9.0/24"]);
    // Every other site routes to that prefix, so their routes differ too.
    for site in ["aws-lab", "azure-lab", "onprem"] {
        assert!(
            report
                .differences
                .iter()
                .any(|d| d.place == site && d.aspect == "routes"),
            "{site}: {report}"
        );
    }
    assert!(
        report
            .to_string()
            .contains("only in shop/staging: 10.10.9.0/24")
    );
}

#[test]
fn unknown_networks_are_errors() {
    let intent = load_text(&example_text("lab.toml"));
    assert_eq!(
        parity(&intent, "shop/prod", "shop/dev").unwrap_err(),
        ParityError::UnknownNetwork("shop/dev".into())
    );
}
