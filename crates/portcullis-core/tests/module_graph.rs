//! No module cycles inside the core: this reads every module's paths (`use crate::…`,
//! `use super::…` and paths written inline), follows re-exports to the module that defines
//! the item, and fails on a cycle, naming it. A module owns its children (`mod x;`,
//! `pub use x::…` and a child's use of its parent are not counted); a use between two
//! modules that are not nested counts between their subtrees, so `service::signin` using
//! `service::mfa` while `service::mfa::challenge` uses `service::signin` is a cycle of the
//! siblings `service::mfa` and `service::signin`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the crate by path ("" is the crate root), with its source (comments and
/// the test module left out).
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            out.insert(
                parts.join("::"),
                code_of(&std::fs::read_to_string(&path).unwrap()),
            );
        }
    }
    out
}

/// The source without comments and without its `#[cfg(test)]` module.
fn code_of(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(at) => &src[..at],
        None => src,
    };
    src.lines()
        .map(|l| match l.find("//") {
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_owned())
}

fn join(base: &str, segment: &str) -> String {
    if base.is_empty() {
        segment.to_owned()
    } else {
        format!("{base}::{segment}")
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a module writes, made absolute: each a list of segments from the crate root.
/// `crate::a::{b, c::d}` gives `a::b` and `a::c::d`.
fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if start > 0 && code[..start].ends_with(|c: char| is_ident(c) || c == ':') {
            continue; // part of a longer path (`super::super::`, `foo::crate::`)
        }
        let mut base = String::new();
        let mut rest = &code[start..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else {
            base = module.to_owned();
            while let Some(r) = rest.strip_prefix("super::") {
                base = parent(&base);
                rest = r;
            }
        }
        collect(&base, rest, &mut out);
    }
    out
}

/// Reads `a::b::{c, d::e}` (or `a::b::c`) after `base` into `out`.
fn collect(base: &str, rest: &str, out: &mut Vec<Vec<String>>) {
    let mut segments: Vec<String> = if base.is_empty() {
        Vec::new()
    } else {
        base.split("::").map(str::to_owned).collect()
    };
    let mut rest = rest;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let inner = &group[..end];
            let mut depth = 0;
            let mut item_start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        collect(&segments.join("::"), inner[item_start..i].trim(), out);
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            collect(&segments.join("::"), inner[item_start..].trim(), out);
            return;
        }
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        segments.push(rest[..len].to_owned());
        rest = &rest[len..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    if !segments.is_empty() && segments.iter().all(|s| s != "self") {
        out.push(segments);
    }
}

/// The items each module re-exports (`pub use x::{A, B};`), by name, as absolute paths.
fn reexports(modules: &BTreeMap<String, String>) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for (module, code) in modules {
        for (at, _) in code.match_indices("pub use ") {
            let stmt = &code[at + 8..];
            let stmt = &stmt[..stmt.find(';').unwrap_or(stmt.len())];
            let mut found = Vec::new();
            let (base, rest) = if let Some(r) = stmt.strip_prefix("crate::") {
                (String::new(), r)
            } else if stmt.starts_with("super::") {
                let mut base = module.clone();
                let mut rest = stmt;
                while let Some(r) = rest.strip_prefix("super::") {
                    base = parent(&base);
                    rest = r;
                }
                (base, rest)
            } else {
                (module.clone(), stmt)
            };
            collect(&base, rest, &mut found);
            for path in found {
                if let Some(name) = path.last() {
                    out.insert((module.clone(), name.clone()), path.clone());
                }
            }
        }
    }
    out
}

/// The module a path lands in: the longest module prefix, following re-exports.
fn resolve(
    path: &[String],
    modules: &BTreeMap<String, String>,
    reexports: &BTreeMap<(String, String), Vec<String>>,
    depth: usize,
) -> Option<String> {
    let mut module = String::new();
    for (i, segment) in path.iter().enumerate() {
        let next = join(&module, segment);
        if modules.contains_key(&next) {
            module = next;
            continue;
        }
        if let Some(target) = reexports.get(&(module.clone(), segment.clone())) {
            if depth < 8 && target.as_slice() != &path[..=i] {
                return resolve(target, modules, reexports, depth + 1);
            }
        }
        break;
    }
    Some(module)
}

fn nested(a: &str, b: &str) -> bool {
    a == b || a.is_empty() || b.starts_with(&format!("{a}::"))
}

/// Each module's uses of other modules (not its ancestors' re-exports of its children).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let reexports = reexports(&modules);
    let mut edges = BTreeMap::new();
    for (module, code) in &modules {
        let mut targets = BTreeSet::new();
        for path in paths(module, code) {
            let Some(target) = resolve(&path, &modules, &reexports, 0) else {
                continue;
            };
            // A module owns its children: only uses outside that line count.
            if !nested(module, &target) && !target.is_empty() {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

/// The uses between siblings: a use from `a` to `b` (neither inside the other) counts from
/// the child of their lowest common ancestor that holds `a` to the one that holds `b`.
fn lift(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in edges {
        for to in targets {
            let a: Vec<&str> = from.split("::").collect();
            let b: Vec<&str> = to.split("::").collect();
            let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            if common >= a.len() || common >= b.len() {
                continue; // nested
            }
            out.entry(a[..=common].join("::"))
                .or_default()
                .insert(b[..=common].join("::"));
        }
    }
    out
}

/// A cycle in `edges`, if there is one, as the modules around it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn core_modules_form_no_cycle() {
    let edges = graph();
    assert!(edges.len() > 40, "{} modules read", edges.len());
    // The reader sees what it should: the use cases use the ports, the ports never the
    // use cases.
    assert!(edges["service::signin"].contains("service::mfa"));
    assert!(edges["service::mfa::challenge"].contains("ports::accounts"));
    assert!(!edges["ports::accounts"]
        .iter()
        .any(|t| t.starts_with("service")));
    if let Some(cycle) = find_cycle(&lift(&edges)) {
        let uses: Vec<String> = edges
            .iter()
            .flat_map(|(from, to)| to.iter().map(move |t| (from, t)))
            .filter(|(from, to)| {
                cycle.windows(2).any(|w| {
                    (**from == w[0] || from.starts_with(&format!("{}::", w[0])))
                        && (**to == w[1] || to.starts_with(&format!("{}::", w[1])))
                })
            })
            .map(|(from, to)| format!("{from} uses {to}"))
            .collect();
        panic!(
            "a module cycle in portcullis-core: {}\n{}",
            cycle.join(" → "),
            uses.join("\n")
        );
    }
}

#[test]
fn the_reader_finds_cycles_and_follows_reexports() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.insert("a".into(), ["b".into()].into());
    edges.insert("b".into(), ["c".into()].into());
    edges.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&edges), None);
    edges.insert("c".into(), ["a".into()].into());
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut out = Vec::new();
    collect(
        "",
        "ports::{AccountRow, outbox::{Message, Outgoing}}",
        &mut out,
    );
    assert_eq!(
        out,
        [
            vec!["ports", "AccountRow"],
            vec!["ports", "outbox", "Message"],
            vec!["ports", "outbox", "Outgoing"]
        ]
    );
    let mut found = paths(
        "service::mfa::totp",
        "use super::challenge::Answer;\nuse crate::otp;",
    );
    found.sort();
    assert_eq!(
        found,
        [vec!["otp"], vec!["service", "mfa", "challenge", "Answer"]]
    );
}
