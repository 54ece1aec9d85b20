//! Configuration: the YAML file schema, its validation, and the validated model.
//!
//! Loading stops at the first structural error (bad YAML, unknown or missing key, wrong type),
//! since nothing after it can be trusted, but reports every semantic error at once.

mod duration;
mod error;
pub mod model;
mod schema;
mod validate;
mod yaml;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;

use std::io::Read;
use std::path::Path;

/// The largest config file read: far above any real one (the shipped example is a few KiB), and
/// small enough that a wrong path such as `/dev/zero` fails at once instead of filling memory.
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// Reads, parses and validates a config file, reporting every error found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read(path)?;
    parse(&text, path)
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
    let spec: schema::FileSpec = yaml::deserialize(text).map_err(|error| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: error.position.map(|p| p.line),
            column: error.position.map(|p| p.column),
            field: error.field,
            message: error.message,
        }])
    })?;
    // Relative certificate paths are the config file's neighbours, wherever tandem was started.
    let directory = (file.parent())
        .filter(|directory| !directory.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(directory).unwrap_or_else(|_| directory.to_path_buf());
    validate::validate(spec, &base).map_err(|errors| {
        let locator = yaml::Locator::new(text);
        let mut errors: Vec<ConfigError> = errors
            .into_iter()
            .map(|error| {
                let position = locator.locate(&error.field);
                ConfigError {
                    file: file.to_path_buf(),
                    line: position.map(|p| p.line),
                    column: position.map(|p| p.column),
                    field: error.field,
                    message: error.message,
                }
            })
            .collect();
        // Stable, so errors on one spot keep the order validation found them in.
        errors.sort_by_key(|error| (error.line, error.column));
        ConfigErrors(errors)
    })
}
