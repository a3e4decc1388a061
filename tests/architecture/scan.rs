//! Reads a crate's sources with `syn` into files, modules and file-to-file imports.
//!
//! An import is any path written in non-test code that names something of the crate: a `use`
//! leaf, an inline `crate::…`/`super::…`/`self::…` path, a path through a child module or a
//! name the module re-exports, and the same shapes inside macro invocations. Each is resolved
//! to the file that *defines* what it names, following `use` re-exports (so a facade `mod.rs`
//! that re-exports its children is not an edge of its own). Items under `#[cfg(test)]` are not
//! read: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit as _;

use crate::syntax::{Paths, Pending, Use, item_attrs, item_name, test_only, use_leaves};

/// One resolved import: `from` (a file) names something defined in `to`, at `line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: PathBuf,
    pub line: usize,
    pub to: PathBuf,
    /// The path as written, for the report.
    pub written: String,
}

/// What [`scan`] found.
#[derive(Debug, Default)]
pub struct Crate {
    /// Every file of the module tree, relative to the crate's `src/` parent (`src/a/b.rs`).
    pub files: BTreeSet<PathBuf>,
    pub edges: Vec<Edge>,
    /// Every path of two or more segments written in non-test code, for the purity rules.
    pub paths: Vec<Use>,
    /// Files that do not open with a `//!` saying what they own.
    pub undocumented: BTreeSet<PathBuf>,
}

#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    children: BTreeMap<String, Vec<String>>,
    items: BTreeSet<String>,
    /// Names brought in by `use` (leaf name or rename → full path as written), and whether
    /// the `use` re-exports them (`pub`, `pub(crate)`, …).
    imports: BTreeMap<String, (Vec<String>, bool)>,
    /// Glob sources, `use path::*`.
    globs: Vec<Vec<String>>,
}

/// Reads the crate whose root is `root/src/lib.rs` (and `root/src/main.rs` if present, whose
/// paths through `crate_name::` are the library's).
pub fn scan(root: &Path, crate_name: &str) -> Result<Crate, String> {
    let mut s = Scanner {
        root: root.to_path_buf(),
        ..Scanner::default()
    };
    s.file(&[], Path::new("src/lib.rs"))?;
    let main = Path::new("src/main.rs");
    if root.join(main).exists() {
        s.file(&["main".to_owned()], main)?;
        s.modules.entry(vec!["main".to_owned()]).or_default().file = main.to_path_buf();
    }
    let mut out = Crate {
        files: s.files.clone(),
        paths: std::mem::take(&mut s.paths),
        undocumented: std::mem::take(&mut s.undocumented),
        ..Crate::default()
    };
    for p in &s.pending {
        let mut segments = p.segments.clone();
        if segments.first().is_some_and(|f| f == crate_name) {
            segments[0] = "crate".to_owned();
        }
        if let Some(to) = s.resolve(&p.module, &segments, p.from_use, 0)
            && to != p.file
        {
            out.edges.push(Edge {
                from: p.file.clone(),
                line: p.line,
                to,
                written: p.segments.join("::"),
            });
        }
    }
    out.edges.sort();
    out.edges.dedup();
    Ok(out)
}

#[derive(Default)]
struct Scanner {
    root: PathBuf,
    files: BTreeSet<PathBuf>,
    undocumented: BTreeSet<PathBuf>,
    modules: BTreeMap<Vec<String>, Module>,
    pending: Vec<Pending>,
    paths: Vec<Use>,
}

impl Scanner {
    fn file(&mut self, module: &[String], file: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(self.root.join(file))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let ast = syn::parse_file(&text)
            .map_err(|e| format!("{}:{}: {e}", file.display(), e.span().start().line))?;
        self.files.insert(file.to_path_buf());
        let documented = ast
            .attrs
            .iter()
            .any(|a| a.path().is_ident("doc") && matches!(a.style, syn::AttrStyle::Inner(_)));
        if !documented {
            self.undocumented.insert(file.to_path_buf());
        }
        self.items(module, file, &ast.items)
    }

    fn items(&mut self, module: &[String], file: &Path, items: &[syn::Item]) -> Result<(), String> {
        self.modules.entry(module.to_vec()).or_default().file = file.to_path_buf();
        for item in items {
            if test_only(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    let mut child = module.to_vec();
                    child.push(name.clone());
                    self.module_mut(module)
                        .children
                        .insert(name.clone(), child.clone());
                    match &m.content {
                        Some((_, inner)) => self.items(&child, file, inner)?,
                        None => {
                            let path = child_file(&self.root, file, &name, &m.attrs)?;
                            self.file(&child, &path)?;
                        }
                    }
                }
                syn::Item::Use(u) => {
                    let reexport = !matches!(u.vis, syn::Visibility::Inherited);
                    let mut leaves = Vec::new();
                    use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                    for (name, path, line) in leaves {
                        self.paths.push(Use {
                            file: file.to_path_buf(),
                            line,
                            path: path.join("::"),
                        });
                        let m = self.module_mut(module);
                        match name {
                            Some(name) => {
                                m.imports.insert(name, (path.clone(), reexport));
                            }
                            None => m.globs.push(path.clone()),
                        }
                        // A re-export is resolved through by its users; it is not itself
                        // a dependency of the re-exporting file's code.
                        if !reexport {
                            self.pending.push(Pending {
                                module: module.to_vec(),
                                file: file.to_path_buf(),
                                line,
                                segments: path,
                                from_use: true,
                            });
                        }
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.module_mut(module).items.insert(name);
                    }
                    let mut v = Paths {
                        module,
                        file,
                        pending: &mut self.pending,
                        paths: &mut self.paths,
                    };
                    v.visit_item(other);
                }
            }
        }
        Ok(())
    }

    fn module_mut(&mut self, module: &[String]) -> &mut Module {
        self.modules.entry(module.to_vec()).or_default()
    }

    /// The file defining what `segments` names, seen from `module`; `None` for paths outside
    /// the crate (std, dependencies, local variables).
    fn resolve(
        &self,
        module: &[String],
        segments: &[String],
        from_use: bool,
        depth: usize,
    ) -> Option<PathBuf> {
        if depth > 16 || segments.is_empty() {
            return None;
        }
        let mut at: Vec<String> = module.to_vec();
        let mut rest = segments;
        match segments[0].as_str() {
            "crate" => {
                at.clear();
                rest = &segments[1..];
            }
            "self" => rest = &segments[1..],
            "super" => {
                while rest.first().is_some_and(|s| s == "super") {
                    at.pop()?;
                    rest = &rest[1..];
                }
            }
            first => {
                let m = self.modules.get(module)?;
                if m.children.contains_key(first) {
                    // A child module: resolved below like any other segment.
                } else if let Some((path, reexport)) = m.imports.get(first) {
                    // A name brought into scope. A private `use` is an edge at its own line
                    // already; through a re-export the inline path is the only trace.
                    if !from_use && !reexport {
                        return None;
                    }
                    let mut full = path.clone();
                    if self.module_of(module, path, depth).is_some() {
                        full.extend(segments[1..].iter().cloned());
                    }
                    return self.resolve(module, &full, true, depth + 1);
                } else {
                    return None;
                }
            }
        }
        self.walk(&at, rest, depth)
    }

    /// The module a path names, if it names a module.
    fn module_of(&self, module: &[String], path: &[String], depth: usize) -> Option<Vec<String>> {
        let mut at: Vec<String> = module.to_vec();
        let mut rest = path;
        match path.first()?.as_str() {
            "crate" => {
                at.clear();
                rest = &path[1..];
            }
            "self" => rest = &path[1..],
            "super" => {
                while rest.first().is_some_and(|s| s == "super") {
                    at.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => {}
        }
        for seg in rest {
            let m = self.modules.get(&at)?;
            if seg == "self" {
                continue;
            }
            if let Some(child) = m.children.get(seg) {
                at = child.clone();
            } else if let Some((p, _)) = m.imports.get(seg) {
                if depth > 16 {
                    return None;
                }
                at = self.module_of(&at, p, depth + 1)?;
            } else {
                return None;
            }
        }
        Some(at)
    }

    fn walk(&self, start: &[String], rest: &[String], depth: usize) -> Option<PathBuf> {
        let mut at = start.to_vec();
        for (i, seg) in rest.iter().enumerate() {
            let m = self.modules.get(&at)?;
            if seg == "self" {
                continue;
            }
            if let Some(child) = m.children.get(seg) {
                at = child.clone();
                continue;
            }
            if m.items.contains(seg) {
                return Some(m.file.clone());
            }
            if let Some((p, _)) = m.imports.get(seg) {
                let mut full = p.clone();
                full.extend(rest[i + 1..].iter().cloned());
                return self.resolve(&at, &full, true, depth + 1);
            }
            for g in &m.globs {
                let mut full = g.clone();
                full.extend(rest[i..].iter().cloned());
                if let Some(found) = self.resolve(&at, &full, true, depth + 1) {
                    return Some(found);
                }
            }
            // Unknown to the scan (made by a macro): the module's own file.
            return Some(m.file.clone());
        }
        Some(self.modules.get(&at)?.file.clone())
    }
}

/// The file of `mod name;` declared in `parent`: `#[path]`, else `name.rs` or `name/mod.rs`
/// beside a `mod.rs`/`lib.rs`/`main.rs`, or under `stem/` for any other file.
fn child_file(
    root: &Path,
    parent: &Path,
    name: &str,
    attrs: &[syn::Attribute],
) -> Result<PathBuf, String> {
    let dir = parent.parent().unwrap_or(Path::new(""));
    let stem = parent.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let base = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    for attr in attrs {
        if attr.path().is_ident("path")
            && let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            return Ok(dir.join(s.value()));
        }
    }
    for candidate in [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ] {
        if root.join(&candidate).exists() {
            return Ok(candidate);
        }
    }
    Err(format!("{}: `mod {name};` has no file", parent.display()))
}
