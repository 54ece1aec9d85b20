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
fn check_accepts_every_shipped_config() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            let output = Command::new(tandem_binary())
                .arg("check")
                .arg("--config")
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{}: {stderr}", path.display());
            assert!(String::from_utf8_lossy(&output.stdout).contains("ok"));
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "demo-node-a.yaml",
            "demo-node-b.yaml",
            "rules-example.yaml",
            "scale-out-node.yaml",
            "tandem.yaml",
            "vrrp-example.yaml"
        ]
    );
}

#[test]
fn check_takes_the_file_as_its_argument_too() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tandem.yaml");
    let check = |args: &[&str]| {
        Command::new(tandem_binary())
            .arg("check")
            .args(args)
            .output()
    };
    let output = check(&[shipped]).unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{shipped}: ok\n")
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, BROKEN).unwrap();
    let output = check(&[broken.to_str().unwrap()]).unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.yaml:"));
    let both = check(&[shipped, "--config", shipped]).unwrap();
    assert_eq!(
        both.status.code(),
        Some(2),
        "a file named twice is a usage error"
    );
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
fn check_reports_structural_and_semantic_errors_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    let text = BROKEN.replace("    mode: http\n", "    mode: http\n    colour: red\n")
        + "admin: { listen: nowhere }\nbackend: []\n";
    std::fs::write(&path, text).unwrap();
    let output = Command::new(tandem_binary())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display().to_string();
    let fields: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{file}:")))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .map(|rest| rest.split(": ").nth(1).unwrap_or(rest))
        .collect();
    assert_eq!(
        fields,
        [
            "frontends[0].colour",
            "frontends[0].backend",
            "backends[0].servers[0].address",
            "admin.listen",
            "backend"
        ],
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!("{file}: 5 error(s)\n")),
        "{stderr}"
    );
}

#[test]
fn check_places_certificate_file_errors_at_the_field_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["site.test".to_owned()]).unwrap();
    std::fs::write(dir.path().join("site.pem"), issued.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("site.key"),
        issued.signing_key.serialize_pem(),
    )
    .unwrap();
    // Relative paths are the config file's neighbours.
    let config = "\
node: { name: edge }
frontends:
  - name: edge
    listen: 127.0.0.1:8443
    mode: http
    backend: pool
    tls:
      certificates:
        - { cert: site.pem, key: site.key }
        - { cert: missing.pem, key: site.key }
        - { cert: site.pem, key: site.pem }
backends:
  - { name: pool, servers: [{ name: s1, address: 127.0.0.1:8080 }] }
";
    let path = dir.path().join("tandem.yaml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(tandem_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let file = path.display();
    let neighbour = |name: &str| dir.path().join(name).display().to_string();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{file}:10:19: frontends[0].tls.certificates[1].cert: {}: cannot read: No such file \
             or directory (os error 2)\n\
             {file}:11:34: frontends[0].tls.certificates[2].key: {}: no private key in it \
             (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)\n\
             {file}: 2 error(s)\n",
            neighbour("missing.pem"),
            neighbour("site.pem"),
        )
    );
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
fn version_names_the_release_and_the_commit() {
    let output = Command::new(tandem_binary())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&output.stdout);
    let root = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["-C", root, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success());
    let expected = match head {
        // The test binary and tandem are built together, from the same checkout.
        Some(head) => format!("({}", String::from_utf8_lossy(&head.stdout).trim()),
        None => "(unknown commit)".to_owned(),
    };
    let version = version.trim_end();
    assert!(
        version.starts_with(&format!("tandem {} ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(version.contains(&expected), "{version} lacks {expected}");
}

#[test]
fn status_with_a_broken_config_says_where_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.yaml");
    std::fs::write(&path, BROKEN).unwrap();
    let output = Command::new(tandem_binary())
        .args(["status", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tandem.yaml:6:"), "{stderr}");
    assert!(stderr.contains("pass --admin ADDRESS"), "{stderr}");
}
