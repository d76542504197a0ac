//! The layout rules of issue 11 that a reader would otherwise have to check
//! by hand: no source file imports one that imports it back; every endpoint
//! path is spelled once (in `site::Endpoint::path`); only the SQLite backend
//! and the code that opens a database name `rusqlite`; only `http::server`
//! names `tiny_http`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/a/b.rs` -> `a::b`; `src/a/mod.rs` -> `a`.
fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules `text` (in module `module`) names by a `crate::` or `super::` path.
fn named(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        let path: String = text[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let mut base: Vec<&str> = Vec::new();
        match parts.first() {
            Some(&"crate") => {}
            Some(&"super") => {
                base = module.split("::").collect();
                base.pop();
            }
            _ => continue,
        }
        parts.remove(0);
        for take in (1..=parts.len()).rev() {
            let candidate = base
                .iter()
                .chain(&parts[..take])
                .cloned()
                .collect::<Vec<_>>()
                .join("::");
            if modules.contains(&candidate) {
                found.insert(candidate);
                break;
            }
        }
    }
    found
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .map(|p| (module_of(p, &src), std::fs::read_to_string(p).unwrap()))
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let uses: BTreeMap<&String, BTreeSet<String>> =
        texts.iter().map(|(m, text)| (m, named(m, text, &modules))).collect();
    let related = |a: &str, b: &str| {
        a.is_empty() || b.is_empty() || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
    };
    let mut cycles = Vec::new();
    for (a, named) in &uses {
        for b in named {
            if a.as_str() < b.as_str() && !related(a, b) && uses.get(b).is_some_and(|back| back.contains(*a)) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}

#[test]
fn every_endpoint_path_is_spelled_once() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // `/` (the home page) is every path's first character, not a spelling.
    for endpoint in crate::site::Endpoint::ALL.into_iter().filter(|e| e.path() != "/") {
        let quoted = format!("\"{}\"", endpoint.path());
        let spelled: Vec<String> = files
            .iter()
            .filter(|p| !p.ends_with("layout_tests.rs"))
            .flat_map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                // Outside tests: the part of the file before its test module.
                let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or("").to_string();
                let count = code.matches(&quoted).count();
                std::iter::repeat_n(p.display().to_string(), count)
            })
            .collect();
        assert_eq!(spelled.len(), 1, "{quoted} is spelled in {spelled:?}");
    }
}

/// Issue 11: only the SQLite backend and the layers that open a database
/// (the server's workers, CLI commands, the embedded guard) name the driver;
/// `core`, the flows, the wire modules and the rest go through `store::Tx`.
#[test]
fn only_the_backend_and_its_openers_name_the_driver() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let allowed = |module: &str| {
        module.starts_with("store::sqlite")
            || module.starts_with("cli")
            || ["http::server", "embed", "main"].contains(&module)
    };
    let mut offenders = Vec::new();
    for path in &files {
        let module = module_of(path, &src);
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
        if !allowed(&module) && module != "layout_tests" && code.contains("rusqlite") {
            offenders.push(module);
        }
    }
    assert!(offenders.is_empty(), "name rusqlite outside the backend: {offenders:?}");
}

/// The HTTP library stays at the edge: only `http::server` (and the module
/// headers that say so) name it.
#[test]
fn only_the_server_names_the_http_library() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut offenders = Vec::new();
    for path in &files {
        let module = module_of(path, &src);
        let text = std::fs::read_to_string(path).unwrap();
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        if module != "http::server" && module != "layout_tests" && code.contains("tiny_http") {
            offenders.push(module);
        }
    }
    assert!(
        offenders.is_empty(),
        "name tiny_http outside http::server: {offenders:?}"
    );
}
