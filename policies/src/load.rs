//! Loading policy files into a [`PolicySet`]: every document of every file is checked, and all
//! problems are reported together.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use homeostat_core::ActionKind;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::document::{PolicyDocument, PolicySpec};
use crate::error::{Diagnostic, Location, PolicyError};
use crate::limits::NextStep;
use crate::locate::{self, Span};
use crate::names::ObjectName;

/// A loaded, validated policy, with where it came from so messages can point back at it.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `metadata.name`, unique within its set; verdicts and spans name the policy by it.
    pub name: ObjectName,
    /// What the policy allows.
    pub spec: PolicySpec,
    /// The file it was read from, as the caller named it.
    pub file: String,
    /// Where its document's first node is.
    pub location: Location,
}

/// The policies in force, in load order: evaluation asks them in this order and the first
/// that covers a proposal decides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// Every `*.yaml` and `*.yml` file directly in `dir`, loaded in file-name order so the
    /// first-match rule does not depend on the file system's listing order.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<PolicySet, PolicyError> {
        let dir = dir.as_ref();
        let io_error = |e: std::io::Error| PolicyError {
            diagnostics: vec![Diagnostic {
                file: dir.display().to_string(),
                location: None,
                message: format!("cannot read directory: {e}"),
            }],
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            let is_yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if is_yaml && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        PolicySet::load_files(&files)
    }

    /// The policies of all `files`, in order; on failure, every problem in every file.
    pub fn load_files(files: &[PathBuf]) -> Result<PolicySet, PolicyError> {
        let mut parsed = Vec::new();
        let mut diagnostics = Vec::new();
        for path in files {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => parse_source(&name, &text, &mut parsed, &mut diagnostics),
                Err(e) => diagnostics.push(Diagnostic {
                    file: name,
                    location: None,
                    message: format!("cannot read file: {e}"),
                }),
            }
        }
        finish(parsed, diagnostics)
    }

    /// The policies in `text`, named `source_name` in messages; for tests, stdin and CRDs.
    pub fn from_str(source_name: &str, text: &str) -> Result<PolicySet, PolicyError> {
        let mut parsed = Vec::new();
        let mut diagnostics = Vec::new();
        parse_source(source_name, text, &mut parsed, &mut diagnostics);
        finish(parsed, diagnostics)
    }

    /// Appends `policy`, to be asked after those already in the set; refused (and handed
    /// back) when the set already has a policy of that name.
    pub fn push(&mut self, policy: Policy) -> Result<(), Box<Policy>> {
        if self.get(policy.name.as_str()).is_some() {
            return Err(Box::new(policy));
        }
        self.policies.push(policy);
        Ok(())
    }

    /// The policies, in load order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name.as_str() == name)
    }

    /// What follows a `kind` under policy `name` once it has not helped: `None` when the
    /// policy has no escalation (nothing is verified), else the next action or stop.
    pub fn next_step(&self, name: &str, kind: ActionKind) -> Option<NextStep> {
        Some(self.get(name)?.spec.escalation.as_ref()?.after(kind))
    }

    /// How long policy `name` gives an action to help before escalating; `None` without
    /// an escalation.
    pub fn verify_within(&self, name: &str) -> Option<Duration> {
        Some(
            self.get(name)?
                .spec
                .escalation
                .as_ref()?
                .verify_within
                .get(),
        )
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are none: then every proposal is denied.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// A parsed policy and the source text around it, kept until set-wide checks are done.
struct Parsed {
    policy: Policy,
    name_at: Location,
}

fn finish(parsed: Vec<Parsed>, mut diagnostics: Vec<Diagnostic>) -> Result<PolicySet, PolicyError> {
    let mut seen: HashMap<&str, &Parsed> = HashMap::new();
    for p in &parsed {
        match seen.get(p.policy.name.as_str()) {
            Some(first) => diagnostics.push(Diagnostic {
                file: p.policy.file.clone(),
                location: Some(p.name_at),
                message: format!(
                    "metadata.name: duplicate policy name {:?}, first defined at {}:{}:{}",
                    p.policy.name.as_str(),
                    first.policy.file,
                    first.name_at.line,
                    first.name_at.column
                ),
            }),
            None => {
                seen.insert(p.policy.name.as_str(), p);
            }
        }
    }
    if diagnostics.is_empty() {
        Ok(PolicySet {
            policies: parsed.into_iter().map(|p| p.policy).collect(),
        })
    } else {
        Err(PolicyError { diagnostics })
    }
}

/// Parses every document of one source, appending policies and problems.
fn parse_source(file: &str, text: &str, out: &mut Vec<Parsed>, diagnostics: &mut Vec<Diagnostic>) {
    let (starts, syntax_error) = probe(text);
    let documents = yaml_serde::Deserializer::from_str(text);
    for (i, (start, document)) in starts.iter().zip(documents).enumerate() {
        let Some(start) = *start else { continue };
        let span = Span {
            start,
            end: starts[i + 1..].iter().flatten().next().map(|l| l.line),
        };
        match PolicyDocument::deserialize(document) {
            Ok(doc) => {
                let before = diagnostics.len();
                cross_check(file, text, span, &doc.spec, diagnostics);
                if diagnostics.len() == before {
                    out.push(Parsed {
                        name_at: locate::key(text, span, &["metadata", "name"]),
                        policy: Policy {
                            name: doc.metadata.name,
                            spec: doc.spec,
                            file: file.to_owned(),
                            location: start,
                        },
                    });
                }
            }
            Err(e) => diagnostics.push(locate::from_yaml(file, &e)),
        }
    }
    if let Some(e) = syntax_error {
        diagnostics.push(locate::from_yaml(file, &e));
    }
}

/// Checks that involve more than one field, located by finding the key in the source text.
fn cross_check(file: &str, text: &str, span: Span, spec: &PolicySpec, out: &mut Vec<Diagnostic>) {
    let mut found: Vec<(Location, String)> = Vec::new();
    for scaling in [ActionKind::ScaleHpa, ActionKind::ScaleWorkload] {
        if spec.actions.contains(&scaling) && spec.max_replicas.is_none() {
            found.push((
                locate::key(text, span, &["spec", "actions"]),
                format!(
                    "spec.maxReplicas: required when spec.actions includes {}",
                    scaling.as_str()
                ),
            ));
            break;
        }
    }
    if spec.max_unavailable.is_some() && !spec.actions.contains(&ActionKind::RestartPods) {
        found.push((
            locate::key(text, span, &["spec", "maxUnavailable"]),
            "spec.maxUnavailable: limits restart-pods only, which spec.actions does not include"
                .to_owned(),
        ));
    }
    let scales = [ActionKind::ScaleHpa, ActionKind::ScaleWorkload]
        .iter()
        .any(|k| spec.actions.contains(k));
    if spec.scale.is_some() && !scales {
        found.push((
            locate::key(text, span, &["spec", "scale"]),
            "spec.scale: bounds scale-hpa and scale-workload only, which spec.actions does not \
             include"
                .to_owned(),
        ));
    }
    if spec.throttle.is_some() && !spec.actions.contains(&ActionKind::ThrottleSampling) {
        found.push((
            locate::key(text, span, &["spec", "throttle"]),
            "spec.throttle: bounds throttle-sampling only, which spec.actions does not include"
                .to_owned(),
        ));
    }
    if let Some(t) = &spec.triggers
        && t.anomalies.is_empty()
        && t.forecast.is_none()
    {
        found.push((
            locate::key(text, span, &["spec", "triggers"]),
            "spec.triggers: names no anomaly and no forecast, so nothing could trigger the \
             policy (hint: leave triggers out to act on any anomaly)"
                .to_owned(),
        ));
    }
    if let Some(next) = spec.escalation.as_ref().and_then(|e| e.next)
        && spec.actions == [next]
    {
        found.push((
            locate::key(text, span, &["spec", "escalation", "next"]),
            format!(
                "spec.escalation.next: {} is this policy's only action, so escalating to it \
                 would repeat what did not help (hint: leave next out to stop)",
                next.as_str()
            ),
        ));
    }
    let schedule = &spec.schedule;
    for (list, windows) in [
        ("deny", &schedule.deny),
        ("maintenance", &schedule.maintenance),
    ] {
        for (i, w) in windows.iter().enumerate() {
            if w.from >= w.to {
                found.push((
                    locate::key(text, span, &["spec", "schedule", list]),
                    format!(
                        "spec.schedule.{list}[{i}]: from {} is not before to {} (hint: split a \
                         window that crosses midnight in two, one ending at 24:00)",
                        w.from, w.to
                    ),
                ));
            }
        }
    }
    for name in &spec.target.exclude {
        if spec.target.workloads.contains(name) {
            found.push((
                locate::key(text, span, &["spec", "target", "exclude"]),
                format!(
                    "spec.target.exclude: {:?} is also listed in spec.target.workloads",
                    name.as_str()
                ),
            ));
        }
    }
    found.sort_by_key(|(at, _)| *at);
    out.extend(found.into_iter().map(|(at, message)| Diagnostic {
        file: file.to_owned(),
        location: Some(at),
        message,
    }));
}

/// A first pass over the stream that never fails on content, only on YAML syntax: for each
/// document, where its first node is (`None` for an empty document), then the syntax error
/// that ended the stream, if one did.
///
/// Why a separate pass: after a syntax error the parser repeats it for ever, and a document
/// cut short by one can fail typed deserialization with a misleading message before the
/// parser's own error is reached. Walking each document untyped reaches it.
fn probe(text: &str) -> (Vec<Option<Location>>, Option<yaml_serde::Error>) {
    let mut starts = Vec::new();
    for document in yaml_serde::Deserializer::from_str(text) {
        match Probe::deserialize(document) {
            Ok(Probe) => starts.push(None),
            Err(e) if e.to_string().starts_with(PROBE_MARK) => {
                starts.push(Some(e.location().map_or(
                    Location { line: 1, column: 1 },
                    |l| Location {
                        line: l.line(),
                        column: l.column(),
                    },
                )));
            }
            Err(e) => return (starts, Some(e)),
        }
    }
    (starts, None)
}

/// The error a probe raises on purpose at a document's root, so the parser stamps the root's
/// position on it.
const PROBE_MARK: &str = "\u{1}homeostat-probe";

/// Accepts an empty document; walks any other to its end, then fails at its root.
struct Probe;

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML document")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe)
    }

    fn visit_none<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Err(de::Error::custom(PROBE_MARK))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Probe, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Err(de::Error::custom(PROBE_MARK))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Probe, E> {
        Err(E::custom(PROBE_MARK))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Probe, E> {
        Err(E::custom(PROBE_MARK))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Probe, E> {
        Err(E::custom(PROBE_MARK))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Probe, E> {
        Err(E::custom(PROBE_MARK))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Probe, E> {
        Err(E::custom(PROBE_MARK))
    }
}
