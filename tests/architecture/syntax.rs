//! What one file says, read with `syn`: the paths it writes outside `#[cfg(test)]` (use
//! leaves, inline paths, paths inside macro invocations), with their lines.

use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A call that a pure file must not make, found by the scan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Use {
    pub file: PathBuf,
    pub line: usize,
    /// The path as written (`kube::Client`, `Timestamp::now`, `tokio::spawn`…).
    pub path: String,
}

/// One `use` leaf or inline path waiting to be resolved once every module is known.
pub struct Pending {
    pub module: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
    pub segments: Vec<String>,
    /// `use` leaves start from the module's scope; inline paths only from `crate`, `super`,
    /// `self`, a child module or an imported name.
    pub from_use: bool,
}

/// Whether attributes put an item under `#[cfg(test)]` (alone or in an `all(…)`).
pub fn test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        if !a.path().is_ident("cfg") {
            return false;
        }
        let Ok(list) = a.meta.require_list() else {
            return false;
        };
        let t: String = list.tokens.to_string().split_whitespace().collect();
        t == "test" || (t.starts_with("all(") && t.contains("test") && !t.contains("not("))
    })
}

pub fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

pub fn item_name(item: &syn::Item) -> Option<String> {
    use syn::Item::*;
    Some(match item {
        Const(i) => i.ident.to_string(),
        Enum(i) => i.ident.to_string(),
        Fn(i) => i.sig.ident.to_string(),
        Macro(i) => i.ident.as_ref()?.to_string(),
        Static(i) => i.ident.to_string(),
        Struct(i) => i.ident.to_string(),
        Trait(i) => i.ident.to_string(),
        TraitAlias(i) => i.ident.to_string(),
        Type(i) => i.ident.to_string(),
        Union(i) => i.ident.to_string(),
        _ => return None,
    })
}

/// Flattens a use tree into (name in scope or `None` for a glob, full path, line).
pub fn use_leaves(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>, usize)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut path = prefix.clone();
            let scope = if name == "self" {
                prefix.last().cloned()
            } else {
                Some(name.clone())
            };
            if name != "self" {
                path.push(name);
            }
            if let Some(scope) = scope {
                out.push((Some(scope), path, n.ident.span().start().line));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push((
                Some(r.rename.to_string()),
                path,
                r.ident.span().start().line,
            ));
        }
        syn::UseTree::Glob(g) => {
            out.push((None, prefix.clone(), g.star_token.spans[0].start().line))
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_leaves(t, prefix, out);
            }
        }
    }
}

/// Collects the inline paths of one item (not under `#[cfg(test)]`).
pub struct Paths<'a> {
    pub module: &'a [String],
    pub file: &'a Path,
    pub pending: &'a mut Vec<Pending>,
    pub paths: &'a mut Vec<Use>,
}

impl Paths<'_> {
    /// An inline path (`from_use: false`) or a `use` leaf inside a function body.
    fn record(&mut self, segments: Vec<String>, line: usize, from_use: bool) {
        self.paths.push(Use {
            file: self.file.to_path_buf(),
            line,
            path: segments.join("::"),
        });
        self.pending.push(Pending {
            module: self.module.to_vec(),
            file: self.file.to_path_buf(),
            line,
            segments,
            from_use,
        });
    }

    fn push(&mut self, segments: Vec<String>, line: usize) {
        if segments.len() >= 2 {
            self.record(segments, line, false);
        }
    }

    /// `a :: b :: c` sequences inside a macro's tokens (`format!("{}", crate::units::human(d))`).
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(first) => {
                    let mut segments = vec![first.to_string()];
                    while let [
                        TokenTree::Punct(a),
                        TokenTree::Punct(b),
                        TokenTree::Ident(next),
                        ..,
                    ] = &trees[i + 1..]
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        i += 3;
                    }
                    self.push(segments, first.span().start().line);
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        if !test_only(item_attrs(i)) {
            syn::visit::visit_item(self, i);
        }
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut leaves = Vec::new();
        use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
        for (_, segments, line) in leaves {
            self.record(segments, line, true);
        }
    }
    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        if !test_only(&i.attrs) {
            syn::visit::visit_impl_item_fn(self, i);
        }
    }
    fn visit_stmt(&mut self, s: &'ast syn::Stmt) {
        let attrs = match s {
            syn::Stmt::Local(l) => &l.attrs[..],
            syn::Stmt::Macro(m) => &m.attrs[..],
            _ => &[],
        };
        if !test_only(attrs) {
            syn::visit::visit_stmt(self, s);
        }
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.push(segments, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}
