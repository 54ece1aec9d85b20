//! The runtime API's keys of the `admin` section: the token file (read here, so that a
//! missing or empty one fails start-up or the reload at its key) and the unix socket.

use std::path::PathBuf;

use super::super::model::Token;
use super::Validator;

/// `sun_path` holds 108 bytes with the terminating NUL.
const SOCKET_PATH_MAX: usize = 107;

impl Validator {
    /// The bearer token in `file`, surrounding whitespace (a final newline) taken off.
    pub(super) fn admin_token(&mut self, file: &str) -> Option<Token> {
        let field = "admin.token_file";
        let path = self.file(field.to_owned(), file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                self.error(field, format!("cannot read {}: {error}", path.display()));
                return None;
            }
        };
        let secret = text.trim();
        if secret.is_empty() {
            self.error(
                field,
                format!("{} is empty: put the token in it", path.display()),
            );
            return None;
        }
        Some(Token {
            file: path,
            secret: secret.to_owned(),
        })
    }

    pub(super) fn admin_socket(&mut self, path: &str) -> PathBuf {
        let field = "admin.socket";
        let path = self.file(field.to_owned(), path);
        if path.as_os_str().len() > SOCKET_PATH_MAX {
            self.error(
                field,
                format!(
                    "{}: a unix socket path has at most {SOCKET_PATH_MAX} bytes",
                    path.display()
                ),
            );
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn reads_the_token_trimmed_and_takes_relative_paths_from_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let text = one_backend("")
            + &format!(
                "admin: {{ listen: 127.0.0.1:9900, token_file: {}, socket: run/t.sock }}\n",
                file.display()
            );
        let admin = valid(&text).admin.unwrap();
        let token = admin.token.unwrap();
        assert_eq!((token.file, token.secret.as_str()), (file, "s3cret"));
        assert_eq!(admin.socket, Some(Path::new(TEST_BASE).join("run/t.sock")));
        assert!(
            !format!("{token:?}", token = valid(&text).admin).contains("s3cret"),
            "the token is never printed"
        );
    }

    #[test]
    fn refuses_a_missing_or_empty_token_file_and_a_long_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let missing = dir.path().join("missing");
        let long = format!("/{}", "s".repeat(120));
        let admin = |file: &std::path::PathBuf, socket: &str| {
            one_backend("")
                + &format!(
                    "admin: {{ listen: 127.0.0.1:9900, token_file: {}, socket: {socket} }}\n",
                    file.display()
                )
        };
        let found = problems(&admin(&missing, "/run/t.sock"));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(&format!(
                "admin.token_file: cannot read {}: ",
                missing.display()
            )),
            "{found:?}"
        );
        assert_eq!(
            problems(&admin(&empty, &long)),
            [
                format!(
                    "admin.token_file: {} is empty: put the token in it",
                    empty.display()
                ),
                format!("admin.socket: {long}: a unix socket path has at most 107 bytes"),
            ]
        );
    }
}
