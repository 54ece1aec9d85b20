//! The `node` and `log` sections: what the process itself runs with.

use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use std::time::Duration;

impl Validator {
    pub(super) fn node(&mut self, spec: NodeSpec) -> Node {
        self.non_empty("node.name", &spec.name);
        let threads = spec.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if threads == 0 {
            self.error(
                "node.threads",
                "must be at least 1; leave it out to use one per CPU",
            );
        }
        let shutdown_timeout = self.timeout(
            "node.shutdown_timeout".to_owned(),
            spec.shutdown_timeout.as_deref(),
            Duration::from_secs(30),
        );
        Node {
            name: spec.name,
            threads,
            shutdown_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn reads_the_log_level() {
        let text = format!("log: {{ level: debug }}\n{}", one_backend(""));
        assert_eq!(valid(&text).log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn rejects_an_empty_log_level() {
        let text = format!("log: {{ level: '' }}\n{}", one_backend(""));
        assert_eq!(
            problems(&text),
            ["log.level: must not be empty; leave it out for the default"]
        );
    }

    #[test]
    fn rejects_zero_threads() {
        let text = one_backend("").replace("name: n", "name: n, threads: 0");
        assert_eq!(
            problems(&text),
            ["node.threads: must be at least 1; leave it out to use one per CPU"]
        );
    }
}
