//! The `admin` and `access_log` sections.

use super::super::model::*;
use super::super::schema::*;
use super::frontends::listen_clash;
use super::{Validator, UNPARSED_ADDRESS};

impl Validator {
    pub(super) fn admin(&mut self, spec: AdminSpec, frontends: &[Frontend]) -> Admin {
        let listen = self
            .socket_address("admin.listen".to_owned(), &spec.listen)
            .unwrap_or(UNPARSED_ADDRESS);
        if let Some(other) = listen_clash(listen, frontends) {
            self.error(
                "admin.listen",
                format!(
                    "listen address {listen} is taken by frontend {:?} on {}",
                    other.name, other.listen
                ),
            );
        }
        let token = (spec.token_file.as_deref()).and_then(|file| self.admin_token(file));
        let socket = (spec.socket.as_deref()).map(|path| self.admin_socket(path));
        Admin {
            listen,
            token,
            socket,
        }
    }

    pub(super) fn access_log(&mut self, spec: AccessLogSpec) -> AccessLog {
        let format = self.log_format(spec.format.unwrap_or(LogFormatSpec::Json));
        let syslog = spec.syslog.map(|syslog| self.syslog(syslog));
        let target = match spec.path.as_deref() {
            None if syslog.is_some() => LogTarget::SyslogOnly,
            None | Some("stdout") => LogTarget::Stdout,
            Some(path) if std::path::Path::new(path).is_absolute() => LogTarget::File(path.into()),
            Some(path) => {
                self.error(
                    "access_log.path",
                    format!("{path:?} is neither `stdout` nor an absolute path"),
                );
                LogTarget::Stdout
            }
        };
        AccessLog {
            format,
            target,
            syslog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::model::*;
    use super::super::test_support::*;

    #[test]
    fn reads_admin_and_access_log() {
        let text = one_backend("")
            + "admin: { listen: 127.0.0.1:9900 }\naccess_log: { format: text, path: /var/log/t.log }\n";
        let config = valid(&text);
        assert_eq!(
            config.admin,
            Some(Admin {
                listen: "127.0.0.1:9900".parse().unwrap(),
                token: None,
                socket: None,
            })
        );
        assert_eq!(
            config.access_log,
            Some(AccessLog {
                format: LogFormat::Text,
                target: LogTarget::File("/var/log/t.log".into()),
                syslog: None,
            })
        );
        let defaults = valid(&(one_backend("") + "access_log: {}\n"));
        assert_eq!(
            defaults.access_log,
            Some(AccessLog {
                format: LogFormat::Json,
                target: LogTarget::Stdout,
                syslog: None,
            })
        );
    }

    #[test]
    fn rejects_a_clashing_admin_address_and_a_relative_log_path() {
        let text = one_backend("")
            + "admin: { listen: 0.0.0.0:80 }\naccess_log: { path: logs/access.log }\n";
        assert_eq!(
            problems(&text),
            [
                "admin.listen: listen address 0.0.0.0:80 is taken by frontend \"f\" on 127.0.0.1:80",
                "access_log.path: \"logs/access.log\" is neither `stdout` nor an absolute path",
            ]
        );
    }
}
