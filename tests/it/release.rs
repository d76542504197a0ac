//! Installing authmd (issue 15): `--version`, the package as `cargo install`
//! from a registry would build it (the fixed HTTP server, never crates.io's
//! `tiny_http`), and the release tarball `scripts/release` makes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;

/// The checkout.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A target directory of its own beside the suite's (`target/debug/authmd`
/// -> `target/NAME`): a nested cargo must not wait on the outer one's lock,
/// and a second run reuses the first's build.
fn nested_target(name: &str) -> PathBuf {
    Path::new(common::BIN).parent().unwrap().parent().unwrap().join(name)
}

/// The suite's own target directory: the release build locks
/// `target/release`, not the `target/debug` the suite runs from, and reuses
/// what `scripts/release` built there before.
fn suite_target() -> PathBuf {
    Path::new(common::BIN).parent().unwrap().parent().unwrap().to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    without_the_suites_cargo_variables(&mut command);
    command
}

/// What cargo set for this test binary (`CARGO_PKG_*`, `CARGO_CRATE_NAME`,
/// ...) is not for a nested build: it would only make it differ from
/// `scripts/release` run by hand.
fn without_the_suites_cargo_variables(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" {
            command.env_remove(name);
        }
    }
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `version = "..."` of a manifest's `[package]` (its first `version` line).
fn manifest_version(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("a version line")
        .to_string()
}

#[test]
fn version_flags_print_the_package_version() {
    for flag in ["--version", "-V"] {
        // A clean environment: an AUTHMD_* variable (the suite's
        // AUTHMD_TEST_BACKEND) would get its warning on stderr.
        let out = Command::new(common::BIN).arg(flag).env_clear().output().unwrap();
        assert!(out.status.success(), "{flag}: {}", out.status);
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("authmd {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert!(
            out.stderr.is_empty(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Issue 15: the vendored HTTP server's fixes (vendor/README.md) were
/// applied by `[patch.crates-io]`, which `cargo install authmd` from a
/// registry ignores, building crates.io's tiny_http. The packaged manifest
/// (what a registry serves) must name the renamed, fixed crate at its exact
/// version, and the packaged lock must hold no `tiny_http` package.
#[test]
fn the_published_package_depends_on_the_fixed_http_server() {
    if common::sqlite_only("packaging does not depend on the store") {
        return;
    }
    let vendor_manifest = std::fs::read_to_string(root().join("vendor/tiny_http/Cargo.toml")).unwrap();
    assert!(
        vendor_manifest.contains("\nname = \"authmd-tiny-http\"\n"),
        "{vendor_manifest}"
    );
    let vendor_version = manifest_version(&vendor_manifest);

    let target = nested_target("package-check");
    let _ = std::fs::remove_dir_all(target.join("package"));
    run(cargo()
        .args(["package", "--offline", "--locked", "--no-verify", "--allow-dirty"])
        .args(["-p", "authmd-tiny-http", "-p", "authmd"])
        .arg("--target-dir")
        .arg(&target));

    let unpacked = tempfile::tempdir().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    for krate in [
        format!("authmd-{version}"),
        format!("authmd-tiny-http-{vendor_version}"),
    ] {
        run(Command::new("tar")
            .arg("xzf")
            .arg(target.join("package").join(format!("{krate}.crate")))
            .arg("-C")
            .arg(unpacked.path()));
    }
    let package = unpacked.path().join(format!("authmd-{version}"));
    let manifest = std::fs::read_to_string(package.join("Cargo.toml")).unwrap();
    let dependency = manifest
        .split("\n[")
        .find(|section| section.starts_with("dependencies.tiny_http]"))
        .unwrap_or_else(|| panic!("no tiny_http dependency in the packaged manifest:\n{manifest}"));
    assert!(
        dependency.contains("\npackage = \"authmd-tiny-http\"\n"),
        "the packaged manifest must name the fixed crate:\n[{dependency}"
    );
    assert!(
        dependency.contains(&format!("\nversion = \"={vendor_version}\"\n")),
        "exactly the vendored version ({vendor_version}):\n[{dependency}"
    );
    assert!(
        !manifest.contains("[patch"),
        "a [patch] means nothing in a package:\n{manifest}"
    );
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));

    let lock = std::fs::read_to_string(package.join("Cargo.lock")).unwrap();
    assert!(lock.contains("\nname = \"authmd-tiny-http\"\n"), "{lock}");
    assert!(
        !lock.contains("\nname = \"tiny_http\"\n"),
        "crates.io's tiny_http is in the packaged lock"
    );
    for file in ["LICENSE", "LICENSE-MIT", "LICENSE-APACHE", "README.md"] {
        assert!(package.join(file).is_file(), "{file} is not in the package");
    }

    // The fixed crate carries the fixes and keeps the library name the code uses.
    let vendor = unpacked.path().join(format!("authmd-tiny-http-{vendor_version}"));
    let packaged = std::fs::read_to_string(vendor.join("Cargo.toml")).unwrap();
    assert!(packaged.contains("[lib]\nname = \"tiny_http\""), "{packaged}");
    let client = std::fs::read_to_string(vendor.join("src/client.rs")).unwrap();
    assert!(client.contains("authmd patch"), "the packaged client.rs is upstream's");
    assert!(
        vendor.join("src/limits.rs").is_file(),
        "limits.rs (authmd's) is not packaged"
    );
}

/// `scripts/release` builds the tarball a VM installs from: its checksum
/// verifies, the binary in it runs, carries no symbol table, and needs
/// nothing dynamically but the C library. A release build: minutes the
/// first time.
#[test]
fn the_release_script_makes_a_verifiable_stripped_tarball() {
    if common::sqlite_only("the release build does not depend on the store") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dist = out.path().join("dist");
    let mut release = Command::new(root().join("scripts/release"));
    without_the_suites_cargo_variables(&mut release);
    run(release
        .arg(&dist)
        .current_dir(root())
        .env("CARGO_TARGET_DIR", suite_target()));

    let version = env!("CARGO_PKG_VERSION");
    let name = format!("authmd-{version}-x86_64-linux-gnu");
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert!(sums.ends_with(&format!("  {name}.tar.gz\n")), "{sums}");
    run(Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&dist));

    run(Command::new("tar")
        .arg("xzf")
        .arg(dist.join(format!("{name}.tar.gz")))
        .arg("-C")
        .arg(out.path()));
    let unpacked = out.path().join(&name);
    for file in [
        "LICENSE",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "README.md",
        "contrib/authmd.service",
        "contrib/authmd.env.example",
        "contrib/Caddyfile",
        "contrib/nginx.conf",
    ] {
        assert!(unpacked.join(file).is_file(), "{file} is not in the tarball");
    }
    let bin = unpacked.join("authmd");
    assert_eq!(run(Command::new(&bin).arg("--version")), format!("authmd {version}\n"));

    let sections = run(Command::new("readelf").arg("-S").arg(&bin));
    assert!(!sections.contains(".symtab"), "not stripped:\n{sections}");
    let dynamic = run(Command::new("readelf").arg("-d").arg(&bin));
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| line.split('[').nth(1)?.split(']').next())
        .collect();
    for lib in &needed {
        let base = lib.split(".so").next().unwrap();
        assert!(
            ["libc", "libm", "libgcc_s"].contains(&base) || base.starts_with("ld-linux"),
            "unexpected dynamic dependency {lib} (all: {needed:?})"
        );
    }
    assert!(needed.iter().any(|lib| lib.starts_with("libc.so")), "{needed:?}");
    let build_machine = root().to_string_lossy().into_owned();
    let binary = std::fs::read(&bin).unwrap();
    assert!(
        !binary
            .windows(build_machine.len())
            .any(|w| w == build_machine.as_bytes()),
        "the checkout's path {build_machine} is in the binary"
    );
}
