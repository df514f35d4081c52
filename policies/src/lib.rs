//! homeostat's policies: the gate in front of every action.
//!
//! Policy documents are Kubernetes-shaped YAML ([`document`]), loaded into a [`PolicySet`]
//! that reports every problem with file, line and column ([`PolicyError`]). [`evaluate()`] is a
//! pure function of a set, a proposal, the global mode, the history of past actions and the
//! time: it decides act, dry-run, observe or deny, and names the rule that decided (rule
//! order in [`evaluate`](mod@evaluate)). Past actions come from an [`ActionLog`]. Scope
//! includes a label [`selector`]; [`trigger`]s say what must be behind a proposal, and
//! [`bounds`] how far one scaling or throttling may go.
//! [`replay()`] runs a sequence of proposals through it with the history each verdict leaves,
//! and [`crd`] is the CustomResourceDefinition generated from the document types, whose
//! objects [`from_object`] checks as the loader checks a file.
#![forbid(unsafe_code)]

pub mod bounds;
pub mod condition;
pub mod crd;
pub mod document;
pub mod duration;
pub mod error;
pub mod evaluate;
pub mod history;
pub mod limits;
pub mod load;
mod locate;
pub mod names;
pub mod object;
pub mod replay;
mod scalar;
pub mod schedule;
pub mod schema;
pub mod selector;
pub mod trigger;

pub use document::{PolicySpec, ReplicaCeiling, Target};
pub use duration::HumanDuration;
pub use error::{Diagnostic, Location, PolicyError};
pub use evaluate::{evaluate, evaluate_logged};
pub use history::{ActionLog, ActionLogError, MemoryLog, PastAction};
pub use limits::NextStep;
pub use load::{Policy, PolicySet};
pub use names::ObjectName;
pub use object::from_object;
pub use replay::{Proposed, Replayed, replay};
