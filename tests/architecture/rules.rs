//! The rules `docs/architecture.md` declares, checked against a scanned crate.
//!
//! - Between top-level modules, every import points to a lower floor of the layer table.
//! - Between the files (and sub-folders) of one folder, imports form no cycle.
//! - A file declared pure takes no client, spawns nothing, reads no clock and touches no file.
//! - Only `main.rs` ends the process.
//! - Every file opens with a `//!` line saying what it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::scan::{Crate, Edge};

/// One row of the layer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub floor: u32,
    /// Every file of the module is pure.
    pub pure: bool,
    /// Files of an I/O module that are pure nonetheless, relative to the module's folder.
    pub pure_files: BTreeSet<String>,
    /// Files of a pure module that are not (`pure except `load.rs``).
    pub impure_files: BTreeSet<String>,
}

/// The layer table: top-level module name (`units`, `release`, …, `main`) → its row.
pub type Layers = BTreeMap<String, Layer>;

/// Reads the table whose header starts `| floor | module |` from a markdown text. The module
/// cell holds the name in backticks; the last cell starts with `pure` or `I/O`; an I/O module
/// lists its pure files after `pure:` in backticks, a pure one the files that are not after
/// `except`.
pub fn parse_layers(markdown: &str) -> Result<Layers, String> {
    let mut rows = markdown
        .lines()
        .skip_while(|l| !l.replace(' ', "").starts_with("|floor|module|"))
        .skip(2)
        .take_while(|l| l.trim_start().starts_with('|'));
    let mut layers = Layers::new();
    for row in rows.by_ref() {
        let cells: Vec<&str> = row
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let (Some(floor), Some(module), Some(purity)) = (cells.first(), cells.get(1), cells.last())
        else {
            return Err(format!("layer table row without cells: {row}"));
        };
        let floor: u32 = floor
            .parse()
            .map_err(|_| format!("layer table: floor `{floor}` is not a number in: {row}"))?;
        let name = backticked(module)
            .into_iter()
            .next()
            .ok_or_else(|| format!("layer table: no `module` in: {row}"))?;
        let name = name
            .trim_end_matches('/')
            .trim_end_matches(".rs")
            .to_owned();
        let pure = purity.starts_with("pure");
        if !pure && !purity.starts_with("I/O") {
            return Err(format!(
                "layer table: `{name}` must say `pure` or `I/O`, not `{purity}`"
            ));
        }
        let listed = |marker: &str| match purity.split_once(marker) {
            Some((_, files)) => backticked(files).into_iter().collect(),
            None => BTreeSet::new(),
        };
        let (pure_files, impure_files) = if pure {
            (BTreeSet::new(), listed("except"))
        } else {
            (listed("pure:"), BTreeSet::new())
        };
        let layer = Layer {
            floor,
            pure,
            pure_files,
            impure_files,
        };
        if layers.insert(name.clone(), layer).is_some() {
            return Err(format!("layer table: `{name}` appears twice"));
        }
    }
    if layers.is_empty() {
        return Err("no table with a header `| floor | module | … |` found".to_owned());
    }
    Ok(layers)
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// One broken rule, with the file and line that break it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Violation {
    /// An import to the same or a higher floor.
    Upward {
        edge: Edge,
        from: (String, u32),
        to: (String, u32),
    },
    /// A cycle between the files of one folder (or between top-level modules): each edge
    /// leads to the next one's file.
    Cycle { folder: PathBuf, edges: Vec<Edge> },
    /// A top-level module missing from the table, or a row naming no module.
    Undeclared { module: String, file: PathBuf },
    /// A row of the table that names no module of `src/`.
    Stale { module: String },
    /// A file that does not open with a `//!` line saying what it owns.
    Undocumented { file: PathBuf },
    /// A pure file calling out (a client, a spawn, a clock, a file), or the library exiting.
    Impure {
        file: PathBuf,
        line: usize,
        path: String,
        why: &'static str,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Upward { edge, from, to } => write!(
                f,
                "{}:{}: `{}` (floor {}) imports `{}` (floor {}) through `{}`: imports must point to a lower floor; move what is needed down",
                edge.from.display(),
                edge.line,
                from.0,
                from.1,
                to.0,
                to.1,
                edge.written
            ),
            Violation::Cycle { folder, edges } => {
                write!(f, "import cycle in {}/:", folder.display())?;
                for e in edges {
                    write!(
                        f,
                        " {}:{} → {} (`{}`);",
                        e.from.display(),
                        e.line,
                        e.to.display(),
                        e.written
                    )?;
                }
                Ok(())
            }
            Violation::Undeclared { module, file } => write!(
                f,
                "{}: module `{module}` has no row in the layer table of docs/architecture.md",
                file.display()
            ),
            Violation::Stale { module } => {
                write!(
                    f,
                    "docs/architecture.md: the layer table names `{module}`, which is not a module of src/"
                )
            }
            Violation::Undocumented { file } => write!(
                f,
                "{}: opens with no `//!` line saying what the module owns and guarantees",
                file.display()
            ),
            Violation::Impure {
                file,
                line,
                path,
                why,
            } => write!(f, "{}:{line}: `{path}`: {why}", file.display()),
        }
    }
}

/// The top-level module a file belongs to (`src/checks/lag.rs` → `checks`), `None` for the
/// crate root.
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix("src").ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if rel.components().count() == 1 && first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Checks every rule; the violations sorted by file.
pub fn check(krate: &Crate, layers: &Layers) -> Vec<Violation> {
    let mut out = Vec::new();
    let modules: BTreeMap<String, PathBuf> = krate
        .files
        .iter()
        .filter_map(|f| Some((top_module(f)?, f.clone())))
        .rev()
        .collect();
    for (module, file) in &modules {
        if !layers.contains_key(module) {
            out.push(Violation::Undeclared {
                module: module.clone(),
                file: file.clone(),
            });
        }
    }
    for module in layers.keys() {
        if !modules.contains_key(module) {
            out.push(Violation::Stale {
                module: module.clone(),
            });
        }
    }
    for edge in &krate.edges {
        let (Some(from), Some(to)) = (top_module(&edge.from), top_module(&edge.to)) else {
            continue;
        };
        if from == to {
            continue;
        }
        let (Some(lf), Some(lt)) = (layers.get(&from), layers.get(&to)) else {
            continue;
        };
        if lt.floor >= lf.floor {
            out.push(Violation::Upward {
                edge: edge.clone(),
                from: (from, lf.floor),
                to: (to, lt.floor),
            });
        }
    }
    out.extend(
        krate
            .undocumented
            .iter()
            .map(|file| Violation::Undocumented { file: file.clone() }),
    );
    out.extend(cycles(&krate.edges));
    out.extend(impurities(krate, layers));
    out.sort();
    out
}

/// The unit a path belongs to inside `folder`: its first component below it (`x.rs` and
/// `x/` are both `x`).
fn unit(folder: &Path, file: &Path) -> Option<String> {
    let first = file
        .strip_prefix(folder)
        .ok()?
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    Some(first.trim_end_matches(".rs").to_owned())
}

fn common_folder(a: &Path, b: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for (x, y) in a
        .parent()
        .unwrap_or(a)
        .components()
        .zip(b.parent().unwrap_or(b).components())
    {
        if x != y {
            break;
        }
        out.push(x);
    }
    out
}

/// Cycles between the units of each folder, one per strongly connected group.
fn cycles(edges: &[Edge]) -> Vec<Violation> {
    // folder → unit → unit → the first edge that makes the link
    let mut graphs: BTreeMap<PathBuf, BTreeMap<String, BTreeMap<String, Edge>>> = BTreeMap::new();
    for e in edges {
        let folder = common_folder(&e.from, &e.to);
        let (Some(a), Some(b)) = (unit(&folder, &e.from), unit(&folder, &e.to)) else {
            continue;
        };
        if a != b {
            graphs
                .entry(folder)
                .or_default()
                .entry(a)
                .or_default()
                .entry(b)
                .or_insert_with(|| e.clone());
        }
    }
    let mut out = Vec::new();
    for (folder, graph) in graphs {
        let mut reported: BTreeSet<String> = BTreeSet::new();
        for start in graph.keys() {
            if reported.contains(start) {
                continue;
            }
            if let Some(path) = shortest_cycle(&graph, start) {
                reported.extend(path.iter().cloned());
                let edges = path
                    .iter()
                    .zip(path.iter().cycle().skip(1))
                    .map(|(a, b)| graph[a][b].clone())
                    .collect();
                out.push(Violation::Cycle {
                    folder: folder.clone(),
                    edges,
                });
            }
        }
    }
    out
}

/// The shortest cycle through `start` (breadth first), as the list of units on it.
fn shortest_cycle(
    graph: &BTreeMap<String, BTreeMap<String, Edge>>,
    start: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for next in graph.get(at).map(|m| m.keys()).into_iter().flatten() {
            if next == start {
                let mut path = vec![at.to_owned()];
                let mut cur = at;
                while cur != start {
                    cur = came_from[cur];
                    path.push(cur.to_owned());
                }
                path.reverse();
                return Some(path);
            }
            if !came_from.contains_key(next.as_str()) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Paths a pure file may not write (prefix match on the path as written), with the reason.
const IMPURE: &[(&str, &str)] = &[
    ("kube::Client", "a pure file takes no client"),
    ("kube::Api", "a pure file takes no client"),
    ("kube::api::Api", "a pure file takes no client"),
    ("reqwest::Client", "a pure file takes no client"),
    ("reqwest::get", "a pure file takes no client"),
    ("hyper::client", "a pure file takes no client"),
    ("hyper::server", "a pure file takes no client"),
    ("tokio_postgres", "a pure file takes no client"),
    ("lettre::AsyncSmtpTransport", "a pure file takes no client"),
    (
        "prometheus_http_query::Client",
        "a pure file takes no client",
    ),
    ("tokio::spawn", "a pure file spawns nothing"),
    ("tokio::task", "a pure file spawns nothing"),
    ("std::thread", "a pure file spawns nothing"),
    ("tokio::process", "a pure file spawns nothing"),
    ("std::process::Command", "a pure file spawns nothing"),
    (
        "tokio::time",
        "a pure file reads no clock and sets no timer",
    ),
    ("std::fs", "a pure file reads no file"),
    ("tokio::fs", "a pure file reads no file"),
];

/// Clock reads: `…::now` on these types.
const CLOCKS: &[&str] = &[
    "Timestamp",
    "SystemTime",
    "Instant",
    "Zoned",
    "Utc",
    "Local",
];

fn impurities(krate: &Crate, layers: &Layers) -> Vec<Violation> {
    let mut out = Vec::new();
    for u in &krate.paths {
        let Some(module) = top_module(&u.file) else {
            continue;
        };
        if module != "main" && (u.path == "std::process::exit" || u.path == "process::exit") {
            out.push(Violation::Impure {
                file: u.file.clone(),
                line: u.line,
                path: u.path.clone(),
                why: "the library never ends the process: return to main",
            });
        }
        let Some(layer) = layers.get(&module) else {
            continue;
        };
        let in_module = u.file.strip_prefix(Path::new("src").join(&module)).ok();
        let listed = |files: &BTreeSet<String>| {
            in_module
                .and_then(|p| p.to_str())
                .is_some_and(|p| files.contains(p))
        };
        let is_pure = if layer.pure {
            !listed(&layer.impure_files)
        } else {
            listed(&layer.pure_files)
        };
        if !is_pure {
            continue;
        }
        let written = u.path.as_str();
        let segments: Vec<&str> = written.split("::").collect();
        let clock = segments.len() >= 2
            && segments[segments.len() - 1] == "now"
            && CLOCKS.contains(&segments[segments.len() - 2]);
        let why = if clock {
            Some("a pure file reads no clock: take `now` as an argument")
        } else {
            IMPURE
                .iter()
                .find(|(prefix, _)| {
                    written == *prefix || written.starts_with(&format!("{prefix}::"))
                })
                .map(|(_, why)| *why)
        };
        if let Some(why) = why {
            out.push(Violation::Impure {
                file: u.file.clone(),
                line: u.line,
                path: u.path.clone(),
                why,
            });
        }
    }
    out
}
