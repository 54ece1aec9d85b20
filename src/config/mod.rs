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

use std::path::Path;

/// Reads, parses and validates a config file, reporting every error found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the config file: {error}"),
        }])
    })?;
    parse(&text, path)
}

/// Parses and validates config text; `file` names it in errors, and relative paths in it are
/// taken from its directory.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    // A byte-order mark only says the file is UTF-8 (editors on Windows write one), and no
    // editor counts it as a column; yaml_serde would take it for a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
