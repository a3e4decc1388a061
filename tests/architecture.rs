//! The layered architecture of `src/`, enforced: the layer table of `docs/architecture.md` is
//! read, the sources are scanned with `syn`, and every import must point down the table, no
//! folder may hold an import cycle, pure files stay pure and only `main.rs` exits.
//!
//! Why not an existing tool: `cargo-modules` finds cycles but has no layers; `archaven` has
//! neither cycles nor `#[cfg(test)]`; `bylaw` does both but builds rust-analyzer and loads the
//! whole dependency graph on every run; `arch_test_core` is unmaintained. The checker below is
//! small, reads only `src/`, and its own tests prove it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a panic is the failure report"
)]

#[path = "architecture/rules.rs"]
mod rules;
#[path = "architecture/scan.rs"]
mod scan;
#[path = "architecture/syntax.rs"]
mod syntax;

use std::path::Path;

use rules::{Violation, check, parse_layers};

fn violations_of(root: &Path, crate_name: &str, doc: &str) -> Vec<Violation> {
    let layers = parse_layers(doc).unwrap_or_else(|e| panic!("docs/architecture.md: {e}"));
    let krate = scan::scan(root, crate_name).unwrap_or_else(|e| panic!("reading the sources: {e}"));
    check(&krate, &layers)
}

#[test]
fn src_follows_the_layers_of_docs_architecture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc =
        std::fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let found = violations_of(root, "upgrade_guard", &doc);
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        list.is_empty(),
        "{} architecture violations (docs/architecture.md says how the layers work):\n{}",
        list.len(),
        list.join("\n")
    );
}

/// A tiny crate written into a temporary folder: (path, text) pairs, each file opening with
/// a `//!` line (so the text's line 1 is the file's line 2).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, format!("//! {path}\n{text}")).expect("write");
    }
    dir
}

const TWO_FLOORS: &str = "\
| floor | module | job | pure? |
|---|---|---|---|
| 1 | `low` | ground | pure except `io.rs` |
| 2 | `high/` | above | I/O; pure: `decide.rs` |
";

#[test]
fn an_import_that_points_up_names_file_line_and_both_floors() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod high;\n"),
        (
            "src/low.rs",
            "//! low\n\nuse crate::high::Thing;\npub fn f(_: Thing) {}\n",
        ),
        ("src/high/mod.rs", "pub struct Thing;\n"),
    ]);
    let found = violations_of(dir.path(), "x", TWO_FLOORS);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].starts_with(
            "src/low.rs:4: `low` (floor 1) imports `high` (floor 2) through `crate::high::Thing`"
        ),
        "{}",
        text[0]
    );
}

#[test]
fn a_cycle_between_files_of_a_folder_is_found_with_both_lines() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod high;\n"),
        ("src/low.rs", ""),
        (
            "src/high/mod.rs",
            "mod a;\nmod b;\npub struct Shared;\nfn go() { a::run() }\n",
        ),
        ("src/high/a.rs", "pub fn run() { super::b::helper() }\n"),
        (
            "src/high/b.rs",
            "\nuse super::Shared;\npub fn helper() -> Option<Shared> { None }\n",
        ),
    ]);
    let found = violations_of(dir.path(), "x", TWO_FLOORS);
    let [Violation::Cycle { folder, edges }] = &found[..] else {
        panic!("{found:#?}")
    };
    assert_eq!(folder, Path::new("src/high"));
    let hops: Vec<String> = edges
        .iter()
        .map(|e| format!("{}:{}", e.from.display(), e.line))
        .collect();
    assert_eq!(
        hops,
        ["src/high/a.rs:2", "src/high/b.rs:3", "src/high/mod.rs:5"]
    );
}

#[test]
fn a_cycle_between_two_top_level_modules_on_one_floor_is_found() {
    let doc = "| floor | module | job | pure? |\n|-|-|-|-|\n| 1 | `a` | x | pure |\n| 1 | `b` | y | pure |\n";
    let dir = tree(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "pub struct A(pub crate::b::B);\n"),
        (
            "src/b.rs",
            "pub struct B;\nfn f() { let _ = crate::a::A(B); }\n",
        ),
    ]);
    let found = violations_of(dir.path(), "x", doc);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|t| t.starts_with("import cycle in src/:")),
        "{text:#?}"
    );
    // On one floor, each direction is also an import that does not point down.
    assert_eq!(
        found
            .iter()
            .filter(|v| matches!(v, Violation::Upward { .. }))
            .count(),
        2,
        "{text:#?}"
    );
}

#[test]
fn re_exports_are_followed_to_the_defining_file_and_tests_are_not_read() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod high;\n"),
        // low re-exports from its child: users depend on the child, not on the facade.
        ("src/low/mod.rs", "mod inner;\npub use inner::Word;\n"),
        ("src/low/inner.rs", "pub struct Word;\n"),
        (
            "src/high/mod.rs",
            "use crate::low::Word;\npub fn w() -> Word { Word }\n\
             #[cfg(test)]\nmod tests { use crate::high::w; }\n",
        ),
        ("src/high/decide.rs", ""),
    ]);
    let krate = scan::scan(dir.path(), "x").expect("scan");
    let edges: Vec<(String, String)> = krate
        .edges
        .iter()
        .map(|e| (e.from.display().to_string(), e.to.display().to_string()))
        .collect();
    assert_eq!(
        edges,
        [("src/high/mod.rs".to_owned(), "src/low/inner.rs".to_owned())]
    );
    assert!(check(&krate, &parse_layers(TWO_FLOORS).expect("table")).is_empty());
}

#[test]
fn paths_inside_macros_and_function_bodies_count() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod high;\n"),
        (
            "src/low.rs",
            "fn f() -> String {\n    format!(\"{}\", crate::high::NAME)\n}\nfn g() {\n    use crate::high::NAME;\n}\n",
        ),
        ("src/high/mod.rs", "pub const NAME: &str = \"n\";\n"),
    ]);
    let found = violations_of(dir.path(), "x", TWO_FLOORS);
    let lines: Vec<usize> = found
        .iter()
        .map(|v| match v {
            Violation::Upward { edge, .. } => edge.line,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(lines, [3, 6]);
}

#[test]
fn pure_files_take_no_client_spawn_nothing_and_read_no_clock() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod high;\n"),
        (
            "src/low.rs",
            "mod io;\nuse kube::Client;\nfn f() { let _ = jiff::Timestamp::now(); }\n",
        ),
        (
            "src/high/mod.rs",
            "mod decide;\nfn io() { tokio::spawn(async {}); }\n",
        ),
        ("src/high/decide.rs", "fn d() { std::process::exit(1) }\n"),
        // Declared the one impure file of `low`: it may read a file.
        (
            "src/low/io.rs",
            "fn r() { let _ = std::fs::read(\"f\"); }\n",
        ),
    ]);
    let found = violations_of(dir.path(), "x", TWO_FLOORS);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "src/high/decide.rs:2: `std::process::exit`: the library never ends the process: return to main",
            "src/low.rs:3: `kube::Client`: a pure file takes no client",
            "src/low.rs:4: `jiff::Timestamp::now`: a pure file reads no clock: take `now` as an argument",
        ]
    );
}

#[test]
fn modules_missing_from_the_table_and_rows_without_a_module_are_reported() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod other;\n"),
        ("src/low.rs", ""),
        ("src/other.rs", ""),
    ]);
    let found = violations_of(dir.path(), "x", TWO_FLOORS);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "src/other.rs: module `other` has no row in the layer table of docs/architecture.md",
            "docs/architecture.md: the layer table names `high`, which is not a module of src/",
        ]
    );
}

#[test]
fn a_file_that_does_not_say_what_it_owns_is_named() {
    let dir = tree(&[
        ("src/lib.rs", "pub mod low;\npub mod high;\n"),
        ("src/high/mod.rs", ""),
    ]);
    std::fs::write(
        dir.path().join("src/low.rs"),
        "// a plain comment\npub struct X;\n",
    )
    .expect("write");
    let found = violations_of(dir.path(), "x", TWO_FLOORS);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        ["src/low.rs: opens with no `//!` line saying what the module owns and guarantees"]
    );
}
