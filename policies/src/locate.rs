//! Finding positions: turning parser errors into [`Diagnostic`]s, and finding the line of a key
//! for checks that can only run after a document is parsed.

use crate::error::{Diagnostic, Location};

/// A parser error as a diagnostic: the parser's position, and its message without the
/// trailing "at line L column C" it repeats.
pub(crate) fn from_yaml(file: &str, err: &yaml_serde::Error) -> Diagnostic {
    let text = err.to_string();
    let location = err.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    let message = match location {
        Some(Location { line, column }) => {
            let suffix = format!(" at line {line} column {column}");
            match text.strip_suffix(&suffix) {
                Some(stripped) => stripped.to_owned(),
                None => text.replacen(&suffix, "", 1),
            }
        }
        None => text,
    };
    Diagnostic {
        file: file.to_owned(),
        location,
        message,
    }
}

/// The line range of one document within a file: `start` (its first node) up to, not
/// including, `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: Location,
    pub end: Option<usize>,
}

/// Where the key at `path` (e.g. `["spec", "target", "exclude"]`) is written in block style
/// inside `span`; the nearest enclosing key that was found when a deeper one is not (flow
/// style, or a defaulted field), and the document's start when none is.
pub(crate) fn key(text: &str, span: Span, path: &[&str]) -> Location {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .skip(span.start.line.saturating_sub(1))
        .take_while(|(n, _)| span.end.is_none_or(|end| *n < end))
        .collect();
    let mut found = span.start;
    let mut from = 0;
    let mut parent_indent: Option<usize> = None;
    for segment in path {
        let mut hit = None;
        for (i, (n, line)) in lines.iter().enumerate().skip(from) {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') || content.starts_with("---") {
                continue;
            }
            let indent = line.len() - content.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            if is_key(content, segment) {
                hit = Some((i, *n, indent));
                break;
            }
        }
        let Some((i, n, indent)) = hit else {
            return found;
        };
        found = Location {
            line: n,
            column: indent + 1,
        };
        from = i + 1;
        parent_indent = Some(indent);
    }
    found
}

/// Whether a trimmed line starts with `key:` (bare or quoted).
fn is_key(content: &str, key: &str) -> bool {
    [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .any(|k| {
            content
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: v
metadata:
  name: a
spec:
  # comment
  target:
    workloads: [x]
    exclude: [x]
  actions: [scale-hpa]
---
spec: {target: {exclude: [y]}}
";

    fn span(start: usize, end: Option<usize>) -> Span {
        Span {
            start: Location {
                line: start,
                column: 1,
            },
            end,
        }
    }

    #[test]
    fn finds_nested_keys_in_block_style() {
        let s = span(1, Some(11));
        assert_eq!(key(DOC, s, &["spec", "target", "exclude"]).line, 8);
        assert_eq!(key(DOC, s, &["spec", "target", "exclude"]).column, 5);
        assert_eq!(key(DOC, s, &["spec", "actions"]).line, 9);
        assert_eq!(key(DOC, s, &["metadata", "name"]).line, 3);
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor_then_the_start() {
        let s = span(11, None);
        assert_eq!(key(DOC, s, &["spec", "target", "exclude"]).line, 11);
        assert_eq!(
            key(DOC, span(1, Some(11)), &["spec", "maxReplicas"]).line,
            4
        );
        assert_eq!(key(DOC, span(2, Some(11)), &["nothing"]).line, 2);
    }
}
