//! The dependency rules between top-level modules, as `docs/architecture.md` states them, hold in
//! the code: no module imports one it may not, and the rules themselves have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Rules = BTreeMap<String, BTreeSet<String>>;

/// The rules: under the heading "## Dependency rules", one line per module,
/// "- `module`: `allowed`, `allowed`" (or "nothing").
fn documented_rules() -> Rules {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md"))
        .expect("docs/architecture.md");
    let section = doc
        .split("\n## Dependency rules\n")
        .nth(1)
        .expect("docs/architecture.md has a \"## Dependency rules\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rules = Rules::new();
    for line in section.lines() {
        let Some(rule) = line.strip_prefix("- `") else {
            continue;
        };
        let (module, allowed) = rule.split_once("`:").expect("- `module`: ...");
        let allowed = allowed.split('`').skip(1).step_by(2).map(str::to_owned);
        rules.insert(module.to_owned(), allowed.collect());
    }
    assert!(
        !rules.is_empty(),
        "no rule found under \"## Dependency rules\""
    );
    rules
}

/// Every `crate::x` a top-level module's files name, outside comments.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = top.trim_end_matches(".rs");
        // The library's root and the binary name modules, they are not one.
        if module == "lib" || module == "main" {
            continue;
        }
        let named = imports.entry(module.to_owned()).or_default();
        let code: String = (std::fs::read_to_string(&path).unwrap().lines())
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            // `crate::{a, b::c}` names several modules at once.
            let targets: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => (group[..group.find('}').unwrap_or(group.len())].split(','))
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for target in targets {
                let end = target
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(target.len());
                let target = &target[..end];
                if !target.is_empty() && target != module {
                    named.insert(target.to_owned());
                }
            }
        }
    }
    imports
}

#[test]
fn every_top_level_module_imports_only_what_the_architecture_allows() {
    let rules = documented_rules();
    let mut broken = Vec::new();
    for (module, named) in imports() {
        let Some(allowed) = rules.get(&module) else {
            broken.push(format!("`{module}` has no rule in docs/architecture.md"));
            continue;
        };
        for target in named.difference(allowed) {
            broken.push(format!(
                "`{module}` imports `{target}`, which its rule does not allow"
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_dependency_rules_have_no_cycle() {
    let rules = documented_rules();
    // Kahn's algorithm: peel off modules whose every allowed import is already peeled off.
    let mut placed = BTreeSet::new();
    loop {
        let ready: Vec<&String> = (rules.iter())
            .filter(|(module, allowed)| {
                !placed.contains(*module)
                    && allowed
                        .iter()
                        .all(|target| placed.contains(target) || !rules.contains_key(target))
            })
            .map(|(module, _)| module)
            .collect();
        if ready.is_empty() {
            break;
        }
        placed.extend(ready.into_iter().cloned());
    }
    let cyclic: Vec<&String> = rules
        .keys()
        .filter(|module| !placed.contains(*module))
        .collect();
    assert!(
        cyclic.is_empty(),
        "these modules' rules form a cycle: {cyclic:?}"
    );
    for (module, allowed) in &rules {
        for target in allowed {
            assert!(
                rules.contains_key(target),
                "`{module}` may import `{target}`, which has no rule"
            );
        }
    }
}
