//! Stamps the binary with the commit it was built from, for `tandem --version`: git's short hash,
//! `-dirty` when the files the binary is built from differ from it, or "unknown commit" outside a git checkout of this
//! crate (a crates.io tarball, a source export), where building must not fail.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the binary is built from: what `-dirty` looks at, and what reruns this script. An edit
/// elsewhere (the README, deploy/) neither reruns it nor should mark the binary.
const SOURCES: [&str; 4] = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = match own_checkout(&manifest_dir) {
        Some(git_dir_files) => {
            // A new commit or checkout moves HEAD or the branch's ref; an edit to the sources
            // can make the tree dirty (or clean again).
            for path in git_dir_files {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            for path in SOURCES {
                println!("cargo:rerun-if-changed={path}");
            }
            commit(&manifest_dir).unwrap_or_else(|| "unknown commit".to_owned())
        }
        None => {
            println!("cargo:rerun-if-changed=build.rs");
            "unknown commit".to_owned()
        }
    };
    println!("cargo:rustc-env=TANDEM_COMMIT={commit}");
}

/// The git files that say which commit is checked out, when `dir` is the top of a git work
/// tree; `None` otherwise, so a crate unpacked inside some other repository doesn't take that
/// repository's commit. Only paths that exist: cargo reruns a build script on every build while
/// a path it watches is missing.
fn own_checkout(dir: &Path) -> Option<Vec<PathBuf>> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let mut files = vec![git_path(dir, "HEAD")?, git_path(dir, "packed-refs")?];
    if let Some(branch) = git(dir, &["symbolic-ref", "--quiet", "HEAD"]) {
        let loose = git_path(dir, &branch)?;
        // A packed ref has no file of its own until the next commit writes one: watch its
        // directory until then (only then: other worktrees' branches live there too).
        match loose.exists() {
            true => files.push(loose),
            false => files.extend(loose.parent().map(Path::to_path_buf)),
        }
    }
    files.retain(|path| path.exists());
    Some(files)
}

/// Where git keeps `name` (a worktree keeps HEAD apart from the shared refs).
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-path", name],
    )
    .map(PathBuf::from)
}

fn commit(dir: &Path) -> Option<String> {
    let hash = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend(SOURCES);
    let changes = git(dir, &status)?;
    Some(match changes.is_empty() {
        true => hash,
        false => format!("{hash}-dirty"),
    })
}

/// git's trimmed output, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // `git status` would otherwise take the index lock to refresh it, and could make a
        // concurrent git command of the user's fail.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}
