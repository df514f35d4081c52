//! The audit log: every request the API server answered, as a real API server's audit
//! backend would record it, so a test can prove what a client did through the API.

use std::sync::{Arc, Mutex};

/// The most records kept; older ones are dropped first.
const LIMIT: usize = 100_000;

/// One request and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// `Content-Type` of the body, if any.
    pub content_type: Option<String>,
    /// `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// Status code answered.
    pub status: u16,
}

impl AuditRecord {
    /// Whether the request changed (or tried to change) something.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// A shared, bounded list of [`AuditRecord`]s.
#[derive(Clone, Debug, Default)]
pub struct AuditLog {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl AuditLog {
    /// Appends a record.
    pub fn record(&self, r: AuditRecord) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= LIMIT {
            records.remove(0);
        }
        records.push(r);
    }

    /// Every record kept, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
