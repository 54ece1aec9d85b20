//! What the package ships besides the binary: the man pages and completions generated from
//! the command line, and the unit's hardening.
//! deploy/test-deb.sh installs the built package itself (as root; .ci/run runs it in CI).

mod support;

use std::path::Path;
use std::process::Command;

use support::edge::installed;
use support::tandem_binary;

/// The most `systemd-analyze security` may score the unit: issue 20 asks for 3.0 or less.
const MOST_EXPOSURE: f64 = 3.0;

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// The subcommands `tandem --help` lists, but `help`.
fn subcommands() -> Vec<String> {
    let help = run(Command::new(tandem_binary()).arg("--help"));
    let listed = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section");
    let names: Vec<String> = (listed.lines())
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.iter().any(|name| name == "run"), "{help}");
    names
}

#[test]
fn man_pages_and_completions_cover_every_subcommand_but_the_hidden_one() {
    let out = tempfile::tempdir().unwrap();
    run(Command::new(tandem_binary())
        .arg("generate")
        .arg("--out")
        .arg(out.path()));
    let man = out.path().join("man");
    let completions = out.path().join("completions");
    let main_page = std::fs::read_to_string(man.join("tandem.1")).unwrap();
    assert!(main_page.contains("/etc/tandem/tandem.yaml"), "{main_page}");
    for name in subcommands() {
        let page = std::fs::read_to_string(man.join(format!("tandem-{name}.1")))
            .unwrap_or_else(|error| panic!("man page of `tandem {name}`: {error}"));
        assert!(page.contains(".SH SYNOPSIS"), "{page}");
        assert!(
            main_page.contains(&format!("tandem\\-{name}(1)")),
            "{main_page}"
        );
        for file in ["tandem.bash", "_tandem", "tandem.fish"] {
            let script = std::fs::read_to_string(completions.join(file)).unwrap();
            assert!(script.contains(&name), "{file} lacks {name}");
        }
    }
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert!(
        !pages.iter().any(|page| page.contains("generate")),
        "{pages:?}"
    );
    for file in ["tandem.bash", "_tandem", "tandem.fish"] {
        let script = std::fs::read_to_string(completions.join(file)).unwrap();
        assert!(
            !script.contains("generate"),
            "{file} offers the hidden subcommand"
        );
    }
}

#[test]
fn the_bash_completion_completes_a_subcommand() {
    let out = tempfile::tempdir().unwrap();
    run(Command::new(tandem_binary())
        .arg("generate")
        .arg("--out")
        .arg(out.path()));
    let script = out.path().join("completions/tandem.bash");
    let completed = run(Command::new("bash").arg("-c").arg(format!(
        "source {} && COMP_WORDS=(tandem st) COMP_CWORD=1 && _tandem tandem st tandem && echo \"${{COMPREPLY[*]}}\"",
        script.display()
    )));
    assert_eq!(completed.trim(), "status");
}

#[test]
fn the_unit_is_hardened_to_an_exposure_of_at_most_3() {
    if !installed("systemd-analyze", "systemd") {
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tandem.service");
    let report = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for tandem.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{report}"));
    assert!(
        exposure <= MOST_EXPOSURE,
        "tandem.service scores {exposure}, above {MOST_EXPOSURE}:\n{report}"
    );
}
