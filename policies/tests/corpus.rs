//! The corpus of broken policy documents: each `tests/corpus/NAME.yaml` is refused with
//! exactly the diagnostics in `NAME.expected` beside it, one `LINE:COLUMN: MESSAGE` a line,
//! in order. Add a case by adding the pair.

use std::path::{Path, PathBuf};

use homeostat_policies::PolicySet;

const CORPUS: &str = "tests/corpus";

/// The corpus files with the given extension, sorted; paths relative to the crate, as tests
/// run from there, so messages that name a file are stable.
fn files(ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("the corpus directory")
        .map(|e| Path::new(CORPUS).join(e.expect("entry").file_name()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    found
}

#[test]
fn every_broken_document_is_refused_at_its_line_and_column_with_its_reason() {
    let cases = files("yaml");
    assert!(cases.len() >= 25, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expected_file = case.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_file)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_file.display()));
        let expected: Vec<String> = expected
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| format!("{}:{l}", case.display()))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} expects nothing",
            expected_file.display()
        );
        let got: Vec<String> = match PolicySet::load_files(std::slice::from_ref(case)) {
            Ok(set) => vec![format!("loaded {} policies", set.len())],
            Err(e) => e.diagnostics.iter().map(|d| d.to_string()).collect(),
        };
        if got != expected {
            failures.push(format!(
                "{}\n  expected:\n    {}\n  got:\n    {}",
                case.display(),
                expected.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expectation_has_its_document() {
    for expected in files("expected") {
        assert!(
            expected.with_extension("yaml").exists(),
            "{} has no document beside it",
            expected.display()
        );
    }
}
