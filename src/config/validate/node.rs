//! The `node` and `log` sections: what the process itself runs with.

use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use std::time::Duration;

/// Each worker is a runtime with its own listener per frontend and its own upstream pool, so
/// threads cost file descriptors and memory; past a thousand, start-up fails on those limits
/// (or on spawning at all) rather than gaining anything, and no CPU this runs on has more.
const MAX_THREADS: usize = 1024;
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// A drain that takes a day is an outage, not a hand-over.
const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

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
        } else if threads > MAX_THREADS {
            self.error(
                "node.threads",
                format!(
                    "{threads} threads is more than {MAX_THREADS}, the most tandem runs; leave \
                     it out to use one per CPU"
                ),
            );
        }
        let shutdown_timeout = self.timeout(
            "node.shutdown_timeout".to_owned(),
            spec.shutdown_timeout.as_deref(),
            DEFAULT_SHUTDOWN_TIMEOUT,
            MAX_SHUTDOWN_TIMEOUT,
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
