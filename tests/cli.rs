//! The command line as an operator uses it.

mod support;

use std::process::Command;

use support::tandem_binary;

const BROKEN: &str = "\
node: { name: lb-a }
frontends:
  - name: web
    listen: 127.0.0.1:8080
    mode: http
    backend: nowhere
backends:
  - name: pool
    servers:
      - { name: s1, address: \"127.0.0.1:99999\" }
";

#[test]
fn check_accepts_the_shipped_config() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tandem.yaml");
    let output = Command::new(tandem_binary())
        .args(["check", "--config", config])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok"));
}

#[test]
fn check_reports_every_error_with_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, BROKEN).unwrap();
    let output = Command::new(tandem_binary())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display().to_string();
    let backend_error = stderr
        .lines()
        .find(|l| l.contains("frontends[0].backend"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        backend_error.starts_with(&format!("{file}:6:")),
        "{backend_error}"
    );
    assert!(backend_error.contains("nowhere"), "{backend_error}");
    let address_error = stderr
        .lines()
        .find(|l| l.contains("backends[0].servers[0].address"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        address_error.starts_with(&format!("{file}:10:")),
        "{address_error}"
    );
    assert!(address_error.contains("127.0.0.1:99999"), "{address_error}");
}

#[test]
fn run_refuses_a_broken_config_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, BROKEN).unwrap();
    let output = Command::new(tandem_binary())
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("frontends[0].backend"));
}

#[test]
fn version_names_the_release() {
    let output = Command::new(tandem_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("tandem {}", env!("CARGO_PKG_VERSION"))
    );
}
