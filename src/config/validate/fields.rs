//! Checks shared by every section: non-empty and unique names, counts, socket addresses and
//! durations.

use super::super::duration;
use super::Validator;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

impl Validator {
    /// Reports each name used before in the same list, pointing at the first use. `names` are
    /// the list's items that were read, with their indexes. Empty names are reported on their
    /// own and not again here.
    pub(super) fn unique_names<'a>(
        &mut self,
        list: &str,
        what: &str,
        names: impl Iterator<Item = (usize, &'a String)>,
    ) {
        let mut first_use: HashMap<&str, usize> = HashMap::new();
        for (index, name) in names {
            if name.is_empty() {
                continue;
            }
            if let Some(first) = first_use.get(name.as_str()) {
                self.error(
                    format!("{list}[{index}].name"),
                    format!("duplicate {what} name {name:?}; {list}[{first}] already uses it"),
                );
            } else {
                first_use.insert(name, index);
            }
        }
    }

    pub(super) fn non_empty(&mut self, field: impl Into<String>, value: &str) {
        if value.is_empty() {
            self.error(field, "must not be empty");
        }
    }

    pub(super) fn at_least_one(&mut self, field: String, value: u32) -> u32 {
        if value == 0 {
            self.error(field, "must be at least 1");
        }
        value
    }

    pub(super) fn socket_address(&mut self, field: String, text: &str) -> Option<SocketAddr> {
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.error(
                field,
                format!(
                    "invalid socket address {text:?}; write IP:port such as 127.0.0.1:8080 or \
                     [::1]:8080 (host names are not resolved)"
                ),
            );
        }
        parsed
    }

    /// A duration that must be positive, since a zero timeout or interval would fire at once,
    /// and at most `max`, since timers and deadlines are added to the clock and must not
    /// overflow it (and a timeout of years is a typo, not a setting).
    pub(super) fn timeout(
        &mut self,
        field: String,
        text: Option<&str>,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let Some(text) = text else { return default };
        match duration::parse(text) {
            Ok(Duration::ZERO) => {
                self.error(field, "must be longer than zero");
                default
            }
            Ok(duration) if duration > max => {
                self.error(field, too_long(text, max));
                default
            }
            Ok(duration) => duration,
            Err(message) => {
                self.error(field, message);
                default
            }
        }
    }
}

/// Why a duration over its field's `max` is refused.
pub(super) fn too_long(text: &str, max: Duration) -> String {
    format!(
        "{text} is longer than this can be; the most is {}",
        duration::display(max)
    )
}
