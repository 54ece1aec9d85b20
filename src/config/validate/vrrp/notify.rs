//! `notify:` hooks, on `vrrp:` for every instance or on one: a program with arguments, checked
//! at load (and so at every reload) to be an absolute path to an executable file.

use super::super::super::duration;
use super::super::super::model::*;
use super::super::super::schema::*;
use super::super::fields::too_long;
use super::super::Validator;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

/// How long a hook may run when `timeout` is left out.
const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// A hook runs once per transition; one that needs longer than this is a daemon, not a hook.
const MAX_NOTIFY_TIMEOUT: Duration = Duration::from_secs(3600);

impl Validator {
    /// One `notify:` mapping at `at`; `None` when it is invalid (reported).
    pub(super) fn notify(&mut self, at: &str, spec: NotifySpec) -> Option<Notify> {
        let timeout = match spec.timeout.as_deref() {
            None => Some(DEFAULT_NOTIFY_TIMEOUT),
            Some(text) => match duration::parse(text) {
                Ok(timeout) if timeout.is_zero() => {
                    self.error(format!("{at}.timeout"), "must be more than 0");
                    None
                }
                Ok(timeout) if timeout > MAX_NOTIFY_TIMEOUT => {
                    self.error(format!("{at}.timeout"), too_long(text, MAX_NOTIFY_TIMEOUT));
                    None
                }
                Ok(timeout) => Some(timeout),
                Err(message) => {
                    self.error(format!("{at}.timeout"), message);
                    None
                }
            },
        };
        let mut command = spec.command.into_iter();
        let Some(program) = command.next() else {
            self.error(
                format!("{at}.command"),
                "names no program; give its absolute path and any arguments, e.g. \
                 [/usr/local/bin/on-vrrp, --site, a]",
            );
            return None;
        };
        let program = self.executable(&format!("{at}.command[0]"), program)?;
        Some(Notify {
            program,
            args: command.collect(),
            timeout: timeout?,
        })
    }

    /// An absolute path to an executable regular file; `None` when it is not one (reported).
    fn executable(&mut self, field: &str, text: String) -> Option<PathBuf> {
        let path = PathBuf::from(&text);
        if !path.is_absolute() {
            self.error(
                field,
                format!(
                    "{text:?} is not an absolute path: hooks run without a shell or PATH \
                     lookup; give the full path, e.g. /usr/local/bin/{text}"
                ),
            );
            return None;
        }
        let problem = match std::fs::metadata(&path) {
            Err(error) => Some(format!("{text} cannot be used: {error}")),
            Ok(metadata) if !metadata.is_file() => Some(format!("{text} is not a file")),
            Ok(metadata) if metadata.permissions().mode() & 0o111 == 0 => Some(format!(
                "{text} is not executable; chmod +x it, or give the interpreter first, e.g. \
                 [/bin/sh, {text}]"
            )),
            Ok(_) => None,
        };
        match problem {
            Some(message) => {
                self.error(field, message);
                None
            }
            None => Some(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::*;

    /// `/bin/true` stands for any executable: coreutils is on every Debian system.
    #[test]
    fn reads_a_hook_with_its_arguments_and_timeout() {
        let config = valid(&instance(
            ", notify: { command: [/bin/true, --site, a], timeout: 3s }",
        ));
        assert_eq!(
            config.vrrp[0].notify,
            Some(Notify {
                program: "/bin/true".into(),
                args: vec!["--site".into(), "a".into()],
                timeout: Duration::from_secs(3),
            })
        );
    }

    #[test]
    fn an_instance_takes_the_vrrp_hook_unless_it_has_its_own() {
        let text = vrrp(&[
            "name: A, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.10/24]",
            "name: B, interface: eth0, virtual_router_id: 2, virtual_ips: [198.51.100.11/24], \
             notify: { command: [/bin/false] }",
        ]) + "  notify: { command: [/bin/true, all] }\n";
        let config = valid(&text);
        let hook = |index: usize| config.vrrp[index].notify.clone().unwrap();
        assert_eq!(hook(0).program, Path::new("/bin/true"));
        assert_eq!(hook(0).args, ["all"]);
        assert_eq!(hook(0).timeout, Duration::from_secs(10));
        assert_eq!(hook(1).program, Path::new("/bin/false"));
        assert!(hook(1).args.is_empty());
        assert_eq!(valid(&instance("")).vrrp[0].notify, None);
    }

    #[test]
    fn rejects_hooks_that_cannot_run() {
        let problem = |notify: &str| problems(&instance(&format!(", notify: {notify}")));
        assert_eq!(
            problem("{ command: [] }"),
            [
                "vrrp.instances[0].notify.command: names no program; give its absolute path and \
              any arguments, e.g. [/usr/local/bin/on-vrrp, --site, a]"
            ]
        );
        let relative = problem("{ command: [on-vrrp] }");
        assert!(
            relative[0].starts_with(
                "vrrp.instances[0].notify.command[0]: \"on-vrrp\" is not an absolute path"
            ),
            "{relative:?}"
        );
        let missing = problem("{ command: [/nonexistent/on-vrrp] }");
        assert_eq!(
            missing,
            [
                "vrrp.instances[0].notify.command[0]: /nonexistent/on-vrrp cannot be used: No \
              such file or directory (os error 2)"
            ]
        );
        assert_eq!(
            problem("{ command: [/etc] }"),
            ["vrrp.instances[0].notify.command[0]: /etc is not a file"]
        );
        let not_executable = problem("{ command: [/etc/passwd] }");
        assert!(
            not_executable[0]
                .starts_with("vrrp.instances[0].notify.command[0]: /etc/passwd is not executable"),
            "{not_executable:?}"
        );
        assert_eq!(
            problem("{ command: [/bin/true], timeout: 0s }"),
            ["vrrp.instances[0].notify.timeout: must be more than 0"]
        );
        let top = problems(&(instance("") + "  notify: { command: [bin/x] }\n"));
        assert!(
            top[0].starts_with("vrrp.notify.command[0]: \"bin/x\" is not an absolute path"),
            "{top:?}"
        );
    }
}
