//! What the README promises about the code, checked against the code: the
//! "Audit" paragraph names every event authmd records.

use crate::model::EventName;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The paragraph of the README that starts with `**{title}.**`.
fn paragraph(readme: &str, title: &str) -> String {
    let start = readme
        .find(&format!("**{title}.**"))
        .unwrap_or_else(|| panic!("README has no **{title}.** paragraph"));
    let rest = &readme[start..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
}

#[test]
fn the_audit_paragraph_names_every_event() {
    let audit = paragraph(&readme(), "Audit");
    let missing: Vec<&str> = EventName::ALL
        .iter()
        .map(|e| e.as_str())
        .filter(|name| !audit.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "README's Audit paragraph lacks {missing:?}");
}
