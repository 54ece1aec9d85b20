//! The runtime API's unix socket: made owner-only (0600) from the start, since reaching it is
//! the authentication; a stale file left by a tandem that is gone is replaced, a live one is
//! not.

use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use nix::sys::stat::{umask, Mode};

/// A socket file this process made, removed at exit if it is still the one.
pub struct Bound {
    path: PathBuf,
    inode: (u64, u64),
}

/// Listens on `path`.
pub fn bind(path: &Path) -> anyhow::Result<(UnixListener, Bound)> {
    match std::fs::symlink_metadata(path) {
        Ok(found) if found.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => bail!(
                "admin.socket: {} is in use: another tandem is listening on it",
                path.display()
            ),
            Err(_) => std::fs::remove_file(path)
                .with_context(|| format!("admin.socket: removing the stale {}", path.display()))?,
        },
        Ok(_) => bail!(
            "admin.socket: {} exists and is not a socket: not replacing it",
            path.display()
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => bail!("admin.socket: {}: {error}", path.display()),
    }
    // The umask makes the file owner-only as it is created, with no moment when others may
    // connect. It is the process's: at start-up no other thread makes files.
    let previous = umask(Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    umask(previous);
    let listener =
        listener.with_context(|| format!("admin.socket: cannot listen on {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let made = std::fs::symlink_metadata(path)?;
    let bound = Bound {
        path: path.to_owned(),
        inode: (made.dev(), made.ino()),
    };
    Ok((listener, bound))
}

impl Drop for Bound {
    /// Leaves alone a file another process has put there since.
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|found| (found.dev(), found.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn owner_only_replaces_a_stale_socket_refuses_a_live_one_or_a_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let (listener, bound) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let error = bind(&path).err().expect("a live socket");
        assert!(error.to_string().contains("is in use"), "{error}");
        drop(listener);
        std::mem::forget(bound);
        let (_listener, bound) = bind(&path).expect("the stale socket is replaced");
        drop(bound);
        assert!(!path.exists(), "removed at exit");
        std::fs::write(&path, "not a socket").unwrap();
        let error = bind(&path).err().expect("a regular file");
        assert!(error.to_string().contains("is not a socket"), "{error}");
        assert!(path.exists(), "left alone");
    }
}
