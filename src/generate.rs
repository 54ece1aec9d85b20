//! Man pages and shell completions, generated from the command line's own definition so they
//! never drift from it: `tandem generate --out DIR`, run by deploy/build-deb.sh.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap_complete::Shell;

/// What the main page says beyond the options: where a package puts things.
const FILES_SECTION: &str = r#".SH FILES
.TP
\fI/etc/tandem/tandem.yaml\fR
The configuration \fBtandem run\fR and \fBtandem check\fR read by default; every key is
described in the example installed there.
.TP
\fI/var/log/tandem/\fR
The access log of the packaged configuration; a SIGHUP reopens it.
.TP
\fI/lib/systemd/system/tandem.service\fR
The systemd unit: \fBsystemctl reload tandem\fR checks the file, then sends SIGHUP.
.SH SEE ALSO
\fI/usr/share/doc/tandem/README.md\fR
"#;

/// Writes `out/man/*.1` (one page per visible subcommand, at any depth) and
/// `out/completions/` (`tandem.bash`, `_tandem` for zsh, `tandem.fish`).
pub fn write(command: clap::Command, out: &Path) -> anyhow::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    clap_mangen::generate_to(command.clone(), &man)
        .with_context(|| format!("writing the man pages into {}", man.display()))?;
    let main_page = man.join(format!("{}.1", command.get_name()));
    fs::OpenOptions::new()
        .append(true)
        .open(&main_page)
        .and_then(|mut page| page.write_all(FILES_SECTION.as_bytes()))
        .with_context(|| format!("writing {}", main_page.display()))?;
    let mut completed = without_hidden_subcommands(&command);
    let name = command.get_name().to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut completed, &name, &completions)
            .with_context(|| format!("writing the {shell} completions"))?;
    }
    Ok(())
}

/// `command` without its hidden subcommands, such as `generate` itself: clap_complete offers
/// every subcommand, hidden or not. The completions need only the name, the version (for
/// `--version`), the arguments and the subcommands.
fn without_hidden_subcommands(command: &clap::Command) -> clap::Command {
    let mut visible = clap::Command::new(command.get_name().to_owned())
        .args(command.get_arguments().cloned())
        .subcommands(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        );
    if let Some(version) = command.get_version() {
        visible = visible.version(version.to_owned());
    }
    visible
}
