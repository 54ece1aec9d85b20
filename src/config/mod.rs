//! Configuration: the YAML file schema, its validation, and the validated model.
//!
//! Loading reports every error at once: every unknown key; the first missing key or wrong type
//! of each recovery unit (see `recover`); and the semantic errors of every unit that could be
//! read. Only broken YAML, or a problem outside every unit, stops it early. Loading is a plain
//! function with no runtime: a caller on an async runtime runs it on a blocking thread.

mod duration;
mod error;
pub mod log_template;
pub mod model;
mod recover;
pub mod rules;
mod schema;
mod size;
mod validate;
mod yaml;

pub use duration::display as display_duration;
pub use error::{ConfigError, ConfigErrors};
pub use log_template::{HeaderSide, LogField, LogPiece, LogTemplate};
pub use model::*;
pub use rules::{ErrorPage, ErrorPages, RuleSet};

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest config file read: far above any real one (the shipped example is a few KiB), and
/// small enough that a wrong path such as `/dev/zero` fails at once instead of filling memory.
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// Reads, parses and validates a config file, reporting every error found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_source(path).map(|(config, _)| config)
}

/// `load`, also returning what places later errors about the config (a certificate file that
/// won't load, say) at the field they concern.
pub fn load_with_source(path: &Path) -> Result<(Config, Source), ConfigErrors> {
    let text = read(path)?;
    parse_with_source(&text, path)
}

/// A loaded config file, to place errors found after validation.
pub struct Source {
    file: PathBuf,
    locator: yaml::Locator,
}

impl Source {
    /// `message` about `field` (a path such as `frontends[0].tls.certificates[1].key`), placed
    /// where the field is written.
    pub fn error(&self, field: String, message: String) -> ConfigError {
        let position = self.locator.locate(&field);
        ConfigError {
            file: self.file.clone(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            field,
            message,
        }
    }
}

/// The file's text, at most `MAX_FILE_SIZE` bytes of UTF-8.
fn read(path: &Path) -> Result<String, ConfigErrors> {
    let whole_file = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message,
        }])
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
        .map_err(|error| whole_file(format!("cannot read the config file: {error}")))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(whole_file(format!(
            "the config file is larger than {} MiB; is this the right file?",
            MAX_FILE_SIZE >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).expect("valid_up_to ends the valid prefix");
        let position = yaml::position_after(valid);
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: Some(position.line),
            column: Some(position.column),
            field: String::new(),
            message: "not valid UTF-8; a config file is UTF-8 text".to_owned(),
        }])
    })
}

/// Parses and validates config text; `file` names it in errors, and relative paths in it are
/// taken from its directory.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    parse_with_source(text, file).map(|(config, _)| config)
}

fn parse_with_source(text: &str, file: &Path) -> Result<(Config, Source), ConfigErrors> {
    // A byte-order mark only says the file is UTF-8 (editors on Windows write one), and no
    // editor counts it as a column; yaml_serde would take it for a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let source = Source {
        file: file.to_path_buf(),
        locator: yaml::Locator::new(text),
    };
    let read = yaml::deserialize::<schema::FileSpec>(text, &source.locator, schema::known_keys);
    let mut errors: Vec<ConfigError> = (read.errors.into_iter())
        .map(|error| ConfigError {
            file: file.to_path_buf(),
            line: error.position.map(|p| p.line),
            column: error.position.map(|p| p.column),
            field: error.field,
            message: error.message,
        })
        .collect();
    if let Some(spec) = read.value {
        // Relative certificate paths are the config file's neighbours, wherever tandem was
        // started.
        let directory = (file.parent())
            .filter(|directory| !directory.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(directory).unwrap_or_else(|_| directory.to_path_buf());
        match validate::validate(spec, &base) {
            Ok(config) if errors.is_empty() => return Ok((config, source)),
            Ok(_) => {}
            Err(semantic) => errors.extend(
                (semantic.into_iter()).map(|error| source.error(error.field, error.message)),
            ),
        }
    }
    // Stable, so errors on one spot keep the order they were found in.
    errors.sort_by_key(|error| (error.line, error.column));
    Err(ConfigErrors(errors))
}
